"""PyTorch family: behaviour users rely on, checked against the model itself where no oracle applies."""

from __future__ import annotations

import json

import pytest
import torch

import rembert_pt
from rembert_spec import CheckpointError
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config
from tests.pt.test_oracle import batch_for


def model_class(head: str):
    return getattr(rembert_pt, HEADS[head].pt_class)


@pytest.mark.parametrize("with_cross_attention", [False, True])
def test_cached_decoding_equals_full_forward(with_cross_attention):
    config = tiny_config(is_decoder=True, add_cross_attention=with_cross_attention)
    torch.manual_seed(0)
    model = rembert_pt.RemBertForCausalLM(config).eval()
    ids = torch.randint(1, config.vocab_size, (2, 8))
    mask = torch.ones_like(ids)
    extra = {}
    if with_cross_attention:
        extra = dict(
            encoder_hidden_states=torch.randn(2, 5, config.hidden_size),
            encoder_attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        )
    with torch.no_grad():
        full = model(ids, attention_mask=mask, **extra).logits
        out = model(ids[:, :3], attention_mask=mask[:, :3], use_cache=True, **extra)
        steps = [out.logits]
        past = out.past_key_values
        for t in range(3, 8):
            out = model(
                ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=past, use_cache=True, **extra
            )
            past = out.past_key_values
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert len(past) == config.num_hidden_layers and len(past[0]) == (4 if with_cross_attention else 2)
    assert past[0][0].shape == (2, config.num_attention_heads, 8, config.head_size)


def test_logits_to_keep_keeps_the_last_positions():
    config = tiny_config(is_decoder=True)
    model = rembert_pt.RemBertForCausalLM(config).eval()
    ids = torch.randint(1, config.vocab_size, (2, 6))
    with torch.no_grad():
        full = model(ids).logits
        last = model(ids, logits_to_keep=1).logits
    torch.testing.assert_close(last, full[:, -1:])


@pytest.mark.parametrize("source_head", ["masked_lm", "base"])
@pytest.mark.parametrize("target_head", list(HEADS))
def test_any_head_loads_into_any_head(source_head, target_head, tmp_path):
    from rembert_spec.weights import weight_spec

    config = tiny_config(is_decoder=target_head == "causal_lm")
    write_random_checkpoint(tmp_path, config, source_head, seed=3)
    model, info = model_class(target_head).from_pretrained(tmp_path, output_loading_info=True)
    written = {e.name: e for e in weight_spec(config, source_head)}
    target = {e.name: e for e in model.weight_spec()}
    # Shared weights arrive; the target's others are new; the source's others are reported unused. Both lists
    # use the loading model's names.
    assert info["missing_keys"] == [e.pt_key for n, e in target.items() if n not in written]
    prefix = HEADS[target_head].base_prefix
    assert info["unexpected_keys"] == [
        prefix + n if e.in_backbone else n for n, e in written.items() if n not in target
    ]
    assert model.training is False


def test_new_head_weights_are_initialised_and_shared_ones_loaded(tmp_path):
    config = tiny_config(num_labels=4)
    write_random_checkpoint(tmp_path, config, "masked_lm", seed=5)
    mlm = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    clf = rembert_pt.RemBertForTokenClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(
        clf.rembert.encoder.layer[1].output.dense.weight, mlm.rembert.encoder.layer[1].output.dense.weight
    )
    assert clf.classifier.weight.shape == (4, config.hidden_size)
    assert torch.all(clf.classifier.bias == 0) and 0.005 < clf.classifier.weight.std() < 0.05


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(num_labels=3), "sequence_classification")
    with pytest.raises(CheckpointError) as info:
        rembert_pt.RemBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    message = str(info.value)
    assert "'classifier.weight'" in message and "(3, 12)" in message and "(5, 12)" in message
    model, report = rembert_pt.RemBertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert ("classifier.weight", (3, 12), (5, 12)) in report["mismatched_keys"]
    assert model.classifier.weight.shape == (5, 12)


@pytest.mark.parametrize("head", list(HEADS))
def test_save_load_round_trip_is_exact(head, tmp_path):
    config = tiny_config(is_decoder=head == "causal_lm")
    torch.manual_seed(7)
    model = model_class(head)(config).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [HEADS[head].pt_class] and saved["model_type"] == "rembert"
    again = model_class(head).from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_sharded_save_and_load(tmp_path):
    config = tiny_config()
    model = rembert_pt.RemBertForMaskedLM(config)
    written = model.save_pretrained(tmp_path, max_shard_size="4KB")
    names = sorted(p.name for p in written)
    assert "model.safetensors.index.json" in names and len([n for n in names if n.startswith("model-0")]) > 2
    assert not (tmp_path / "model.safetensors").exists()
    again = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bfloat16_save_and_load(tmp_path):
    model = rembert_pt.RemBertModel(tiny_config()).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    again = rembert_pt.RemBertModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert b.dtype == torch.bfloat16 and torch.equal(a, b)


def test_initialisation_follows_the_spec():
    config = tiny_config(vocab_size=400, initializer_range=0.05)
    model = rembert_pt.RemBertForMaskedLM(config)
    emb = model.get_input_embeddings().weight
    assert torch.all(emb[config.pad_token_id] == 0)
    assert 0.045 < emb[1:].std() < 0.055
    ln = model.rembert.encoder.layer[0].output.LayerNorm
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    assert torch.all(model.cls.predictions.decoder.bias == 0)


def test_resize_token_embeddings_grows_input_and_decoder():
    config = tiny_config()
    model = rembert_pt.RemBertForMaskedLM(config).eval()
    old_in = model.get_input_embeddings().weight.clone()
    old_out = model.get_output_embeddings().weight.clone()
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120 and model.rembert.config.vocab_size == 120
    assert torch.equal(model.get_input_embeddings().weight[:99], old_in)
    assert torch.equal(model.get_output_embeddings().weight[:99], old_out)
    assert model(torch.tensor([[119, 3]])).logits.shape == (1, 2, 120)
    assert model.get_input_embeddings() is model.rembert.embeddings.word_embeddings


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    model = rembert_pt.RemBertForSequenceClassification(config)
    model.train()
    batch = batch_for("sequence_classification", config)

    def grads():
        torch.manual_seed(1)  # the same dropout masks in both runs
        model.zero_grad()
        model(**batch).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed = grads()
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_return_dict_false_gives_the_tuple_of_present_fields():
    config = tiny_config()
    model = rembert_pt.RemBertForTokenClassification(config).eval()
    batch = batch_for("token_classification", config)
    as_dict = model(**batch)
    as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    torch.testing.assert_close(as_tuple[0], as_dict.loss)
    torch.testing.assert_close(as_tuple[1], as_dict.logits)
    assert as_dict[0] is as_dict.loss and as_dict.hidden_states is None


def test_decoder_rows_with_empty_masks_stay_finite():
    model = rembert_pt.RemBertForCausalLM(tiny_config(is_decoder=True)).to(torch.float16).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7]]), attention_mask=torch.tensor([[0, 0, 0]])).logits
    assert torch.isfinite(logits).all()
