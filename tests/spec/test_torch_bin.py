"""TorchBinReader against files written by torch.save, hostile pickles, unsupported and corrupt files.

Random damage to whole files is tested for every format in test_damaged_files.py.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rembert_spec.formats.torch_bin import TorchBinReader
from rembert_spec.tensor_reader import CheckpointError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _save(obj: object, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _expected(tensor: torch.Tensor) -> np.ndarray:
    """The numpy array torch holds, bit for bit (bfloat16 through its bit pattern)."""
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _assert_same(reader: TorchBinReader, state: dict[str, torch.Tensor]) -> None:
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    assert reader.keys() == list(tensors)
    for key, tensor in tensors.items():
        want = _expected(tensor)
        got = reader.read(key)
        assert reader.info(key).shape == tuple(tensor.shape) == got.shape, key
        assert reader.info(key).dtype == want.dtype == got.dtype, key
        assert np.ascontiguousarray(got).tobytes() == want.tobytes(), key


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]  # what RemBERT checkpoints hold


def test_every_supported_dtype_round_trips(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    state = collections.OrderedDict()
    for dtype in DTYPES:
        state[f"t_{str(dtype)[6:]}"] = (torch.randn(3, 5, generator=generator) * 50).to(dtype)
    state["scalar"] = torch.tensor(7, dtype=torch.int64)
    state["empty"] = torch.zeros(0, 4)
    with TorchBinReader(_save(state, tmp_path / "m.bin")) as reader:
        _assert_same(reader, state)


def test_views_strides_offsets_and_shared_storage(tmp_path: Path) -> None:
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    state = collections.OrderedDict(
        base=base,
        transposed=base.t(),
        offset_slice=base[2:5, 3:7],
        every_other=base[:, ::2],
        row=base[4],
        expanded=torch.arange(4).expand(3, 4),  # stride 0, like old `embeddings.position_ids`
        permuted=torch.arange(24, dtype=torch.int64).reshape(2, 3, 4).permute(2, 0, 1),
        parameter=torch.nn.Parameter(torch.ones(2, 2)),
    )
    reader = TorchBinReader(_save(state, tmp_path / "views.bin"))
    _assert_same(reader, state)
    base_array, transposed = reader.read("base"), reader.read("transposed")
    assert np.shares_memory(base_array, transposed)  # one storage, mapped once, viewed twice
    assert not base_array.flags.writeable and not transposed.flags.writeable
    assert transposed.strides == (4, 40)


@pytest.mark.parametrize(
    "dtype, named",
    [
        (torch.float64, "torch.DoubleStorage"),
        (torch.int32, "torch.IntStorage"),
        (torch.uint8, "torch.ByteStorage"),
        (torch.complex64, "torch.ComplexFloatStorage"),
        (torch.float8_e4m3fn, "torch.float8_e4m3fn"),  # saved through _rebuild_tensor_v3 with an untyped storage
        (torch.uint16, "torch.uint16"),
    ],
)
def test_other_dtypes_are_unsupported_by_name(tmp_path: Path, dtype: torch.dtype, named: str) -> None:
    path = _save({"ok": torch.ones(2), "other": torch.ones(3).to(dtype)}, tmp_path / "other.bin")
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported tensor type(s) ") + f".*{named}"):
        TorchBinReader(path)


def test_reads_are_lazy_memory_maps(tmp_path: Path) -> None:
    state = {"a": torch.ones(1000, 100), "b": torch.zeros(10)}
    reader = TorchBinReader(_save(state, tmp_path / "lazy.bin"))
    array = reader.read("a")
    owner = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    assert not isinstance(owner, np.ndarray | bytes)  # the mmap itself, not a copy of the file
    reader.close()
    assert float(array.sum()) == 100000.0  # arrays handed out stay valid after close


def test_transformers_rembert_state_dict(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.RemBertConfig(
        vocab_size=99,
        hidden_size=12,
        num_hidden_layers=2,
        num_attention_heads=3,
        input_embedding_size=8,
        output_embedding_size=10,
        intermediate_size=20,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    state = transformers.RemBertModel(config).state_dict()
    state["embeddings.position_ids"] = torch.arange(40).expand((1, -1))  # the int64 buffer old files carry
    with TorchBinReader(_save(state, tmp_path / "pytorch_model.bin")) as reader:
        _assert_same(reader, state)
        assert reader.info("embeddings.position_ids").dtype == np.int64
        assert "encoder.layer.1.attention.self.query.weight" in reader


def test_empty_state_dict_and_non_tensor_values(tmp_path: Path) -> None:
    assert TorchBinReader(_save({}, tmp_path / "empty.bin")).keys() == []
    state = {
        "w": torch.ones(2),
        "epoch": 3,
        "name": "x",
        "nested": {"v": torch.zeros(1)},
        "b": torch.zeros(1),
    }
    assert TorchBinReader(_save(state, tmp_path / "mixed.bin")).keys() == ["w", "b"]


def test_top_level_must_be_a_dict(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a state dict"):
        TorchBinReader(_save([torch.ones(1)], tmp_path / "list.bin"))


# --------------------------------------------------------------------------------------------------
# archives written by hand: big-endian, compressed, hostile
# --------------------------------------------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_archive(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _archive(path: Path, pickled: bytes) -> Path:
    return _write_archive(path, {"archive/data.pkl": pickled, "archive/byteorder": b"little", "archive/version": b"3"})


def test_legacy_format_is_unsupported_by_name(tmp_path: Path) -> None:
    path = _save({"w": torch.ones(2)}, tmp_path / "old.bin", legacy=True)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported legacy PyTorch checkpoint (the pre-1.6")):
        TorchBinReader(path)


def test_big_endian_archive_is_unsupported_by_name(tmp_path: Path) -> None:
    members = _members(_save({"f": torch.randn(3, 4)}, tmp_path / "little.bin"))
    prefix = next(n for n in members if n.endswith("data.pkl"))[: -len("data.pkl")]
    members[prefix + "byteorder"] = b"big"
    path = _write_archive(tmp_path / "big.bin", members)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported byte order 'big'")):
        TorchBinReader(path)


def test_compressed_records_are_unsupported_by_name(tmp_path: Path) -> None:
    members = _members(_save({"a": torch.randn(4, 4)}, tmp_path / "plain.bin"))
    path = _write_archive(tmp_path / "deflated.bin", members, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported compressed zip member ")):
        TorchBinReader(path)


def test_tensors_with_python_attributes_are_unsupported(tmp_path: Path) -> None:
    tagged = torch.ones(3)
    tagged.note = "python attribute"  # pickled through torch._tensor._rebuild_from_type_v2
    path = _save({"w": torch.ones(2), "tagged": tagged}, tmp_path / "tagged.bin")
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported tensor type(s) torch._tensor.")):
        TorchBinReader(path)


def test_negative_views_are_unsupported(tmp_path: Path) -> None:
    path = _save({"w": torch._neg_view(torch.ones(2))}, tmp_path / "neg.bin")  # pickled with metadata {"neg": True}
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: unsupported tensor metadata")):
        TorchBinReader(path)


class _Shell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (builtins.exec, (self.code,))


@pytest.mark.parametrize("payload", ["shell", "exec", "nested", "legacy"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    if payload == "shell":
        evil: object = collections.OrderedDict(w=_Shell(f"touch {marker}"))
    elif payload == "exec":
        evil = collections.OrderedDict(w=_Exec(f"open({str(marker)!r}, 'w').close()"))
    else:
        evil = {"ok": torch.ones(2), "meta": [{"deep": (_Shell(f"touch {marker}"),)}]}
    if payload in ("legacy", "nested"):
        path = _save(evil, tmp_path / "evil.bin", legacy=payload == "legacy")  # torch.save pickles it as is
    else:
        path = _archive(tmp_path / "evil.bin", pickle.dumps(evil, protocol=2))
    global_name = "(__builtin__|builtins).exec" if payload == "exec" else f"{os.system.__module__}.system"
    refusal = "unsupported legacy" if payload == "legacy" else "refused to load global '" + global_name
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: ") + refusal):
        TorchBinReader(path)
    assert not marker.exists()


def test_allow_listed_names_cannot_be_abused(tmp_path: Path) -> None:
    # a storage-type marker is not callable; a rebuild function given junk fails validation
    not_callable = b"\x80\x02ctorch\nFloatStorage\n)R."
    with pytest.raises(CheckpointError, match="corrupt pickle data"):
        TorchBinReader(_archive(tmp_path / "a.bin", not_callable))
    junk_rebuild = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00))tR."
    with pytest.raises(CheckpointError, match="not a storage"):
        TorchBinReader(_archive(tmp_path / "b.bin", junk_rebuild))
    state = {"w": torch.ones(4)}
    members = _members(_save(state, tmp_path / "c.bin"))
    pickled_name = next(n for n in members if n.endswith("data.pkl"))
    members[pickled_name] = members[pickled_name].replace(b"K\x04\x85", b"K\x09\x85")  # size (4,) -> (9,)
    with pytest.raises(CheckpointError, match="reaches byte 36 of a 16-byte storage"):
        TorchBinReader(_write_archive(tmp_path / "c.bin", members))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    cases = {
        "missing.bin": None,
        "empty.bin": b"",
        "garbage.bin": bytes(range(256)) * 10,
        "text.bin": b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
        "pickle.bin": pickle.dumps({"a": 1}, protocol=2),
        "other.zip": None,
        "torchscript.pt": None,
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    _write_archive(tmp_path / "other.zip", {"hello.txt": b"hi"})
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "torchscript.pt"))
    for name in cases:
        with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / name))):
            TorchBinReader(tmp_path / name)


# --------------------------------------------------------------------------------------------------
# corrupt files
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("torch_originals")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = collections.OrderedDict(
        w=base,
        t=base.t(),
        h=torch.randn(3).half(),
        b=torch.randn(2, 2).bfloat16(),
        i=torch.arange(5),
        m=torch.ones(2),
    )
    return _save(state, root / "zip.bin").read_bytes()


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torch_fuzz") / "pytorch_model.bin"


def _read_everything_or_checkpoint_error(path: Path) -> None:
    try:
        with TorchBinReader(path) as reader:
            for key in reader.keys():
                np.asarray(reader.read(key)).sum()
    except CheckpointError as e:
        assert str(path) in str(e)


@FUZZ
@given(data=st.data())
def test_corrupt_pickle_in_a_valid_archive(original: bytes, fuzz_file: Path, data: st.DataObject) -> None:
    members = _members_of_bytes(original)
    name = next(n for n in members if n.endswith("data.pkl"))
    pickled = bytearray(members[name])
    for _ in range(data.draw(st.integers(1, 3))):
        pickled[data.draw(st.integers(0, len(pickled) - 1))] = data.draw(st.integers(0, 255))
    members[name] = bytes(pickled)
    _read_everything_or_checkpoint_error(_write_archive(fuzz_file, members))


def _members_of_bytes(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}
