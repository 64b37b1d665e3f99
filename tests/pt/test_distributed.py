"""Training at scale in PyTorch: DistributedDataParallel and FSDP over 2 CPU processes (gloo) give the parameters
one process gets on the combined batch; gradient checkpointing and bfloat16 autocast work with every head."""

from __future__ import annotations

import math
import os
import socket
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import rembert_pt
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config

STEPS = 3
LR = 0.5
WORLD = 2
FSDP_HEADS = ("sequence_classification", "causal_lm", "question_answering")


def config_for(head: str, **overrides):
    overrides.setdefault("classifier_dropout_prob", 0.0)
    return tiny_config(is_decoder=head == "causal_lm", **overrides)


def build(head: str, config=None) -> torch.nn.Module:
    torch.manual_seed(0)  # every process builds the same initial weights
    return getattr(rembert_pt, HEADS[head].pt_class)(config or config_for(head))


def make_batch(head: str, step: int, rows: int = 4, length: int = 7) -> dict[str, torch.Tensor]:
    """A batch whose two halves have the same padding and label pattern, so that the mean loss of the whole
    batch is the mean of the two halves' mean losses (what data parallelism averages)."""
    g = torch.Generator().manual_seed(100 + step)
    vocab = config_for(head).vocab_size
    ids = torch.randint(1, vocab, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1::2, -2:] = 0  # odd rows are padded in both halves
    batch = dict(input_ids=ids, attention_mask=mask)
    if head in ("masked_lm", "causal_lm", "token_classification"):
        limit = vocab if head != "token_classification" else 2
        labels = torch.randint(0, limit, (rows, length), generator=g)
        labels[mask == 0] = -100
        if head == "masked_lm":
            labels[:, ::3] = -100
        batch["labels"] = labels
    elif head == "sequence_classification":
        batch["labels"] = torch.randint(0, 2, (rows,), generator=g)
    elif head == "multiple_choice":
        batch = {k: torch.stack([v, v.roll(1, dims=1)], dim=1) for k, v in batch.items()}
        batch["labels"] = torch.randint(0, 2, (rows,), generator=g)
    elif head == "question_answering":
        batch["start_positions"] = torch.randint(0, length - 2, (rows,), generator=g)
        batch["end_positions"] = torch.randint(0, length - 2, (rows,), generator=g)
    return batch


def loss_of(head: str, outputs) -> torch.Tensor:
    if head == "base":  # no loss of its own: a stand-in that uses every parameter
        return outputs.last_hidden_state.square().mean() + outputs.pooler_output.square().mean()
    return outputs.loss


def shard(batch: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    half = next(iter(batch.values())).shape[0] // WORLD
    return {k: v[rank * half : (rank + 1) * half] for k, v in batch.items()}


def train(head: str, model: torch.nn.Module, rank: int | None = None) -> list[float]:
    """STEPS of SGD; rank None trains on whole batches, else on this rank's half."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    model.train()
    losses = []
    for step in range(STEPS):
        batch = make_batch(head, step)
        loss = loss_of(head, model(**(batch if rank is None else shard(batch, rank))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# -- the two worker processes -------------------------------------------------------------------------------


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        from torch.nn.parallel import DistributedDataParallel

        for head in HEADS:
            model = build(head)
            train(head, DistributedDataParallel(model), rank)
            if rank == 0:
                torch.save(model.state_dict(), Path(out_dir) / f"ddp-{head}.pt")

        from torch.distributed.fsdp import fully_shard

        for head in FSDP_HEADS:
            model = build(head)
            for layer in model.rembert.encoder.layer:
                fully_shard(layer)
            fully_shard(model)
            train(head, model, rank)
            full = {name: p.full_tensor() for name, p in model.named_parameters()}  # every rank gathers
            if rank == 0:
                torch.save(full, Path(out_dir) / f"fsdp-{head}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # torch 2.13's gloo threads sometimes abort the interpreter's normal shutdown ("terminate called without an
    # active exception") after all the work is done and saved: leave without running C++ static destructors.
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results():
    """Run every DDP and FSDP case once in 2 spawned processes; their final parameters, by file name."""
    with tempfile.TemporaryDirectory() as out_dir:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_worker, args=(_free_port(), out_dir), nprocs=WORLD, join=True)
        yield {p.stem: torch.load(p) for p in Path(out_dir).glob("*.pt")}


def assert_same_parameters(head: str, trained: dict[str, torch.Tensor]) -> None:
    single = build(head)
    initial = {k: v.clone() for k, v in single.state_dict().items()}
    losses = train(head, single)
    assert all(math.isfinite(x) for x in losses)
    reference = single.state_dict()
    assert set(trained) == set(reference)
    moved = max(float((reference[k] - initial[k]).abs().max()) for k in reference)
    assert moved > 1e-3, "the steps should change the weights measurably"
    for key, value in reference.items():
        torch.testing.assert_close(trained[key], value, atol=1e-5, rtol=0, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("head", list(HEADS))
def test_ddp_two_processes_equal_one_process_on_the_combined_batch(distributed_results, head):
    assert_same_parameters(head, distributed_results[f"ddp-{head}"])


@pytest.mark.parametrize("head", FSDP_HEADS)
def test_fsdp_two_processes_equal_one_process_on_the_combined_batch(distributed_results, head):
    assert_same_parameters(head, distributed_results[f"fsdp-{head}"])


# -- one process --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", list(HEADS))
def test_gradient_checkpointing_gives_the_same_gradients(head):
    model = build(head, config_for(head, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    model.train()
    batch = make_batch(head, 0)

    def grads() -> list[torch.Tensor]:
        torch.manual_seed(1)  # the same dropout masks in both runs
        model.zero_grad()
        loss_of(head, model(**batch)).backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.gradient_checkpointing_enable()
    checkpointed = grads()
    assert any(float(g.abs().max()) > 0 for g in plain)
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("head", list(HEADS))
def test_bfloat16_autocast_trains_with_finite_losses(head):
    model = build(head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = model(**make_batch(head, step))
            loss = loss_of(head, outputs)
        first = next(v for k, v in outputs.items() if k != "loss")
        assert first.dtype == torch.bfloat16, "autocast should run the matmuls in bfloat16"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses), losses
    assert all(p.dtype == torch.float32 and bool(p.isfinite().all()) for p in model.parameters())
