"""PyTorch inference: RemBertModel on 8 sequences of 15-128 tokens padded to 128, ours vs Hugging Face.

Full google/rembert size, random weights. Prints both times, the ratio (target <= 0.6x), the max abs difference
at real positions (must stay <= 1e-4), and the fraction of this machine's float32 matmul peak we reach.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import full_size_checkpoint, ratio_line  # noqa: E402

LENGTHS = [15, 128, 40, 77, 22, 100, 60, 31]
REPEATS = 3


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(len(LENGTHS), 128, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = torch.randint(5, 250000, (n,), generator=g)
        mask[i, :n] = 1
    return ids, mask


def best_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds = best_time(lambda: a @ b, repeats=10)
    return 2 * 2048**3 / seconds / 1e9


def forward_gflops(config, real_tokens: int, batch_size: int, length: int) -> float:
    """Useful work of one forward on the real tokens: matmuls of projections, FFN and attention."""
    h, f, e = config.hidden_size, config.intermediate_size, config.input_embedding_size
    per_token = 2 * (e * h + config.num_hidden_layers * (4 * h * h + 2 * h * f))
    attention = config.num_hidden_layers * 2 * 2 * batch_size * length * length * h
    return (real_tokens * per_token + attention) / 1e9


def main() -> None:
    import transformers

    import rembert_pt

    directory = full_size_checkpoint("base")
    torch.manual_seed(0)
    ids, mask = batch()
    ours = rembert_pt.RemBertModel.from_pretrained(directory)
    theirs = transformers.RemBertModel.from_pretrained(directory).eval()
    with torch.inference_mode():
        ours(input_ids=ids, attention_mask=mask)  # warm-up
        theirs(input_ids=ids, attention_mask=mask)
        t_ours = best_time(lambda: ours(input_ids=ids, attention_mask=mask))
        t_theirs = best_time(lambda: theirs(input_ids=ids, attention_mask=mask))
        a = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        b = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    diff = float((a - b)[mask.bool()].abs().max())
    peak = matmul_peak_gflops()
    work = forward_gflops(ours.config, int(mask.sum()), *ids.shape)
    print(ratio_line("PyTorch inference (8 x 15-128 tokens)", t_ours, t_theirs, "s", "<= 0.60x"))
    print(f"max abs difference at real positions: {diff:.2e} (limit 1e-4)")
    print(
        f"float32 matmul peak {peak:.0f} GFLOP/s; our forward does {work:.0f} GFLOP of useful work "
        f"= {work / t_ours:.0f} GFLOP/s = {work / t_ours / peak:.0%} of peak"
    )
    assert diff <= 1e-4, "outputs differ from the reference"


if __name__ == "__main__":
    main()
