"""`rembert-convert`: options, head semantics, dtypes, shards, tokenizer files, messages and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from conversion import ConversionError, convert
from conversion.cli import EXIT_ERROR, EXIT_USAGE, main
from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS, TF_H5, write_weights
from rembert_spec.formats.hf_h5 import H5Reader
from rembert_spec.formats.safetensors import SafetensorsReader
from rembert_spec.testing import random_tensor
from rembert_spec.weights import HEADS, get_head, weight_spec
from tests.conftest import tiny_config
from tests.conversion.helpers import TOKENIZER_CONTENT, make_model, raw_tensors, spec_tensors

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def src(tmp_path) -> Path:
    return make_model(tmp_path / "src", tokenizer=True)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("rembert-convert: error: ")
    return lines[0]


# -- help and usage -----------------------------------------------------------------------------------------


def test_help_documents_every_option(capsys):
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    for option in ("--to", "--config", "--head", "--dtype", "--max-shard-size", "--verify", "--tolerance"):
        assert option in out
    for word in ("--force", "--quiet", "bfloat16", "5GB", "exit status", "rembert-convert-tmp", *HEADS):
        assert word in out


def test_module_runs_as_a_command(src, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "conversion.cli", str(src), str(tmp_path / "tf"), "--to", "tf"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "converted" in done.stdout and (tmp_path / "tf" / "tf_model.h5").is_file()


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'rembert-convert = "conversion.cli:main"' in text


@pytest.mark.parametrize(
    "argv",
    [
        ["SRC", "DST"],  # --to is required
        ["SRC", "DST", "--to", "jax"],
        ["SRC", "DST", "--to", "pt", "--head", "pretraining"],
        ["SRC", "DST", "--to", "pt", "--dtype", "int8"],
        ["SRC", "DST", "--to", "pt", "--max-shard-size", "lots"],
        ["SRC", "DST", "--to", "pt", "--tolerance", "-1"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err


def test_bfloat16_for_tf_is_a_clear_error(src, tmp_path, capsys):
    assert main([str(src), str(tmp_path / "tf"), "--to", "tf", "--dtype", "bfloat16"]) == EXIT_USAGE
    line = _one_error_line(capsys)
    assert "bfloat16" in line and "tf_model.h5" in line and "--to pt" in line
    assert not (tmp_path / "tf").exists()
    with pytest.raises(ConversionError, match="tf_model.h5 cannot hold bfloat16"):
        convert(src, tmp_path / "tf", to="tf", dtype="bfloat16")


# -- what gets written --------------------------------------------------------------------------------------


def test_pt_to_tf_writes_config_weights_and_tokenizer(src, tmp_path, capsys):
    assert main([str(src), str(tmp_path / "tf"), "--to", "tf"]) == 0
    out = capsys.readouterr().out
    dst = tmp_path / "tf"
    assert sorted(p.name for p in dst.iterdir()) == sorted(["config.json", "tf_model.h5", *TOKENIZER_CONTENT])
    for name, content in TOKENIZER_CONTENT.items():
        assert (dst / name).read_bytes() == content
    config = json.loads((dst / "config.json").read_text())
    assert config["architectures"] == ["TFRemBertForMaskedLM"] and config["torch_dtype"] == "float32"
    assert RemBertConfig.from_pretrained(dst) == RemBertConfig.from_pretrained(src).replace(extra=config_extra(config))
    assert "copied tokenizer files: sentencepiece.model" in out and "masked_lm" in out
    tf_names = raw_tensors(dst)
    scope = get_head("masked_lm").tf_scope
    entries = weight_spec(tiny_config(), "masked_lm")
    assert list(tf_names) == [f"{scope}/{e.tf_name}" for e in entries]
    for entry in entries:
        expected = random_tensor(entry, tiny_config(), 0)
        np.testing.assert_array_equal(
            tf_names[f"{scope}/{entry.tf_name}"], expected.T if entry.tf_transpose else expected
        )


def config_extra(config_json: dict) -> dict:
    return {k: config_json[k] for k in ("architectures", "torch_dtype")}


def test_weights_file_and_bin_sources(tmp_path):
    torch = pytest.importorskip("torch")
    config = tiny_config()
    entries = weight_spec(config, "masked_lm")
    state = {e.pt_key: torch.from_numpy(random_tensor(e, config, 0)) for e in entries}
    (tmp_path / "bin").mkdir()
    config.to_json_file(tmp_path / "bin" / "config.json")
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    report = convert(tmp_path / "bin", tmp_path / "tf", to="tf")
    assert report.source_format == "pytorch_bin" and report.head == "masked_lm"
    convert(tmp_path / "tf", tmp_path / "pt", to="pt")
    written = raw_tensors(tmp_path / "pt")
    for key, value in state.items():
        np.testing.assert_array_equal(written[key], value.numpy())
    # a weights file given directly; config.json is read beside it
    report = convert(tmp_path / "pt" / "model.safetensors", tmp_path / "tf2", to="tf")
    assert (tmp_path / "tf2" / "tf_model.h5").read_bytes() == (tmp_path / "tf" / "tf_model.h5").read_bytes()


def test_shards(src, tmp_path):
    report = convert(src, tmp_path / "sharded", to="pt", max_shard_size="8kB")
    names = sorted(p.name for p in report.files)
    assert "model.safetensors.index.json" in names and "model.safetensors" not in names
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert spec_tensors(tmp_path / "sharded", "masked_lm").keys() == spec_tensors(src, "masked_lm").keys()
    for name, value in spec_tensors(src, "masked_lm").items():
        np.testing.assert_array_equal(spec_tensors(tmp_path / "sharded", "masked_lm")[name], value)
    # sharded input converts back to one file, byte-identical to the original
    convert(tmp_path / "sharded", tmp_path / "tf", to="tf")
    convert(tmp_path / "tf", tmp_path / "pt", to="pt")
    assert (tmp_path / "pt" / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()


# -- dtypes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to,dtype", [("pt", "float16"), ("pt", "bfloat16"), ("tf", "float16")])
def test_dtype(src, tmp_path, to, dtype):
    report = convert(src, tmp_path / "out", to=to, dtype=dtype)
    assert report.dtype == dtype
    target = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    original = spec_tensors(src, "masked_lm")
    for name, value in spec_tensors(tmp_path / "out", "masked_lm").items():
        assert value.dtype == target
        np.testing.assert_array_equal(value, original[name].astype(target))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == dtype


def test_default_dtype_follows_the_source(tmp_path):
    half = make_model(tmp_path / "half", dtype="float16")
    assert convert(half, tmp_path / "tf", to="tf").dtype == "float16"
    brain = make_model(tmp_path / "brain", dtype="bfloat16")
    assert convert(brain, tmp_path / "pt", to="pt").dtype == "bfloat16"
    report = convert(brain, tmp_path / "tf2", to="tf")
    assert report.dtype == "float32" and any("bfloat16" in note for note in report.notes)
    original = spec_tensors(brain, "masked_lm")
    for name, value in spec_tensors(tmp_path / "tf2", "masked_lm").items():
        np.testing.assert_array_equal(value, original[name].astype(np.float32))


# -- heads --------------------------------------------------------------------------------------------------


def test_head_keeps_backbone_drops_the_rest(src, tmp_path, capsys):
    argv = [str(src), str(tmp_path / "cls"), "--to", "pt", "--head", "sequence_classification"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    report = convert(src, tmp_path / "cls2", to="pt", head="sequence_classification")
    config = tiny_config()
    lm_head = [e.pt_key for e in weight_spec(config, "masked_lm") if not e.in_backbone]
    assert report.dropped == lm_head
    fresh = {e.pt_key for e in weight_spec(config, "sequence_classification")} - {
        e.pt_key for e in weight_spec(config, "sequence_classification", add_pooling_layer=False) if e.in_backbone
    }
    assert set(report.initialised_at_load) == fresh
    assert not report.head_detected and report.head == "sequence_classification"
    assert f"dropped {len(lm_head)} weight(s) the head does not use" in out and "initialised at load" in out
    written = SafetensorsReader(tmp_path / "cls" / "model.safetensors").keys()
    backbone = [e.pt_key for e in weight_spec(config, "sequence_classification", add_pooling_layer=False)]
    assert written == [k for k in backbone if k.startswith(HEADS["sequence_classification"].base_prefix)]
    assert json.loads((tmp_path / "cls" / "config.json").read_text())["architectures"] == [
        "RemBertForSequenceClassification"
    ]


def test_head_with_its_weights_present_is_written_whole(tmp_path):
    src = make_model(tmp_path / "src", head="sequence_classification")
    report = convert(src, tmp_path / "base", to="tf", head="base")
    assert report.dropped == ["classifier.weight", "classifier.bias"]
    assert not report.initialised_at_load  # the classifier checkpoint has a pooler
    with H5Reader(tmp_path / "base" / "tf_model.h5") as reader:
        assert all(key.startswith(get_head("base").tf_scope + "/") for key in reader.keys())


def test_detected_head_must_be_complete(tmp_path, capsys):
    config = tiny_config()
    entries = [e for e in weight_spec(config, "masked_lm") if e.name != "cls.predictions.decoder.bias"]
    (tmp_path / "src").mkdir()
    config.to_json_file(tmp_path / "src" / "config.json")
    write_weights(tmp_path / "src", SAFETENSORS, entries, lambda e: random_tensor(e, config, 0), "masked_lm")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "tf"]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert "missing 1 tensor(s) of head 'masked_lm': cls.predictions.decoder.bias" in line
    assert not (tmp_path / "out").exists()
    # asking for the head explicitly writes what there is and says what will be initialised
    report = convert(tmp_path / "src", tmp_path / "out", to="tf", head="masked_lm")
    assert report.initialised_at_load == ["cls.predictions.decoder.bias"]


def test_backbone_is_required_with_a_head(tmp_path, capsys):
    config = tiny_config()
    missing = {"encoder.layer.1.output.dense.weight", "embeddings.LayerNorm.bias"}
    entries = [e for e in weight_spec(config, "base") if e.name not in missing]
    (tmp_path / "src").mkdir()
    config.to_json_file(tmp_path / "src" / "config.json")
    write_weights(tmp_path / "src", TF_H5, entries, lambda e: random_tensor(e, config, 0), "base")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "pt", "--head", "masked_lm"]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert "missing 2 tensor(s)" in line
    assert "rembert/embeddings/LayerNorm/beta:0" in line and "rembert/encoder/layer_._1/output/dense/kernel:0" in line


def test_shape_mismatch_names_the_tensor(src, tmp_path, capsys):
    other = tmp_path / "other.json"
    tiny_config(vocab_size=120).to_json_file(other)
    assert main([str(src), str(tmp_path / "out"), "--to", "tf", "--config", str(other)]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert "rembert.embeddings.word_embeddings.weight is (99, 8), the config needs (120, 8)" in line


# -- messages -----------------------------------------------------------------------------------------------


def test_quiet_prints_nothing(src, tmp_path, capsys):
    assert main([str(src), str(tmp_path / "tf"), "--to", "tf", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_missing_source(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "out"), "--to", "tf"]) == EXIT_ERROR
    assert str(tmp_path / "nowhere") in _one_error_line(capsys)


def test_corrupt_source_names_the_file(src, tmp_path, capsys):
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert main([str(src), str(tmp_path / "out"), "--to", "tf"]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert str(weights) in line and "truncated" in line
    assert not (tmp_path / "out").exists()


def test_missing_config(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    (src / "config.json").unlink()
    assert main([str(src), str(tmp_path / "out"), "--to", "tf"]) == EXIT_ERROR
    assert "--config" in _one_error_line(capsys)


def test_progress_bar(src, tmp_path, capsys):
    convert(src, tmp_path / "tf", to="tf", progress=True)
    err = capsys.readouterr().err
    assert "\rwriting tf_model.h5 100% |" in err and err.endswith("\n")
    convert(src, tmp_path / "tf2", to="tf")  # small and not a terminal: no bar
    assert capsys.readouterr().err == ""


def test_report_lists(src, tmp_path):
    report = convert(src, tmp_path / "pt", to="pt", head="question_answering")
    text = "\n".join(report.lines())
    assert "head: question_answering (RemBertForQuestionAnswering / TFRemBertForQuestionAnswering), asked for" in text
    assert f"wrote {report.tensors} tensors" in text
    assert [p.name for p in report.files][:2] == ["config.json", "model.safetensors"]
    assert all(p.parent == tmp_path / "pt" and p.is_file() for p in report.files)


# -- destinations that would lose data, and checkpoints that do not fit their config (issue 17) --------------------


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _nothing_written(parent: Path, before: dict[str, bytes], *absent: Path) -> None:
    assert _snapshot(parent) == before
    for path in absent:
        assert not path.exists() and not path.is_symlink(), path
    assert not list(parent.rglob(".*rembert-convert*"))


@pytest.mark.parametrize("name", ["model.safetensors", "tf_model.h5", "pytorch_model.bin", "rembert.safetensors"])
def test_a_dst_named_like_a_weights_file_is_refused_saying_dst_is_a_directory(src, tmp_path, capsys, name):
    before = _snapshot(tmp_path)
    assert main([str(src), str(tmp_path / "out" / name), "--to", "pt"]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert f"{tmp_path / 'out' / name}: DST is a directory (it receives config.json and model.safetensors or " in line
    assert f"but {name!r} is a weights file's name; name the output directory instead" in line
    _nothing_written(tmp_path, before, tmp_path / "out")


def test_an_existing_directory_named_like_a_file_is_a_directory(src, tmp_path):
    (tmp_path / "rembert.h5").mkdir()
    assert main([str(src), str(tmp_path / "rembert.h5"), "--to", "tf", "-q"]) == 0
    assert (tmp_path / "rembert.h5" / "tf_model.h5").is_file()


def test_the_issues_command_writes_nothing_into_the_source(tmp_path, capsys):
    """`rembert-convert c1 c1/model.safetensors --to pt` on a TensorFlow directory made c1/model.safetensors/."""
    c1 = make_model(tmp_path / "c1", fmt=TF_H5, tokenizer=True)
    before = _snapshot(tmp_path)
    assert main([str(c1), str(c1 / "model.safetensors"), "--to", "pt"]) == EXIT_ERROR
    assert "DST is a directory" in _one_error_line(capsys)
    _nothing_written(tmp_path, before, c1 / "model.safetensors")


@pytest.mark.parametrize("force", [False, True])
def test_a_dst_inside_the_source_is_refused_before_anything_is_written(src, tmp_path, capsys, force):
    before = _snapshot(tmp_path)
    for dst in (src / "sub", src / "a" / "b"):
        assert main([str(src), str(dst), "--to", "pt", *(["--force"] if force else [])]) == EXIT_ERROR
        line = _one_error_line(capsys)
        assert f"{dst}: DST is inside the source directory {src}; choose a DST outside it" in line
        _nothing_written(tmp_path, before, dst, src / "a")


def test_a_dst_equal_to_or_containing_the_source_is_refused(src, tmp_path, capsys):
    before = _snapshot(tmp_path)
    for dst in (src, tmp_path, src / "..", src / ".." / "src"):
        assert main([str(src), str(dst), "--to", "tf", "--force"]) == EXIT_ERROR
        assert "DST would replace the source" in _one_error_line(capsys)
    config = tmp_path / "configs" / "config.json"
    config.parent.mkdir()
    config.write_text((src / "config.json").read_text())
    before = _snapshot(tmp_path)
    assert main([str(src), str(config.parent), "--to", "tf", "--force", "--config", str(config)]) == EXIT_ERROR
    assert "DST would replace the source" in _one_error_line(capsys)
    _nothing_written(tmp_path, before)


def test_symlinks_are_resolved(src, tmp_path, capsys):
    (tmp_path / "alias").symlink_to(src)
    (tmp_path / "parent-alias").symlink_to(tmp_path)
    before = _snapshot(src)
    cases = [
        (tmp_path / "alias", "DST would replace the source"),  # the source under another name
        (tmp_path / "alias" / "sub", "DST is inside the source directory"),
        (tmp_path / "parent-alias" / "src" / "sub", "DST is inside the source directory"),
    ]
    for dst, words in cases:
        assert main([str(src), str(dst), "--to", "pt", "--force"]) == EXIT_ERROR
        assert words in _one_error_line(capsys)
    assert main([str(tmp_path / "alias"), str(src / "sub"), "--to", "pt"]) == EXIT_ERROR  # SRC through a link
    assert "DST is inside the source directory" in _one_error_line(capsys)
    assert _snapshot(src) == before and not (src / "sub").exists()


def test_a_weights_file_source_may_be_converted_beside_itself(tmp_path):
    src = make_model(tmp_path / "downloads")
    convert(src / "model.safetensors", src / "rembert-tf", to="tf")  # the file is the source, not its directory
    assert (src / "rembert-tf" / "tf_model.h5").is_file()
    with pytest.raises(ConversionError, match="would replace the source"):
        convert(src / "model.safetensors", tmp_path, to="tf", force=True)


def test_a_misspelt_num_hidden_layers_is_one_short_line(src, tmp_path, capsys):
    data = json.loads((src / "config.json").read_text())
    data["num_hidden_layer"] = data.pop("num_hidden_layers")
    (src / "config.json").write_text(json.dumps(data))
    before = _snapshot(tmp_path)
    assert main([str(src), str(tmp_path / "out"), "--to", "tf"]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert line.startswith(
        f"rembert-convert: error: {src / 'model.safetensors'} does not fit the config: the config's "
        "num_hidden_layers is 32 but the checkpoint has 2 encoder layers (layers 2-31 are missing); the config has "
        "'num_hidden_layer', which is no config field: a misspelt num_hidden_layers? missing 480 tensor(s) of "
        "head 'masked_lm': rembert.encoder.layer.2.attention.self.query.weight, "
    )
    assert line.endswith(" and 475 more") and len(line) < 800
    _nothing_written(tmp_path, before, tmp_path / "out")


def test_layers_the_config_does_not_have_are_not_dropped(tmp_path, capsys):
    src = make_model(tmp_path / "src", tiny_config(num_hidden_layers=4))
    fewer = tmp_path / "two-layers.json"
    tiny_config(num_hidden_layers=2).to_json_file(fewer)
    before = _snapshot(tmp_path)
    assert main([str(src), str(tmp_path / "out"), "--to", "pt", "--config", str(fewer)]) == EXIT_ERROR
    assert _one_error_line(capsys) == (
        f"rembert-convert: error: {src / 'model.safetensors'} does not fit the config: the config's num_hidden_layers "
        "is 2 but the checkpoint has 4 encoder layers (its layers 2-3 are not used). converting would drop encoder "
        "layer(s) 2-3; give --config the checkpoint's num_hidden_layers"
    )
    _nothing_written(tmp_path, before, tmp_path / "out")


def test_other_sizes_are_named_with_the_tensors(src, tmp_path, capsys):
    other = tmp_path / "other.json"
    tiny_config(hidden_size=24).to_json_file(other)
    assert main([str(src), str(tmp_path / "out"), "--to", "tf", "--config", str(other)]) == EXIT_ERROR
    line = _one_error_line(capsys)
    assert (
        "does not fit the config: the config's hidden_size is 24 but the checkpoint's is 12. tensor(s) do not" in line
    )
    assert "rembert.encoder.embedding_hidden_mapping_in.weight is (12, 8), the config needs (24, 8)" in line
    assert line.endswith(" more") and len(line) < 800
