"""PyTorch family against Hugging Face transformers 4.x: names, checkpoints in both directions, numbers."""

from __future__ import annotations

import pytest
import torch

import rembert_pt
from rembert_spec import weight_spec
from rembert_spec.weights import HEADS
from tests import batches
from tests.batches import config_for
from tests.conftest import tiny_config
from tests.oracle import hf_config, hf_pt_class

ALL_HEADS = list(HEADS)


def batch_for(head: str, config, seed: int = 0) -> dict[str, torch.Tensor]:
    """The shared padded batch with token types and the head's labels, as torch tensors."""
    return {k: torch.from_numpy(v) for k, v in batches.batch_for(head, config, seed).items()}


def output_fields(head: str) -> list[str]:
    return {"base": ["last_hidden_state", "pooler_output"], "question_answering": ["start_logits", "end_logits"]}.get(
        head, ["logits"]
    )


def assert_same_outputs(theirs, ours, head: str, batch=None, atol: float = 1e-5) -> None:
    """Equal everywhere, or, when `batch` has an attention mask and our model skips padding, equal at the real
    positions with zeros in our hidden states at the padding ones."""
    real = None
    if batch is not None and "attention_mask" in batch:
        real = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).bool()

    def same(a, b, per_token: bool) -> None:
        if real is not None and per_token:
            a, b = (
                a.reshape(real.shape + a.shape[-(a.dim() - 2) :] if a.dim() > 2 else real.shape),
                b.reshape(real.shape + b.shape[-(b.dim() - 2) :] if b.dim() > 2 else real.shape),
            )
            a, b = a[real], b[real]
        torch.testing.assert_close(a, b, atol=atol, rtol=0)

    for field in output_fields(head):
        same(ours[field], theirs[field], per_token=field not in ("pooler_output",) and head not in _POOLED)
    if "loss" in theirs:
        torch.testing.assert_close(ours["loss"], theirs["loss"], atol=atol, rtol=0)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == len(ours.attentions) + 1
    for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        same(a, b, per_token=True)
        if real is not None:
            assert torch.all(a.reshape(*real.shape, -1)[~real] == 0)
    for a, b in zip(ours.attentions, theirs.attentions, strict=True):
        if real is not None:  # rows of padding queries are zero; rows of real queries match
            a, b = a.transpose(1, 2).reshape(*real.shape, -1), b.transpose(1, 2).reshape(*real.shape, -1)
        same(a, b, per_token=True)


_POOLED = ("sequence_classification", "multiple_choice")


def padded(batch, head: str, unpad: bool):
    """The batch whose padding our model skips, or None where it computes padding as Hugging Face does (the QA
    loss needs every position)."""
    return batch if unpad and head != "question_answering" else None


def run(model, batch, **kwargs):
    with torch.no_grad():
        return model(**batch, output_hidden_states=True, output_attentions=True, **kwargs)


@pytest.mark.parametrize("head", ALL_HEADS)
def test_spec_names_equal_hugging_face_pytorch_keys(head):
    config = config_for(head, is_decoder=True, add_cross_attention=True)
    theirs = hf_pt_class(head)(hf_config(config))
    assert [e.pt_key for e in weight_spec(config, head)] == list(theirs.state_dict())
    assert [e.shape for e in weight_spec(config, head)] == [tuple(v.shape) for v in theirs.state_dict().values()]


@pytest.mark.parametrize("unpad", [False, True])
@pytest.mark.parametrize("head", ALL_HEADS)
def test_hugging_face_checkpoint_loads_and_matches(head, unpad, tmp_path):
    config = config_for(head)
    torch.manual_seed(0)
    theirs = hf_pt_class(head)(hf_config(config)).eval()
    theirs.save_pretrained(tmp_path)
    ours, info = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(
        tmp_path, output_loading_info=True, unpad=unpad
    )
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    batch = batch_for(head, config)
    assert_same_outputs(run(theirs, batch), run(ours, batch), head, padded(batch, head, unpad))


@pytest.mark.parametrize("head", ALL_HEADS)
def test_our_checkpoint_loads_in_hugging_face_and_matches(head, tmp_path):
    config = config_for(head, hidden_act="gelu_new")
    torch.manual_seed(1)
    ours = getattr(rembert_pt, HEADS[head].pt_class)(config).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = hf_pt_class(head).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    batch = batch_for(head, config, seed=1)
    assert_same_outputs(run(theirs.eval(), batch), run(ours, batch), head, padded(batch, head, True))


@pytest.mark.parametrize("head", ["masked_lm", "causal_lm"])
def test_sparse_prediction_logits_are_the_rows_of_the_full_logits(head, tmp_path):
    config = config_for(head)
    torch.manual_seed(2)
    theirs = hf_pt_class(head)(hf_config(config)).eval()
    theirs.save_pretrained(tmp_path)
    ours = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(tmp_path, sparse_prediction=True)
    batch = batch_for(head, config, seed=2)
    full, labelled = run(theirs, batch), run(ours, batch)
    labels = batch["labels"]
    if head == "causal_lm":
        counted = full.logits[:, :-1][labels[:, 1:] != -100]
    else:
        counted = full.logits[labels != -100]
    torch.testing.assert_close(labelled.logits, counted, atol=1e-5, rtol=0)
    torch.testing.assert_close(labelled.loss, full.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification", "single_label_classification"])
def test_sequence_classification_losses_match(problem, tmp_path):
    num_labels = 1 if problem == "regression" else 3
    config = tiny_config(num_labels=num_labels)
    torch.manual_seed(3)
    theirs = hf_pt_class("sequence_classification")(hf_config(config)).eval()
    theirs.save_pretrained(tmp_path)
    ours = rembert_pt.RemBertForSequenceClassification.from_pretrained(tmp_path)
    batch = batch_for("sequence_classification", config)
    if problem == "regression":
        batch["labels"] = torch.tensor([0.5, -1.0, 2.0])
    elif problem == "multi_label_classification":
        batch["labels"] = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1]])
    else:
        batch["labels"] = torch.tensor([2, 0, 1])
    assert_same_outputs(run(theirs, batch), run(ours, batch), "sequence_classification", batch)


def test_decoder_with_cross_attention_matches(tmp_path):
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    torch.manual_seed(4)
    theirs = hf_pt_class("causal_lm")(hf_config(config)).eval()
    theirs.save_pretrained(tmp_path)
    ours = rembert_pt.RemBertForCausalLM.from_pretrained(tmp_path)
    batch = batch_for("causal_lm", config)
    batch["encoder_hidden_states"] = torch.randn(3, 5, config.hidden_size)
    batch["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    a, b = run(theirs, batch), run(ours, batch)
    assert_same_outputs(a, b, "causal_lm", batch)
    real = batch["attention_mask"].bool()
    for x, y in zip(a.cross_attentions, b.cross_attentions, strict=True):
        torch.testing.assert_close(y.transpose(1, 2)[real], x.transpose(1, 2)[real], atol=1e-5, rtol=0)
        assert torch.all(y.transpose(1, 2)[~real] == 0)


def test_hugging_face_tf_h5_loads_in_pytorch(tmp_path):
    import transformers

    config = tiny_config()
    theirs_tf = transformers.TFRemBertForMaskedLM(hf_config(config))
    theirs_tf(theirs_tf.dummy_inputs)
    theirs_tf.save_pretrained(tmp_path)
    ours = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    ids = torch.tensor([[5, 6, 7, 8]])
    expected = theirs_tf(input_ids=ids.numpy()).logits.numpy()
    with torch.no_grad():
        got = ours(input_ids=ids).logits.numpy()
    assert abs(got - expected).max() < 1e-5


def test_hugging_face_pytorch_model_bin_loads(tmp_path):
    import transformers

    config = tiny_config()
    theirs = transformers.RemBertForMaskedLM(transformers.RemBertConfig(**config.to_dict())).eval()
    theirs.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    ours = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    ids = torch.tensor([[4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", ALL_HEADS)
def test_gradients_equal_hugging_face(head, tmp_path):
    """Backward through our layers (the feed-forward recomputes its activations) gives Hugging Face's gradients."""
    config = config_for(head, hidden_act="gelu_new" if head == "token_classification" else "gelu")
    torch.manual_seed(5)
    theirs = hf_pt_class(head)(hf_config(config))
    theirs.save_pretrained(tmp_path)
    ours = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(tmp_path, unpad=False)
    batch = batch_for(head, config, seed=5)
    for model in (theirs, ours):
        model.eval()  # no dropout: the same numbers in both
        model.zero_grad()
        out = model(**batch)
        (out.loss if head != "base" else out.last_hidden_state.square().mean()).backward()
    expected = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param.grad, expected[name].grad, atol=1e-6, rtol=1e-5, msg=name)
