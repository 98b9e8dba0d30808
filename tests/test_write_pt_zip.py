"""The ``.pt`` writer without torch (bnconvert.write.pt_zip, pt_pickle, chunks): its files load
with ``torch.load(weights_only=True)`` (and ``mmap=True``) bit for bit equal to the arrays, equal
to what ``torch.load`` gives for ``torch.save`` of the same tensors, and are valid zip files.

The reference is torch itself: each array as a tensor torch created (``clone`` in contiguous
format, the layout a module's state_dict has), saved with ``torch.save`` and loaded back.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bnconvert.errors import OutputError
from bnconvert.write import chunks, pt_zip
from bnconvert.write.pt_pickle import STORAGE_TYPES, _Pickle
from bnconvert.write.pt_zip import write_pt_stream

DTYPES = sorted(STORAGE_TYPES)


def _values(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype) * 1000


def _torch_tensor(array: np.ndarray) -> torch.Tensor:
    """The array as a tensor torch allocated itself (native order, canonical strides)."""
    native = np.array(array, dtype=array.dtype.newbyteorder("="), order="C")
    return torch.from_numpy(native).clone(memory_format=torch.contiguous_format)


def _ours(arrays: Mapping[str, np.ndarray], path: Path) -> Path:
    with open(path, "wb") as stream:
        write_pt_stream(arrays, stream)
    return path


def _theirs(arrays: Mapping[str, np.ndarray], path: Path) -> Path:
    torch.save({k: _torch_tensor(v) for k, v in arrays.items()}, path)
    return path


def assert_same_state(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Same keys in the same order, and per key the same dtype, shape, strides and bits."""
    assert type(loaded) is type(expected) and list(loaded) == list(expected)
    for key, tensor in loaded.items():
        other = expected[key]
        assert (tensor.dtype, tensor.shape, tensor.stride()) == (
            other.dtype, other.shape, other.stride()), key
        assert tensor.numpy().tobytes() == other.numpy().tobytes(), key


def assert_loads_as_torch_saves(arrays: Mapping[str, np.ndarray], folder: Path) -> None:
    ours = _ours(arrays, folder / "ours.pt")
    theirs = torch.load(_theirs(arrays, folder / "theirs.pt"), weights_only=True)
    assert_same_state(torch.load(ours, weights_only=True), theirs)
    assert_same_state(torch.load(ours, weights_only=True, mmap=True), theirs)
    with zipfile.ZipFile(ours) as archive:
        assert archive.testzip() is None


CASES = {
    "scalar": (), "empty": (0,), "empty_3d": (2, 0, 3), "vector": (7,), "matrix": (3, 5),
    "conv": (4, 3, 3, 3), "5d": (2, 1, 3, 1, 2), "wide": (70000,),
}


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_loads_as_torch_saves_it(dtype: str, tmp_path: Path) -> None:
    arrays = {f"{name}.weight": _values(dtype, shape, i)
              for i, (name, shape) in enumerate(CASES.items())}
    assert_loads_as_torch_saves(arrays, tmp_path)


def test_strided_and_big_endian_arrays_are_written_in_c_order_little_endian(
        tmp_path: Path) -> None:
    base = _values("float32", (6, 8, 5), 1)
    arrays = {"transposed": base.T, "sliced": base[::2, 1::3], "reversed": base[::-1],
              "big_endian": base.astype(">f4"), "big_endian_strided": base.astype(">f8")[:, ::2],
              "big_int": np.arange(10, dtype=">i8"), "fortran": np.asfortranarray(base)}
    assert_loads_as_torch_saves(arrays, tmp_path)
    loaded = torch.load(tmp_path / "ours.pt", weights_only=True)
    for key, array in arrays.items():  # and the values are the arrays' (not only torch's)
        assert np.array_equal(loaded[key].numpy(), array), key


def test_unicode_and_odd_keys(tmp_path: Path) -> None:
    keys = ["conv1/3x3.weight", "bn_ß.running_mean", "层.bias", "emoji 🎉.weight", "", "a\nb",
            "x" * 300]
    assert_loads_as_torch_saves({k: _values("float32", (3,), i) for i, k in enumerate(keys)},
                                tmp_path)


def test_thousands_of_keys_keep_their_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    keys = [f"layer{int(i)}.weight" for i in rng.permutation(3000)]
    arrays = {k: np.full((2,), i, np.float32) for i, k in enumerate(keys)}
    assert_loads_as_torch_saves(arrays, tmp_path)


def test_no_tensors(tmp_path: Path) -> None:
    assert_loads_as_torch_saves({}, tmp_path)


def test_records_are_torch_saves_in_the_same_order_with_aligned_data(tmp_path: Path) -> None:
    arrays = {"a": _values("float32", (3, 3)), "b": np.array(5), "c": np.zeros(0, np.float16)}
    ours, buffer = _ours(arrays, tmp_path / "ours.pt"), io.BytesIO()
    torch.save({k: _torch_tensor(v) for k, v in arrays.items()}, buffer)
    with zipfile.ZipFile(ours) as mine, zipfile.ZipFile(buffer) as torchs:
        assert mine.namelist() == torchs.namelist()  # torch names a stream's folder "archive"
        for name in ("archive/.format_version", "archive/.storage_alignment",
                     "archive/byteorder", "archive/version"):
            assert mine.read(name) == torchs.read(name), name
        assert len(mine.read("archive/.data/serialization_id")) == 40
        raw = ours.read_bytes()
        for info in mine.infolist():
            name_length, extra_length = struct.unpack_from("<HH", raw, info.header_offset + 26)
            start = info.header_offset + 30 + name_length + extra_length
            assert start % 64 == 0, info.filename
            assert raw[start:start + info.file_size] == mine.read(info.filename)


def test_the_same_arrays_give_the_same_bytes(tmp_path: Path) -> None:
    arrays = {"a": _values("float64", (4, 4)), "b": _values("int64", ())}
    assert _ours(arrays, tmp_path / "1.pt").read_bytes() == \
        _ours(dict(arrays), tmp_path / "2.pt").read_bytes()


def test_arrays_stream_in_chunks_with_right_crcs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "CHUNK", 100)  # many chunks per record, strided ones too
    base = _values("float32", (50, 7), 2)
    assert_loads_as_torch_saves({"contiguous": base, "strided": base[:, ::2],
                                 "big": base.astype(">f4"), "one_row": base[:1]}, tmp_path)


def test_large_chunks_summed_beside_the_write_give_right_crcs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "CHUNK", 3 << 19)  # 1.5 MiB: summed in the pool, 3 per record
    assert_loads_as_torch_saves({"a": _values("float32", (1024, 1100), 4),
                                 "b": _values("float64", (3 << 17,), 5)}, tmp_path)


def test_zip64_fields_are_read_by_torch_and_zipfile(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Records and offsets of 4 GiB and more take ZIP64 fields; with the limit lowered every
    record past the first bytes takes them, so both readers must decode them."""
    monkeypatch.setattr(pt_zip, "_LIMIT", 200)
    arrays = {"small": _values("float32", (3,)), "big": _values("float64", (40, 3)),
              "after": _values("int64", (30,))}
    assert_loads_as_torch_saves(arrays, tmp_path)
    with zipfile.ZipFile(tmp_path / "ours.pt") as archive:
        big = archive.getinfo("archive/data/1")
        assert big.file_size == 960 and big.extra[:4] == struct.pack("<HH", 1, 24)


def test_an_unsupported_dtype_is_refused_before_a_byte_is_written() -> None:
    stream = io.BytesIO()
    with pytest.raises(OutputError, match="cannot write a complex64 tensor to .pt; supported: "):
        write_pt_stream({"w": np.zeros(2, np.complex64)}, stream)
    assert stream.getvalue() == b""


@pytest.mark.parametrize("value", [0, 1, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, 2**31,
                                   -(2**31), -(2**31) - 1, 2**40, 2**63, -(2**63) - 5])
def test_integers_unpickle_to_their_value(value: int) -> None:
    """Every integer encoding (BININT1/2, BININT, LONG1) read by Python's own unpickler."""
    writer = _Pickle()
    writer.integer(value)
    assert pickle.loads(b"".join(writer.parts) + b".") == value


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), hnp.arrays(
    st.sampled_from([np.dtype(d) for d in DTYPES] + [np.dtype(">f4"), np.dtype(">i8")]),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))), max_size=6))
def test_any_arrays_load_back_bit_for_bit(items: list[tuple[str, np.ndarray]]) -> None:
    arrays = dict(items)
    stream = io.BytesIO()
    write_pt_stream(arrays, stream)
    loaded = torch.load(io.BytesIO(stream.getvalue()), weights_only=True)
    assert list(loaded) == list(arrays)
    for key, array in arrays.items():
        tensor = loaded[key]
        assert tuple(tensor.shape) == array.shape and tensor.stride() == _torch_tensor(
            array).stride()
        assert tensor.numpy().tobytes() == np.array(array, order="C",
                                                    dtype=array.dtype.newbyteorder("=")
                                                    ).tobytes()
    assert zipfile.ZipFile(io.BytesIO(stream.getvalue())).testzip() is None
