"""Code written for Hugging Face transformers' PyTorch RemBERT runs unchanged on rembert_pt, with the same results:
loading arguments, Hub repo ids, saving, config objects, decoder warnings, inputs, padding and gradients.
Each test writes the call as a Hugging Face user does and, where transformers has the behaviour, compares."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from transformers.testing_utils import CaptureLogger

import rembert_pt
from rembert_pt import (
    RemBertForCausalLM,
    RemBertForMaskedLM,
    RemBertForSequenceClassification,
    RemBertModel,
)
from rembert_spec.inputs import InputError
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config
from tests.hub_cache import add_repo, files_of

IDS = torch.tensor([[5, 17, 42, 8, 33, 61, 9], [5, 33, 8, 61, 70, 0, 0], [0, 0, 5, 9, 9, 8, 70]])
MASK = (IDS != 0).long()


def checkpoint(tmp_path, head: str = "masked_lm", name: str = "model", **fields):
    directory = tmp_path / name
    write_random_checkpoint(directory, tiny_config(**fields), head, seed=3, noise=0.02)
    return directory


# -- outputs with padding ------------------------------------------------------------------------------------


def test_hidden_states_with_padding_get_the_gradients_hugging_face_gives(tmp_path):
    directory = checkpoint(tmp_path, "base")
    weights = torch.randn(*IDS.shape, 12, generator=torch.Generator().manual_seed(0))
    gradients = []
    for model in (RemBertModel.from_pretrained(directory), transformers.RemBertModel.from_pretrained(directory)):
        out = model(IDS, attention_mask=MASK, output_hidden_states=True)
        for hidden in out.hidden_states:
            hidden.retain_grad()
        (out.last_hidden_state * MASK[..., None] * weights).sum().backward()
        gradients.append([hidden.grad for hidden in out.hidden_states])
    ours, theirs = gradients
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a is not None
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("unpad", [True, False])
def test_cached_steps_give_the_full_forwards_values_at_every_position(unpad, tmp_path):
    directory = checkpoint(tmp_path, "causal_lm", is_decoder=True)
    model = RemBertForCausalLM.from_pretrained(directory, unpad=unpad)
    with torch.no_grad():
        full = model(IDS, attention_mask=MASK, output_hidden_states=True)
        step = model(IDS[:, :3], attention_mask=MASK[:, :3], use_cache=True, output_hidden_states=True)
        logits, hidden = [step.logits], [step.hidden_states[-1]]
        for t in range(3, IDS.shape[1]):
            step = model(
                IDS[:, t : t + 1],
                attention_mask=MASK[:, : t + 1],
                past_key_values=step.past_key_values,
                use_cache=True,
                output_hidden_states=True,
            )
            logits.append(step.logits)
            hidden.append(step.hidden_states[-1])
    hidden, logits = torch.cat(hidden, 1), torch.cat(logits, 1)
    padding = MASK == 0
    if unpad:  # padding positions hold zeros, whether computed in one forward or step by step
        assert bool((full.hidden_states[-1][padding] == 0).all())
        torch.testing.assert_close(hidden, full.hidden_states[-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits, full.logits, atol=1e-5, rtol=0)
    else:
        # Hugging Face's values: a padding position that sees no real token attends evenly to every position of
        # its forward, so what it holds depends on how the sequence was split. Real positions never do.
        torch.testing.assert_close(hidden[~padding], full.hidden_states[-1][~padding], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[~padding], full.logits[~padding], atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", ["sequence_classification", "masked_lm", "causal_lm", "token_classification"])
def test_padding_positions_a_head_reads_hold_hugging_faces_values(head, tmp_path):
    """Left padding puts the pooled first position on padding; Hugging Face's MLM collator (without
    return_special_tokens_mask) labels padding positions; a left-padded causal LM predicts the first real token
    from a padding position. Hugging Face computes those positions and its loss reads them: so do we."""
    directory = checkpoint(tmp_path, head, is_decoder=head == "causal_lm")
    labels = {
        "sequence_classification": torch.tensor([1, 0, 1]),
        "masked_lm": torch.where(MASK.bool(), -100, IDS + 1),  # labelled padding only
        "causal_lm": torch.where(IDS == 0, -100, IDS),  # row 2 is left-padded
        "token_classification": torch.where(MASK.bool(), 1, 0),  # padding labelled too
    }[head]
    ours = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(directory)
    theirs = getattr(transformers, HEADS[head].pt_class).from_pretrained(directory)
    with torch.no_grad():
        a, b = ours(IDS, attention_mask=MASK, labels=labels), theirs(IDS, attention_mask=MASK, labels=labels)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=0)
    if head == "sequence_classification":
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


# -- from_pretrained's arguments ---------------------------------------------------------------------------


def test_an_unknown_keyword_argument_is_a_type_error_as_in_hugging_face(tmp_path):
    directory = checkpoint(tmp_path)
    with pytest.raises(TypeError):
        transformers.RemBertForSequenceClassification.from_pretrained(directory, num_lables=3)
    with pytest.raises(TypeError, match=r"'num_lables' \(did you mean 'num_labels'\?\)"):
        RemBertForSequenceClassification.from_pretrained(directory, num_lables=3)
    with pytest.raises(TypeError, match=r"'torch_dtpye' \(did you mean 'torch_dtype'\?\)"):
        RemBertModel.from_pretrained(directory, torch_dtpye=torch.float16)
    # Hugging Face's arguments that change nothing here are accepted.
    model = RemBertForSequenceClassification.from_pretrained(
        directory, num_labels=3, low_cpu_mem_usage=True, attn_implementation="sdpa", trust_remote_code=False
    )
    assert model.config.num_labels == 3


def test_sparse_prediction_is_saved_in_config_json_and_read_back(tmp_path):
    model = RemBertForMaskedLM.from_pretrained(checkpoint(tmp_path), sparse_prediction=True)
    model.save_pretrained(tmp_path / "sparse")
    assert json.loads((tmp_path / "sparse" / "config.json").read_text())["sparse_prediction"] is True
    assert RemBertForMaskedLM.from_pretrained(tmp_path / "sparse").config.sparse_prediction
    labels = torch.where(MASK.bool(), IDS, -100)
    theirs = transformers.RemBertForMaskedLM.from_pretrained(tmp_path / "sparse")  # the extra key is ignored there
    with torch.no_grad():
        torch.testing.assert_close(theirs(IDS, labels=labels).loss, model(IDS, labels=labels).loss, atol=1e-5, rtol=0)


def test_use_safetensors_narrows_the_files_read(tmp_path):
    directory = checkpoint(tmp_path)
    RemBertForMaskedLM.from_pretrained(directory).save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert RemBertForMaskedLM.from_pretrained(directory, use_safetensors=True) is not None
    with pytest.raises(OSError, match="use_safetensors=True but there is no model.safetensors"):
        RemBertForMaskedLM.from_pretrained(tmp_path / "bin", use_safetensors=True)
    assert RemBertForMaskedLM.from_pretrained(tmp_path / "bin", use_safetensors=False) is not None


def test_unknown_keys_of_a_config_json_are_kept(tmp_path):
    directory = checkpoint(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "my_setting": [1, 2]}))
    model = RemBertForMaskedLM.from_pretrained(directory)
    assert model.config.extra["my_setting"] == [1, 2]
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["my_setting"] == [1, 2]


def dtype_cases():
    return [
        (dict(dtype=torch.bfloat16), "float32"),
        (dict(torch_dtype=torch.float16), "float32"),
        (dict(dtype="bfloat16"), "float32"),
        (dict(torch_dtype="float16"), "float32"),
        (dict(dtype="auto"), "float32"),
        (dict(dtype="auto"), "bfloat16"),
        (dict(torch_dtype="auto"), "bfloat16"),
        (dict(), "bfloat16"),
    ]


@pytest.mark.parametrize("kwargs, stored", dtype_cases())
def test_dtype_arguments_give_hugging_faces_dtype(kwargs, stored, tmp_path):
    directory = tmp_path / "model"
    write_random_checkpoint(directory, tiny_config(), "masked_lm", seed=3, dtype=stored)
    ours = RemBertForMaskedLM.from_pretrained(directory, **kwargs)
    theirs = transformers.RemBertForMaskedLM.from_pretrained(directory, **kwargs)
    assert {p.dtype for p in ours.parameters()} == {p.dtype for p in theirs.parameters()} == {theirs.dtype}
    with torch.no_grad():
        torch.testing.assert_close(ours(IDS).logits, theirs(IDS).logits, atol=2e-2, rtol=0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(dtype="int8"), "dtype must be a floating torch.dtype"),
        (dict(dtype=torch.int64), "dtype must be a floating torch.dtype"),
        (dict(dtype="bfloat17"), "got 'bfloat17'"),
        (dict(dtype=torch.float16, torch_dtype=torch.bfloat16), "differ"),
    ],
)
def test_bad_dtypes_are_named(kwargs, words, tmp_path):
    with pytest.raises(ValueError, match=words):
        RemBertModel.from_pretrained(checkpoint(tmp_path), **kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(device_map="cpu"), dict(device_map="auto"), dict(device_map={"": "cpu"}), dict(device="cpu")]
)
def test_device_map_and_device_on_the_cpu(kwargs, tmp_path):
    directory = checkpoint(tmp_path)
    model = RemBertForMaskedLM.from_pretrained(directory, **kwargs)
    expected = "cuda" if kwargs.get("device_map") == "auto" and torch.cuda.is_available() else "cpu"
    assert {p.device.type for p in model.parameters()} == {expected}
    theirs = transformers.RemBertForMaskedLM.from_pretrained(directory)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS.to(model.device)).logits.cpu(), theirs(IDS).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(device_map="cuda:7"), "'cuda:7' is not available"),
        (dict(device="mps"), "'mps' is not available"),
        (dict(device_map="nowhere"), "'nowhere' is not a device"),
        (dict(device_map="meta"), "meta device"),
        (dict(device_map={"rembert": 0, "cls": "cpu"}), "one device"),
        (dict(device_map="cpu", device="cpu"), "not both"),
    ],
)
def test_unavailable_or_bad_devices_are_named(kwargs, words, tmp_path):
    if "cuda:7" in str(kwargs) and torch.cuda.device_count() > 7:
        kwargs = dict(device_map=f"cuda:{torch.cuda.device_count()}")
        words = "is not available"
    with pytest.raises(ValueError, match=words):
        RemBertModel.from_pretrained(checkpoint(tmp_path), **kwargs)


def test_cuda_is_refused_clearly_when_there_is_no_gpu_and_used_when_there_is(tmp_path):
    directory = checkpoint(tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available on this machine"):
            RemBertModel.from_pretrained(directory, device_map="cuda")
        return
    model = RemBertForMaskedLM.from_pretrained(directory, device_map="cuda")
    assert {p.device.type for p in model.parameters()} == {"cuda"}


# -- Hub repo ids --------------------------------------------------------------------------------------------


def test_a_hub_repo_id_loads_what_hugging_face_loads_from_the_same_cache(tmp_path):
    cache = tmp_path / "cache"
    add_repo(cache, "google/rembert", files_of(checkpoint(tmp_path, "masked_lm", "v0")))
    add_repo(cache, "google/rembert", files_of(checkpoint(tmp_path, "masked_lm", "v1", hidden_act="relu")), "v1")
    for options in ({}, {"revision": "v1"}, {"local_files_only": True, "token": "hf_unused"}):
        ours = RemBertForMaskedLM.from_pretrained("google/rembert", cache_dir=cache, **options)
        theirs = transformers.RemBertForMaskedLM.from_pretrained("google/rembert", cache_dir=cache, **options)
        assert ours.config.hidden_act == theirs.config.hidden_act
        with torch.no_grad():
            torch.testing.assert_close(ours(IDS).logits, theirs(IDS).logits, atol=1e-5, rtol=0)


def test_a_hub_subfolder_and_pytorch_model_bin_shards(tmp_path):
    cache = tmp_path / "cache"
    source = RemBertForSequenceClassification.from_pretrained(checkpoint(tmp_path), num_labels=3)
    source.save_pretrained(tmp_path / "bin", safe_serialization=False, max_shard_size="4KB")
    assert len(list((tmp_path / "bin").glob("pytorch_model-*.bin"))) > 1
    add_repo(cache, "org/classifier", files_of(tmp_path / "bin", prefix="classifier/"))
    ours = RemBertForSequenceClassification.from_pretrained("org/classifier", subfolder="classifier", cache_dir=cache)
    theirs = transformers.RemBertForSequenceClassification.from_pretrained(
        "org/classifier", subfolder="classifier", cache_dir=cache
    )
    with torch.no_grad():
        torch.testing.assert_close(ours(IDS).logits, theirs(IDS).logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(IDS).logits, source(IDS).logits, atol=0, rtol=0)


def test_a_missing_repo_or_path_is_named(tmp_path):
    with pytest.raises(OSError) as info:
        RemBertModel.from_pretrained("google/not-cached", cache_dir=tmp_path)
    assert "google/not-cached" in str(info.value) and "nothing" in str(info.value) and "cache" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        RemBertModel.from_pretrained("/x/nope")
    assert str(info.value) == "/x/nope: no such file or directory"


# -- save_pretrained -----------------------------------------------------------------------------------------


def test_pytorch_model_bin_reads_back_with_weights_only_and_in_hugging_face(tmp_path):
    model = RemBertForMaskedLM.from_pretrained(checkpoint(tmp_path))
    written = model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert sorted(p.name for p in written) == ["config.json", "pytorch_model.bin"]
    state = torch.load(tmp_path / "bin" / "pytorch_model.bin", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert all(type(t) is torch.Tensor and torch.equal(t, model.state_dict()[k]) for k, t in state.items())
    theirs = transformers.RemBertForMaskedLM.from_pretrained(tmp_path / "bin")
    again = RemBertForMaskedLM.from_pretrained(tmp_path / "bin")
    with torch.no_grad():
        expected = model(IDS).logits
        torch.testing.assert_close(theirs(IDS).logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(again(IDS).logits, expected, atol=0, rtol=0)


def test_save_pretrained_takes_hugging_faces_arguments_and_refuses_others(tmp_path):
    model = RemBertForSequenceClassification.from_pretrained(checkpoint(tmp_path), num_labels=2)
    with pytest.raises(TypeError, match="safe_serialisation"):
        model.save_pretrained(tmp_path / "typo", safe_serialisation=False)
    assert not (tmp_path / "typo").exists()
    assert model.save_pretrained(tmp_path / "worker", is_main_process=False) == []
    assert not (tmp_path / "worker").exists()
    changed = {k: v + 1 if k == "classifier.bias" else v for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "given", state_dict=changed)
    again = RemBertForSequenceClassification.from_pretrained(tmp_path / "given")
    assert torch.equal(again.classifier.bias, model.classifier.bias + 1)
    with pytest.raises(ValueError, match=r"missing \['classifier.bias'\]"):
        model.save_pretrained(tmp_path / "bad", state_dict={k: v for k, v in changed.items() if k != "classifier.bias"})


def test_push_to_hub_offline_is_a_clear_error_after_saving(tmp_path):
    model = RemBertForMaskedLM.from_pretrained(checkpoint(tmp_path))
    with pytest.raises(OSError, match="offline mode") as info:
        model.save_pretrained(tmp_path / "pushed", push_to_hub=True, repo_id="me/my-rembert", private=True)
    assert "'me/my-rembert'" in str(info.value) and str(tmp_path / "pushed") in str(info.value)
    assert RemBertForMaskedLM.from_pretrained(tmp_path / "pushed") is not None


# -- configs -------------------------------------------------------------------------------------------------


def test_a_transformers_config_object_builds_and_loads_our_models(tmp_path):
    fields = {k: v for k, v in tiny_config().to_dict().items() if k not in ("id2label", "label2id", "num_labels")}
    hf_config = transformers.RemBertConfig(**fields, num_labels=4)
    torch.manual_seed(0)
    built = RemBertForSequenceClassification(hf_config)
    assert built.config.num_labels == 4 and built.classifier.out_features == 4
    assert built.rembert.config is built.config
    directory = checkpoint(tmp_path, "sequence_classification", num_labels=4)
    loaded = RemBertForSequenceClassification.from_pretrained(directory, config=hf_config)
    theirs = transformers.RemBertForSequenceClassification.from_pretrained(directory, config=hf_config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, theirs(IDS).logits, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="RemBertModel needs a rembert_spec.RemBertConfig .* got builtins.dict"):
        RemBertModel({"hidden_size": 12})


def test_num_labels_set_on_the_config_then_train_and_save(tmp_path):
    config = rembert_pt.RemBertConfig.from_pretrained(checkpoint(tmp_path))
    config.num_labels = 3
    model = RemBertForSequenceClassification(config)
    loss = model(IDS, attention_mask=MASK, labels=torch.tensor([0, 2, 1])).loss
    loss.backward()
    model.save_pretrained(tmp_path / "saved")
    again = RemBertForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert again.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


# -- decoder warnings ----------------------------------------------------------------------------------------


def test_a_causal_lm_without_is_decoder_warns_as_hugging_face_does(tmp_path, caplog):
    directory = checkpoint(tmp_path)
    their_logger = transformers.logging.get_logger("transformers.models.rembert.modeling_rembert")
    with CaptureLogger(their_logger) as theirs:
        transformers.RemBertForCausalLM.from_pretrained(directory)

    def ours() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "rembert"]

    with caplog.at_level(logging.WARNING, logger="rembert"):
        RemBertForCausalLM.from_pretrained(directory)
        RemBertForCausalLM(tiny_config())
        assert len(ours()) == 2 and all(theirs.out.strip() in message for message in ours())
        caplog.clear()
        RemBertForCausalLM.from_pretrained(directory, is_decoder=True)
        RemBertForMaskedLM(tiny_config())
        assert ours() == []
        RemBertForMaskedLM(tiny_config(is_decoder=True))
        assert "make sure `config.is_decoder=False`" in ours()[0]


# -- training conveniences -----------------------------------------------------------------------------------


def test_gradient_checkpointing_kwargs_as_hugging_face(tmp_path):
    model = RemBertForSequenceClassification.from_pretrained(checkpoint(tmp_path), num_labels=2)
    model.train()
    labels = torch.tensor([1, 0, 1])

    def gradients():
        torch.manual_seed(0)  # the same dropout masks every time
        model.zero_grad()
        model(IDS, attention_mask=MASK, labels=labels).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = gradients()
    assert model.supports_gradient_checkpointing
    for kwargs in ({"use_reentrant": True}, {"use_reentrant": False, "preserve_rng_state": False}, None):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        assert model.is_gradient_checkpointing
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, gradients(), strict=True))
        model.gradient_checkpointing_disable()
    with pytest.raises(TypeError, match="use_reentrent"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrent": True})


# -- inputs --------------------------------------------------------------------------------------------------


def test_int32_inputs_give_the_int64_results_and_hugging_faces(tmp_path):
    directory = checkpoint(tmp_path)
    ours = RemBertForMaskedLM.from_pretrained(directory)
    theirs = transformers.RemBertForMaskedLM.from_pretrained(directory)
    labels = torch.where(MASK.bool(), IDS, -100)
    with torch.no_grad():
        wide = ours(IDS, attention_mask=MASK, labels=labels)
        narrow = ours(IDS.int(), attention_mask=MASK.int(), token_type_ids=torch.zeros_like(IDS, dtype=torch.int32),
                      labels=labels.int())  # fmt: skip
        reference = theirs(IDS.int(), attention_mask=MASK.int())
    torch.testing.assert_close(narrow.logits, wide.logits, atol=0, rtol=0)
    torch.testing.assert_close(narrow.loss, wide.loss, atol=0, rtol=0)
    real = MASK.bool()
    torch.testing.assert_close(narrow.logits[real], reference.logits[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8])
def test_narrow_integer_ids_are_an_input_error(dtype):
    model = RemBertModel(tiny_config())
    with pytest.raises(InputError, match=f"input_ids must be int32 or int64, got {str(dtype)[6:]}"):
        model(IDS.to(dtype))


@pytest.mark.parametrize("form", ["numpy", "list"])
def test_arrays_and_lists_are_an_input_error_saying_to_pass_a_tensor(form):
    model = RemBertForSequenceClassification(tiny_config())
    ids = IDS.numpy() if form == "numpy" else IDS.tolist()
    with pytest.raises(InputError, match="input_ids must be a torch.Tensor, got .*return_tensors='pt'"):
        model(ids)
    with pytest.raises(InputError, match="attention_mask must be a torch.Tensor"):
        model(IDS, attention_mask=np.asarray(MASK))
    with pytest.raises(InputError, match="labels must be a torch.Tensor, got list"):
        model(IDS, labels=[0, 1, 1])
