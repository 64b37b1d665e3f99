"""TFCheckpointReader against checkpoints written by TensorFlow itself, plus corrupt and hand-made ones."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.protobuf import tensor_bundle_pb2

from rembert_spec.formats.google_tf import (
    TFCheckpointReader,
    _block_entries,
    _footer_handles,
    _read_block,
    _table_entries,
    crc32c,
    mask_crc32c,
    unmask_crc32c,
)
from rembert_spec.tensor_reader import CheckpointError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------------------------------
# checkpoints written by TensorFlow
# --------------------------------------------------------------------------------------------------


def _bert_like_variables(rng: np.random.Generator) -> dict[str, np.ndarray]:
    h = 16
    values = {
        "bert/embeddings/word_embeddings": rng.standard_normal((700, h)).astype(np.float32),
        "bert/embeddings/position_embeddings": rng.standard_normal((40, h)).astype(np.float32),
        "bert/embeddings/LayerNorm/gamma": np.ones(h, np.float32),
        "global_step": np.int64(123456789012),
        "extra/f64": rng.standard_normal((3, 2)),
        "extra/f16": rng.standard_normal((2, 3)).astype(np.float16),
        "extra/bf16": rng.standard_normal(5).astype(ml_dtypes.bfloat16),
        "extra/i32": np.arange(-3, 4, dtype=np.int32),
        "extra/i8": np.arange(-4, 4, dtype=np.int8).reshape(2, 2, 2),
        "extra/u8": np.arange(250, 256, dtype=np.uint8),
        "extra/bool": np.array([True, False, True]),
        "extra/empty": np.zeros((0, 3), np.float32),
        "extra/scalar": np.float32(2.5),
    }
    for layer in range(2):
        for name, shape in [("attention/self/query/kernel", (h, h)), ("attention/self/query/bias", (h,))]:
            full = f"bert/encoder/layer_{layer}/{name}"
            values[full] = rng.standard_normal(shape).astype(np.float32)
            values[full + "/adam_m"] = rng.standard_normal(shape).astype(np.float32)
            values[full + "/adam_v"] = rng.random(shape).astype(np.float32)
    return values


def _save_tf1(prefix: Path, values: dict[str, np.ndarray]) -> str:
    """A tf.compat.v1 Saver checkpoint: graph variables named like the original BERT's."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(v)) for name, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix))


def _save_tf1_sharded(prefix: Path) -> str:
    """A sharded Saver over two CPU devices, with a partitioned (sliced) variable."""
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            tf.compat.v1.get_variable("bert/a", initializer=np.arange(12, dtype=np.float32).reshape(3, 4))
        with tf.device("/cpu:1"):
            tf.compat.v1.get_variable("bert/b", initializer=np.arange(5, dtype=np.int64))
        tf.compat.v1.get_variable(
            "bert/partitioned",
            shape=(10, 3),
            initializer=tf.compat.v1.random_normal_initializer(seed=1),
            partitioner=tf.compat.v1.fixed_size_partitioner(3),
        )
        saver = tf.compat.v1.train.Saver(sharded=True)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
        with tf.compat.v1.Session(config=config) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix))


class _Tower(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = tf.Variable(np.arange(20, dtype=np.float32).reshape(4, 5))
        self.bias = tf.Variable(np.zeros(5, np.float16))
        self.big = tf.Variable(np.linspace(-1, 1, 30000, dtype=np.float32))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tf")
    values = _bert_like_variables(np.random.default_rng(0))
    (root / "tf1").mkdir()
    (root / "sharded").mkdir()
    paths = {
        "tf1": _save_tf1(root / "tf1" / "model.ckpt", values),
        "sharded": _save_tf1_sharded(root / "sharded" / "m"),
    }
    step = tf.Variable(7, dtype=tf.int64)
    paths["tf2"] = tf.train.Checkpoint(tower=_Tower(), step=step).save(str(root / "tf2" / "ckpt"))
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=40000)
    options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
    paths["tf2_split"] = tf.train.Checkpoint(tower=_Tower()).write(str(root / "split" / "ck"), options=options)
    tags = np.random.default_rng(2).integers(0, 2**63, 8000)  # defeats the index's key prefix compression
    names = [f"bert/{tag:016x}/layer_{i}/attention/output/dense/kernel/adam_m" for i, tag in enumerate(tags)]
    tf.raw_ops.SaveV2(
        prefix=str(root / "many" / "ck"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(np.float32(i)) for i in range(len(names))],
    )
    paths["many"] = str(root / "many" / "ck")
    return paths


def _assert_matches_tensorflow(prefix: str, reader: TFCheckpointReader) -> None:
    expected = tf.train.load_checkpoint(prefix)
    shapes = expected.get_variable_to_shape_map()
    dtypes = expected.get_variable_to_dtype_map()
    assert reader.keys() == sorted(shapes, key=lambda name: name.encode())
    for name in reader.keys():
        info = reader.info(name)
        assert info.shape == tuple(shapes[name]), name
        if dtypes[name] == tf.string:
            assert info.dtype == np.dtype(object)
            continue
        want = expected.get_tensor(name)
        got = reader.read(name)
        assert got.dtype == info.dtype == np.dtype(dtypes[name].as_numpy_dtype), name
        assert got.shape == np.shape(want), name
        assert got.tobytes() == np.asarray(want).tobytes(), name


@pytest.mark.parametrize("name", ["tf1", "sharded", "tf2", "tf2_split", "many"])
def test_every_tensor_matches_tensorflow(checkpoints: dict[str, str], name: str) -> None:
    with TFCheckpointReader(checkpoints[name]) as reader:
        _assert_matches_tensorflow(checkpoints[name], reader)


def test_bert_names_dtypes_and_shapes(checkpoints: dict[str, str]) -> None:
    reader = TFCheckpointReader(checkpoints["tf1"])
    assert reader.info("global_step").shape == ()
    assert reader.read("global_step") == 123456789012
    assert reader.info("extra/bf16").dtype == np.dtype(ml_dtypes.bfloat16)
    assert reader.read("extra/empty").shape == (0, 3)
    assert "bert/encoder/layer_1/attention/self/query/kernel/adam_m" in reader
    array = reader.read("bert/embeddings/word_embeddings")
    assert not array.flags.writeable  # a read-only view of the memory-mapped data file


def test_sharded_and_sliced_variables(checkpoints: dict[str, str]) -> None:
    reader = TFCheckpointReader(checkpoints["sharded"])
    assert reader._header.num_shards > 1
    assert reader._entries["bert/partitioned"].slices  # saved as 3 slices
    expected = tf.train.load_checkpoint(checkpoints["sharded"]).get_tensor("bert/partitioned")
    np.testing.assert_array_equal(reader.read("bert/partitioned"), expected)
    split = TFCheckpointReader(checkpoints["tf2_split"])
    assert split._header.num_shards >= 3  # a 120 kB variable split in slices over 40 kB shards
    assert split._entries["tower/big/.ATTRIBUTES/VARIABLE_VALUE"].slices
    np.testing.assert_array_equal(
        split.read("tower/big/.ATTRIBUTES/VARIABLE_VALUE"), np.linspace(-1, 1, 30000, dtype=np.float32)
    )


def test_index_with_several_blocks(checkpoints: dict[str, str]) -> None:
    reader = TFCheckpointReader(checkpoints["many"])
    assert len(reader.keys()) == 8000
    index = reader.path.read_bytes()
    assert len(_block_entries(_read_block(index, _footer_handles(index), True))) >= 3  # data blocks


def test_prefix_forms(checkpoints: dict[str, str]) -> None:
    prefix = checkpoints["tf2"]
    directory = os.path.dirname(prefix)
    state = Path(directory, "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-1"' in state  # relative to the directory
    for location in (prefix, prefix + ".index", prefix + ".data-00000-of-00001", directory, Path(directory)):
        with TFCheckpointReader(location) as reader:
            assert reader.prefix == prefix
            assert "step/.ATTRIBUTES/VARIABLE_VALUE" in reader.keys()


def test_string_tensor_is_listed_but_not_read(checkpoints: dict[str, str]) -> None:
    reader = TFCheckpointReader(checkpoints["tf2"])
    assert reader.info("_CHECKPOINTABLE_OBJECT_GRAPH").dtype == np.dtype(object)
    with pytest.raises(CheckpointError, match="_CHECKPOINTABLE_OBJECT_GRAPH.*not numeric"):
        reader.read("_CHECKPOINTABLE_OBJECT_GRAPH")


def test_missing_checkpoints(tmp_path: Path, checkpoints: dict[str, str]) -> None:
    with pytest.raises(CheckpointError, match="no such TensorFlow checkpoint"):
        TFCheckpointReader(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="checkpoint state file"):
        TFCheckpointReader(tmp_path)
    (tmp_path / "v1.ckpt").write_bytes(b"old")
    with pytest.raises(CheckpointError, match="V1"):
        TFCheckpointReader(tmp_path / "v1.ckpt")
    copy = _copy_checkpoint(checkpoints["sharded"], tmp_path / "copy")
    data = sorted(tmp_path.glob("copy.data-*"))[-1]
    data.unlink()
    with pytest.raises(CheckpointError, match=re.escape(str(data))):
        TFCheckpointReader(copy)
    reader = TFCheckpointReader(checkpoints["tf1"])
    with pytest.raises(CheckpointError, match="no tensor named 'nope'"):
        reader.read("nope")


# --------------------------------------------------------------------------------------------------
# crc32c
# --------------------------------------------------------------------------------------------------


def _reference_crc32c(data: bytes) -> int:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_values() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    rng = np.random.default_rng(1)
    for n in (1, 7, 63, 64, 65, 1023, 1024, 1025, 4096 + 3, 70001, (1 << 20) + 4099):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == _reference_crc32c(data), n
        assert crc32c(data[n // 3 :], crc32c(data[: n // 3])) == crc32c(data), n
    for value in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert unmask_crc32c(mask_crc32c(value)) == value


# --------------------------------------------------------------------------------------------------
# corrupt files
# --------------------------------------------------------------------------------------------------


def _copy_checkpoint(prefix: str, new_prefix: Path) -> str:
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        shutil.copy(path, str(new_prefix) + path.name[len(Path(prefix).name) :])
    return str(new_prefix)


def _read_everything(location: str, verify: bool = True) -> None:
    with TFCheckpointReader(location, verify_checksums=verify) as reader:
        for name in reader.keys():
            if reader.info(name).dtype != np.dtype(object):
                reader.read(name)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.data(), verify=st.booleans())
def test_corrupt_index_raises_checkpoint_error(
    checkpoints: dict[str, str], fuzz_dir: Path, data: st.DataObject, verify: bool
) -> None:
    prefix = _copy_checkpoint(checkpoints["tf1"], fuzz_dir / "index")
    index = Path(prefix + ".index")
    content = bytearray(index.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] ^= data.draw(st.integers(1, 255))
    index.write_bytes(bytes(content))
    try:
        _read_everything(prefix, verify)
    except CheckpointError as e:
        assert prefix in str(e)


@FUZZ
@given(cut=st.integers(0, 10**6))
def test_truncated_index_or_data_raises_checkpoint_error(checkpoints: dict[str, str], fuzz_dir: Path, cut: int) -> None:
    prefix = _copy_checkpoint(checkpoints["tf1"], fuzz_dir / "cut")
    target = Path(prefix + (".index" if cut % 2 else ".data-00000-of-00001"))
    content = target.read_bytes()
    target.write_bytes(content[: cut % len(content)])
    with pytest.raises(CheckpointError, match=re.escape(str(target))):
        _read_everything(prefix)


def test_corrupt_tensor_bytes_fail_the_checksum(checkpoints: dict[str, str], tmp_path: Path) -> None:
    prefix = _copy_checkpoint(checkpoints["tf1"], tmp_path / "bad")
    name = "bert/encoder/layer_1/attention/self/query/kernel/adam_v"
    entry = TFCheckpointReader(prefix)._entries[name]
    data = Path(prefix + ".data-00000-of-00001")
    content = bytearray(data.read_bytes())
    content[entry.offset + 17] ^= 0x40
    data.write_bytes(bytes(content))
    reader = TFCheckpointReader(prefix)
    with pytest.raises(CheckpointError, match=re.escape(f"{data}: variable {name!r}: crc32c checksum mismatch")):
        reader.read(name)
    reader.read("bert/embeddings/word_embeddings")  # the other variables are intact
    unverified = TFCheckpointReader(prefix, verify_checksums=False).read(name)
    assert unverified.shape == (16, 16)


# --------------------------------------------------------------------------------------------------
# hand-written tables: a second table writer, big-endian bundles, compressed blocks
# --------------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    out += b"".join(r.to_bytes(4, "little") for r in restarts) + len(restarts).to_bytes(4, "little")
    return bytes(out)


def _write_table(path: Path, entries: list[tuple[bytes, bytes]], per_block: int = 3, compression: int = 0) -> None:
    out = bytearray()

    def add(block: bytes) -> bytes:
        handle = _varint(len(out)) + _varint(len(block))
        trailer = bytes([compression])
        out.extend(block + trailer + mask_crc32c(crc32c(block + trailer)).to_bytes(4, "little"))
        return handle

    index = []
    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        index.append((chunk[-1][0], add(_block(chunk))))
    footer = add(_block([])) + add(_block(index))
    out += footer.ljust(40, b"\0") + (0xDB4775248B80FB57).to_bytes(8, "little")
    path.write_bytes(bytes(out))


def test_own_table_writer_is_read_by_tensorflow_and_reader(checkpoints: dict[str, str], tmp_path: Path) -> None:
    prefix = _copy_checkpoint(checkpoints["tf1"], tmp_path / "rewritten")
    index = Path(prefix + ".index")
    _write_table(index, _table_entries(index.read_bytes(), True), per_block=3)
    with TFCheckpointReader(prefix) as reader:
        _assert_matches_tensorflow(prefix, reader)


def test_big_endian_bundle(checkpoints: dict[str, str], tmp_path: Path) -> None:
    source = TFCheckpointReader(checkpoints["tf1"])
    prefix = str(tmp_path / "big")
    data = bytearray(Path(checkpoints["tf1"] + ".data-00000-of-00001").read_bytes())
    entries = []
    for key, value in _table_entries(source.path.read_bytes(), True):
        if key == b"":
            header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
            header.endianness = tensor_bundle_pb2.BundleHeaderProto.BIG
            value = header.SerializeToString()
        else:
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            array = source.read(key.decode())
            swapped = array.view(f"u{array.dtype.itemsize}").byteswap().tobytes() if array.size else b""
            data[entry.offset : entry.offset + entry.size] = swapped
            entry.crc32c = mask_crc32c(crc32c(swapped))
            value = entry.SerializeToString()
        entries.append((key, value))
    _write_table(Path(prefix + ".index"), entries)
    Path(prefix + ".data-00000-of-00001").write_bytes(bytes(data))
    reader = TFCheckpointReader(prefix)
    for name in source.keys():
        assert reader.read(name).tobytes() == source.read(name).tobytes(), name


def test_compressed_blocks_are_refused(checkpoints: dict[str, str], tmp_path: Path) -> None:
    prefix = _copy_checkpoint(checkpoints["tf1"], tmp_path / "snappy")
    index = Path(prefix + ".index")
    _write_table(index, _table_entries(index.read_bytes(), True), compression=1)
    with pytest.raises(CheckpointError, match="snappy-compressed"):
        TFCheckpointReader(prefix)
