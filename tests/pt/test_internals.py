"""rembert_pt.internals: each hook pinned to the private behaviour it relies on (a torch or libc change that moves it
fails here), and the model computing the same numbers with every hook switched off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rembert_pt
from rembert_pt import internals
from rembert_spec import switches
from rembert_spec.testing import write_random_checkpoint
from tests.batches import batch_for
from tests.conftest import tiny_config
from tests.process_maps import mapped_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_switch_reads_names_and_refuses_unknown_ones():
    assert switches.disabled_hooks("torch", "") == set()
    assert switches.disabled_hooks("torch", "1") == set(internals.HOOKS)
    assert switches.disabled_hooks("torch", " adopt_pages , dlpack") == {"adopt_pages"}  # dlpack is TensorFlow's
    with pytest.raises(ValueError, match="no hook is named adopt_page"):
        switches.disabled_hooks("torch", "adopt_page")
    with pytest.raises(ValueError, match="rembert_pt has no hook 'dlpack'"):
        internals.active("dlpack")


def test_the_environment_variable_switches_hooks_off_at_import():
    code = "import json; from rembert_pt import internals; print(json.dumps(sorted(internals.DISABLED)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), switches.ENVIRONMENT_VARIABLE: "tensor_version,xla_context"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["tensor_version"]


# -- malloc: glibc's mallopt ---------------------------------------------------------------------------------


def test_malloc_pins_glibc_mallopt_and_switches_off(monkeypatch):
    monkeypatch.setattr(internals, "_malloc_tuned", False)
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"malloc"})
    assert internals.return_large_frees_to_the_os() is False  # switched off: the allocator is left alone
    monkeypatch.setattr(internals.SWITCHES, "disabled", set())
    monkeypatch.setenv("REMBERT_TUNE_MALLOC", "0")
    assert internals.return_large_frees_to_the_os() is False  # the older switch still works
    monkeypatch.delenv("REMBERT_TUNE_MALLOC")
    rembert_pt.RemBertModel(tiny_config()).train()
    assert internals._malloc_tuned is True  # glibc's mallopt accepted M_MMAP_THRESHOLD


# -- adopt_pages: param.data = tensor keeps the tensor's memory ----------------------------------------------


def test_adopt_pages_pins_that_assigning_data_keeps_the_memory():
    array = np.arange(6, dtype=np.float32)
    param = torch.nn.Parameter(torch.empty(6))
    param.data = torch.from_numpy(array)
    assert param.data_ptr() == array.ctypes.data
    array[0] = 7.0
    assert float(param.detach()[0]) == 7.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_loaded_parameters_live_on_the_checkpoint_pages_unless_switched_off(tmp_path, monkeypatch):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=1)
    model = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    weight = model.get_input_embeddings().weight
    assert mapped_file(weight.data_ptr()) == str(tmp_path / "model.safetensors")
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"adopt_pages"})
    copied = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    assert mapped_file(copied.get_input_embeddings().weight.data_ptr()) != str(tmp_path / "model.safetensors")
    torch.testing.assert_close(copied.get_input_embeddings().weight, weight, rtol=0, atol=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_pytorch_model_bin_written_by_torch_save_is_adopted_without_a_copy(tmp_path):
    """Hugging Face's save_pretrained(safe_serialization=False) goes through torch.save, which aligns every storage:
    the parameters are its copy-on-write pages, as with model.safetensors (they used to be copied from a read-only
    map: two passes and twice the memory)."""
    from transformers import RemBertForMaskedLM

    from tests.oracle import hf_config

    torch.manual_seed(0)
    theirs = RemBertForMaskedLM(hf_config(tiny_config()))
    theirs.save_pretrained(tmp_path, safe_serialization=False)
    before = (tmp_path / "pytorch_model.bin").read_bytes()
    ours = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    expected = theirs.state_dict()
    for name, param in ours.named_parameters():
        assert mapped_file(param.data_ptr()) == str(tmp_path / "pytorch_model.bin"), name
        torch.testing.assert_close(param, expected[name], rtol=0, atol=0)
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(1.0)  # private pages: the file never changes
    assert (tmp_path / "pytorch_model.bin").read_bytes() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_mmap_false_gives_parameters_memory_of_their_own(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=1)
    mapped = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    private = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path, mmap=False)
    for (name, a), (_, b) in zip(mapped.named_parameters(), private.named_parameters(), strict=True):
        assert mapped_file(b.data_ptr()) is None, name  # anonymous memory, read once
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- tensor_version: Tensor._version ----------------------------------------------------------------------------


def test_tensor_version_pins_the_in_place_write_counter(monkeypatch):
    decoder = torch.nn.Linear(4, 5)
    key = internals.weights_key(decoder.weight, decoder.bias)
    before = decoder.weight._version
    with torch.no_grad():
        decoder.weight[0, 0] += 1
    assert decoder.weight._version > before
    assert internals.weights_key(decoder.weight, decoder.bias) != key
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"tensor_version"})
    assert internals.weights_key(decoder.weight, decoder.bias) is None


# -- assert_async: torch._assert_async ----------------------------------------------------------------------------


def test_assert_async_pins_an_assertion_op_that_raises_with_its_message(monkeypatch):
    assert internals.assert_on_device(torch.tensor(True), "fine") is True
    with pytest.raises(RuntimeError, match="ids out of range"):
        internals.assert_on_device(torch.tensor(False), "ids out of range")
    # Recorded by torch.export as an op of the graph (not evaluated while tracing).
    program = torch.export.export(
        _Asserting(), (torch.tensor([1, 2]),), dynamic_shapes=({0: torch.export.Dim("n")},), strict=False
    )
    assert "aten._assert_async.msg" in str(program.graph)
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"assert_async"})
    assert internals.assert_on_device(torch.tensor(False), "not checked") is False


class _Asserting(torch.nn.Module):
    def forward(self, x):
        internals.assert_on_device((x >= 0).all(), "negative")
        return x + 1


# -- pytree: torch.utils._pytree -----------------------------------------------------------------------------------


def test_pytree_pins_that_registered_records_flatten_to_their_tensors():
    import torch.utils._pytree as pytree

    from rembert_spec.outputs import SequenceClassifierOutput

    record = SequenceClassifierOutput(logits=torch.ones(2), hidden_states=(torch.zeros(1),))
    leaves, spec = pytree.tree_flatten(record)
    assert len(leaves) == 2
    rebuilt = pytree.tree_unflatten([leaf + 1 for leaf in leaves], spec)
    assert type(rebuilt) is SequenceClassifierOutput and list(rebuilt) == ["logits", "hidden_states"]
    assert float(rebuilt.logits[0]) == 2.0


# -- int_mm: torch._int_mm ----------------------------------------------------------------------------------------


def test_int_mm_pins_exact_int8_products_and_the_float_fallback(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (5, 48), dtype=torch.int8, generator=generator)
    b = torch.randint(-128, 128, (24, 48), dtype=torch.int8, generator=generator).t()  # a transposed view
    expected = a.long() @ b.long()
    got = internals.int8_matmul(a, b)
    assert got.dtype == torch.int32 and bool((got.long() == expected).all())
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"int_mm"})
    assert bool((internals.int8_matmul(a, b).long() == expected).all())


_AVX2_INT8 = """
import sys
import torch
from rembert_pt import internals
from rembert_pt.quantize import Int8Linear
torch.manual_seed(0)
linear = torch.nn.Linear(256, 96)
linear.weight.data[:, ::2] = linear.weight.data.abs().amax()  # every pair of products at its largest
x = torch.randn(24, 256) * 5 + 2
x[:, ::2] = x.abs().amax()
with torch.no_grad():
    torch.save((Int8Linear(linear)(x), Int8Linear(linear, input_terms=2)(x)), sys.argv[1])
print(internals.int_mm_is_exact())
"""


def _int8_outputs(tmp_path, name: str, caps: dict[str, str]) -> tuple[str, tuple[torch.Tensor, ...]]:
    env = {**os.environ, **caps, "PYTHONPATH": str(ROOT)}
    out = tmp_path / f"{name}.pt"
    done = subprocess.run(
        [sys.executable, "-c", _AVX2_INT8, str(out)], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.split()[-1], torch.load(out)


def test_int8_layers_use_the_exact_int8_kernel_of_a_cpu_without_vnni(tmp_path):
    # oneDNN held to AVX2 (a CPU without VNNI) adds pairs of int8 products in saturating 16 bits. Int8Linear's
    # weights stay where that cannot overflow: the int8 kernel runs there (no float fallback) and gives what the
    # native kernel gives.
    native_exact, native = _int8_outputs(tmp_path, "native", {})
    avx2_exact, avx2 = _int8_outputs(tmp_path, "avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"})
    assert (native_exact, avx2_exact) == ("True", "True")
    for got, expected in zip(avx2, native, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


# -- everything off ---------------------------------------------------------------------------------------------


def test_with_every_hook_off_the_model_computes_the_same_numbers(tmp_path, monkeypatch):
    config = tiny_config(is_decoder=True, initializer_range=0.2)
    write_random_checkpoint(tmp_path, config, "causal_lm", seed=2)
    batch = {k: torch.from_numpy(v) for k, v in batch_for("causal_lm", config).items()}
    prompts, mask = torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]]), torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])

    def run() -> tuple[torch.Tensor, ...]:
        model = rembert_pt.RemBertForCausalLM.from_pretrained(tmp_path)
        tokens = model.generate(prompts, attention_mask=mask, max_new_tokens=6, eos_token_id=[])
        model.train()
        out = model(**batch)
        out.loss.backward()
        return out.logits.detach(), out.loss.detach(), model.cls.predictions.decoder.weight.grad, tokens

    hooks_on = run()
    monkeypatch.setattr(internals.SWITCHES, "disabled", set(internals.HOOKS))
    hooks_off = run()
    for on, off in zip(hooks_on, hooks_off, strict=True):
        torch.testing.assert_close(off, on, rtol=0, atol=0)
