"""PyTorch: bad files never crash or run code; awkward but legal input stays finite."""

from __future__ import annotations

import json
import pickle
import zipfile

import pytest
import torch

import rembert_pt
from rembert_spec import CheckpointError
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config


@pytest.fixture
def model_dir(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=0)
    return tmp_path


def test_truncated_safetensors_names_the_file(model_dir):
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        rembert_pt.RemBertForMaskedLM.from_pretrained(model_dir)


def test_truncated_h5_names_the_file(model_dir, tmp_path_factory):
    h5_dir = tmp_path_factory.mktemp("h5")
    write_random_checkpoint(h5_dir, tiny_config(), "masked_lm", fmt="tf_h5")
    path = h5_dir / "tf_model.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="tf_model.h5"):
        rembert_pt.RemBertForMaskedLM.from_pretrained(h5_dir)


@pytest.mark.parametrize(
    "content, words",
    [("{oops", "not valid JSON"), ('{"hidden_size": 10, "num_attention_heads": 3}', "must be divisible")],
)
def test_bad_config_json(model_dir, content, words):
    (model_dir / "config.json").write_text(content)
    with pytest.raises(ValueError, match=words):
        rembert_pt.RemBertModel.from_pretrained(model_dir)


def test_pickle_that_runs_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    tiny_config().save_pretrained(tmp_path)
    with zipfile.ZipFile(tmp_path / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"embeddings.word_embeddings.weight": Payload()}, protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError, match="refused to load global"):
        rembert_pt.RemBertModel.from_pretrained(tmp_path)
    assert not marker.exists()


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


def test_shard_index_leaving_the_directory_is_refused(model_dir):
    (model_dir / "model.safetensors").rename(model_dir.parent / "elsewhere.safetensors")
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "../elsewhere.safetensors"}})
    )
    with pytest.raises(CheckpointError, match="refused shard file name"):
        rembert_pt.RemBertModel.from_pretrained(model_dir)


def test_missing_weights_are_named(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no weights found"):
        rembert_pt.RemBertModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("unpad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_awkward_input_stays_finite(dtype, unpad):
    torch.manual_seed(0)
    model = rembert_pt.RemBertForSequenceClassification(tiny_config(unpad=unpad)).to(dtype).eval()
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])  # a row with nothing to attend to
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
        one = model(torch.tensor([[5]]))
    for tensor in (out.logits, one.logits, *out.hidden_states, *out.attentions):
        assert torch.isfinite(tensor).all()


def test_decoder_rows_with_empty_masks_stay_finite():
    model = rembert_pt.RemBertForCausalLM(tiny_config(is_decoder=True)).to(torch.float16).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7]]), attention_mask=torch.tensor([[0, 0, 0]])).logits
    assert torch.isfinite(logits).all()
