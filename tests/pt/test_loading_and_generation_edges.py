"""Edges of the shared from_pretrained and generate logic that the first `make mutate` run after the Hugging Face
compatibility work left untested (tools/mutate.py): which file use_safetensors=False reads when a directory holds
two formats, what ignore_mismatched_sizes leaves in the re-initialised weights, and the exact step from which
min_new_tokens lets an end-of-sequence id through. Each is compared with transformers doing the same call."""

from __future__ import annotations

import shutil

import pytest
import torch
import transformers

from rembert_pt import RemBertForCausalLM, RemBertForMaskedLM, RemBertForSequenceClassification
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config

IDS = torch.tensor([[5, 17, 42, 8, 33, 61, 9], [5, 33, 8, 61, 70, 0, 0]])


@pytest.fixture(autouse=True)
def _quiet_transformers():
    transformers.logging.set_verbosity_error()


@pytest.mark.parametrize("use_safetensors", [None, False, True])
def test_a_directory_with_two_formats_reads_the_file_hugging_face_reads(use_safetensors, tmp_path):
    # model.safetensors and pytorch_model.bin of two different models in one directory: which one was read shows.
    write_random_checkpoint(tmp_path / "both", tiny_config(), "masked_lm", seed=1)
    write_random_checkpoint(tmp_path / "other", tiny_config(), "masked_lm", seed=2)
    RemBertForMaskedLM.from_pretrained(tmp_path / "other").save_pretrained(tmp_path / "bin", safe_serialization=False)
    shutil.copy(tmp_path / "bin" / "pytorch_model.bin", tmp_path / "both" / "pytorch_model.bin")

    ours = RemBertForMaskedLM.from_pretrained(tmp_path / "both", use_safetensors=use_safetensors)
    theirs = transformers.RemBertForMaskedLM.from_pretrained(tmp_path / "both", use_safetensors=use_safetensors)
    first, second = (RemBertForMaskedLM.from_pretrained(tmp_path / name).state_dict() for name in ("both", "other"))
    assert not any(torch.equal(first[key], second[key]) for key in first if key.endswith("query.weight"))
    mine, reference = ours.state_dict(), theirs.state_dict()
    for key, value in mine.items():
        torch.testing.assert_close(value, reference[key], atol=0, rtol=0, msg=key)


def test_weights_re_initialised_for_a_new_label_count_are_real_and_drawn_as_hugging_face_draws(tmp_path):
    config = tiny_config(num_labels=3, initializer_range=0.05)
    write_random_checkpoint(tmp_path, config, "sequence_classification", seed=4)
    kwargs = dict(num_labels=5, ignore_mismatched_sizes=True)
    torch.manual_seed(0)
    ours = RemBertForSequenceClassification.from_pretrained(tmp_path, **kwargs)
    theirs = transformers.RemBertForSequenceClassification.from_pretrained(tmp_path, **kwargs).eval()
    for model in (ours, theirs):
        weight, bias = model.classifier.weight.detach(), model.classifier.bias.detach()
        assert weight.device.type == "cpu" and bias.device.type == "cpu"  # not left on the meta device
        assert torch.isfinite(weight).all() and torch.equal(bias, torch.zeros_like(bias))
        # normal(0, initializer_range) as Hugging Face draws them: 60 values, a generous band around 0.05
        assert 0.03 < float(weight.std()) < 0.07 and abs(float(weight.mean())) < 0.03
    with torch.no_grad():  # everything but the new classifier came from the file: the same pooled features
        theirs.classifier.load_state_dict(ours.classifier.state_dict())
        torch.testing.assert_close(ours(IDS).logits, theirs(IDS).logits, atol=1e-5, rtol=0)


def test_min_new_tokens_releases_the_end_of_sequence_id_at_the_step_hugging_face_does(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(is_decoder=True, initializer_range=0.2), "causal_lm", noise=0.1)
    ours = RemBertForCausalLM.from_pretrained(tmp_path)
    theirs = transformers.RemBertForCausalLM.from_pretrained(tmp_path, is_decoder=True).eval()
    prompt = torch.tensor([[5, 6, 7, 8, 9, 10]])
    free = ours.generate(prompt, max_new_tokens=12, eos_token_id=[])[0, prompt.shape[1] :].tolist()
    # An id the free run first produces at a later step i: it may end the row at step i only when min_new_tokens
    # <= i; with min_new_tokens = i + 1 the row must run on past it.
    step = next(i for i, token in enumerate(free) if i >= 2 and token not in free[:i])
    eos = free[step]
    for min_new_tokens in (step, step + 1):
        settings = dict(max_new_tokens=12, eos_token_id=eos, pad_token_id=98, min_new_tokens=min_new_tokens)
        mine = ours.generate(prompt, **settings)
        with torch.no_grad():
            reference = theirs.generate(prompt, do_sample=False, **settings)
        assert torch.equal(mine, reference), f"min_new_tokens={min_new_tokens}"
        ended_at_step = mine.shape[1] == prompt.shape[1] + step + 1
        assert ended_at_step == (min_new_tokens == step), f"min_new_tokens={min_new_tokens}"
