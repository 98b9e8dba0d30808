"""Edge cases of the wire scanner and BlobProto reader (issue #5): byte order, unaligned views,
varint limits, exact error messages. Expected values come from ``struct`` (protobuf's
little-endian fixed32/fixed64), never from the code under test."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bnconvert._proto import caffe_pb2
from bnconvert.api import convert
from bnconvert.errors import CaffemodelFormatError
from bnconvert.read.blob import scan_blob
from bnconvert.read.caffemodel import scan_caffemodel
from bnconvert.read.wire import (
    FIXED32,
    LENGTH,
    VARINT,
    WireFormatError,
    encode_tag,
    encode_varint,
    iter_fields,
    read_varint,
)


def _len_field(number: int, payload: bytes) -> bytes:
    return encode_tag(number, LENGTH, len(payload)) + payload


def _blob(values: list[float], double: bool = False) -> bytes:
    shape = caffe_pb2.BlobShape(dim=[len(values)]).SerializeToString()
    data = struct.pack(f"<{len(values)}{'d' if double else 'f'}", *values)
    return _len_field(7, shape) + _len_field(8 if double else 5, data)


# --- varints and fields ------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "value"), [
    (b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xac\x02", 300),
    (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 0),  # padded to 10 bytes: allowed
    (b"\xff" * 9 + b"\x01", 2**64 - 1), (b"\xff" * 9 + b"\x7f", 2**64 - 1),  # modulo 2**64
])
def test_read_varint(raw: bytes, value: int) -> None:
    assert read_varint(raw, 0, len(raw)) == (value, len(raw))


def test_varint_errors() -> None:
    with pytest.raises(WireFormatError, match="byte 2: varint longer than 10 bytes"):
        read_varint(b"\0\0" + b"\x80" * 10 + b"\x00", 2, 13)
    with pytest.raises(WireFormatError, match="byte 1: truncated varint"):
        read_varint(b"\0\x80\x80", 1, 3)
    with pytest.raises(WireFormatError, match="byte 0: truncated varint"):
        read_varint(b"\x05", 0, 0)  # the message ends before the varint


def test_iter_fields_spans_and_errors() -> None:
    raw = b"\x08\x96\x01" + b"\x15" + struct.pack("<f", 1.5) + _len_field(3, b"abc")
    assert list(iter_fields(raw, 0, len(raw))) == [
        (1, VARINT, 150, 3), (2, FIXED32, 4, 8), (3, LENGTH, 10, 13)]
    with pytest.raises(WireFormatError, match="byte 0: field number 0 is invalid"):
        list(iter_fields(b"\x02\x00", 0, 2))
    with pytest.raises(WireFormatError, match=r"byte 0: field 1 has wire type 3 \(start-group\)"):
        list(iter_fields(b"\x0b\x0c", 0, 2))
    with pytest.raises(WireFormatError, match="byte 0: field 1 has wire type 6 .invalid."):
        list(iter_fields(b"\x0e", 0, 1))
    with pytest.raises(WireFormatError, match="byte 1: field 3 claims 3 bytes but only 2 remain"):
        list(iter_fields(b"\0" + _len_field(3, b"abc"), 1, 5))


# --- byte order and alignment ------------------------------------------------------------------

def test_packed_floats_are_little_endian() -> None:
    values = [1.0, -2.5, 3.0e-8, 65504.0]
    raw = _blob(values)
    blob = scan_blob(raw, 0, len(raw))
    expected = np.array(struct.unpack("<4f", struct.pack("<4f", *values)), dtype=np.float32)
    out = blob.values()
    assert out.dtype == np.dtype(np.float32) and out.dtype.isnative
    np.testing.assert_array_equal(out, expected)
    assert blob.first() == 1.0
    # Read as big-endian the same bytes would be nonsense: the reader must not do that.
    assert not np.array_equal(np.frombuffer(raw, ">f4", 4, blob.spans[0][0]), expected)


def test_double_data_is_little_endian_and_cast() -> None:
    raw = _blob([0.1, 1e40, -3.5], double=True)
    out = scan_blob(raw, 0, len(raw)).values()
    np.testing.assert_array_equal(out, np.array([0.1, np.inf, -3.5], dtype=np.float32))


@pytest.mark.parametrize("shift", range(8))
def test_zero_copy_view_at_any_offset(shift: int) -> None:
    values = [0.5, -1.0, 2.25]
    raw = bytes(shift) + _blob(values)
    blob = scan_blob(raw, shift, len(raw))
    out = blob.values()
    np.testing.assert_array_equal(out, np.array(values, dtype=np.float32))
    assert out.base is not None and not out.flags.writeable  # a view, not a copy
    assert out.flags.aligned == (blob.spans[0][0] % out.dtype.alignment == 0)
    np.testing.assert_array_equal(torch.from_numpy(out.copy()).numpy(),
                                  np.array(values, dtype=np.float32))


@pytest.mark.parametrize("pad", [0, 1, 2, 3])
def test_unaligned_batch_norm_blobs_convert(tmp_path: Path, pad: int) -> None:
    """A name of odd length shifts every blob to another alignment; the .pt must not care."""
    bn = caffe_pb2.LayerParameter(name="bn" + "x" * pad, type="BatchNorm", bottom=["d"],
                                  top=["d"]).SerializeToString()
    mean, var, factor = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 2.0
    layer = bn + b"".join(_len_field(7, _blob(v)) for v in (mean, var, [factor]))
    net = caffe_pb2.NetParameter(name="n").SerializeToString() + _len_field(100, layer)
    path = tmp_path / "m.caffemodel"
    path.write_bytes(net)
    model = scan_caffemodel(net)
    assert any(b.spans[0][0] % 4 for b in model.layers[0].blobs)  # some blob is unaligned
    convert(None, path, tmp_path / "bn.pt", manifest=False)
    state = torch.load(tmp_path / "bn.pt", weights_only=True)
    f = np.float32(1) / np.float32(factor)
    np.testing.assert_array_equal(state[f"bn{'x' * pad}.running_mean"].numpy(),
                                  np.array(mean, dtype=np.float32) * f)
    np.testing.assert_array_equal(state[f"bn{'x' * pad}.running_var"].numpy(),
                                  np.array(var, dtype=np.float32) * f)


# --- blob errors -------------------------------------------------------------------------------

def test_packed_data_not_whole_floats() -> None:
    shape = caffe_pb2.BlobShape(dim=[2]).SerializeToString()
    raw = _len_field(7, shape) + _len_field(5, b"\0" * 9)
    with pytest.raises(WireFormatError, match="byte 0: blob data of 9 bytes is not a whole "
                                              "number of 4-byte values"):
        scan_blob(raw, 0, len(raw))


def test_count_disagrees_with_shape() -> None:
    shape = caffe_pb2.BlobShape(dim=[3]).SerializeToString()
    raw = _len_field(7, shape) + _len_field(5, struct.pack("<2f", 1, 2))
    with pytest.raises(WireFormatError, match=r"blob holds 2 values but its shape \[3\] needs 3"):
        scan_blob(raw, 0, len(raw))


def test_unpacked_data_is_read_too() -> None:
    shape = caffe_pb2.BlobShape(dim=[2]).SerializeToString()
    raw = _len_field(7, shape) + b"\x2d" + struct.pack("<f", 1.5) + b"\x2d" + \
        struct.pack("<f", -2.0)
    np.testing.assert_array_equal(scan_blob(raw, 0, len(raw)).values(), [1.5, -2.0])


def test_layer_name_not_utf8_is_a_format_error() -> None:
    layer = _len_field(1, b"bn\xff") + _len_field(2, b"BatchNorm")
    net = _len_field(100, layer)
    with pytest.raises(CaffemodelFormatError, match=r"<buffer>: byte 3: layer name, type, "
                       r"bottom or top b'bn\\xff' is not valid UTF-8"):
        scan_caffemodel(net)


def test_undecodable_parameters_keep_the_identity() -> None:
    """A fork's clashing field numbers: name, type, bottoms and tops still come off the wire."""
    layer = (_len_field(1, b"bn") + _len_field(2, b"BatchNorm") + _len_field(3, b"x")
             + _len_field(4, b"x") + _len_field(139, b"\x08"))  # batch_norm_param: truncated
    model = scan_caffemodel(_len_field(100, layer))
    (only,) = model.layers
    assert (only.name, only.type, list(only.definition.bottom)) == ("bn", "BatchNorm", ["x"])
    assert only.decode_problem is not None and "parameters not decoded" in only.decode_problem


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trip(value: int) -> None:
    raw = encode_varint(value)
    assert read_varint(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize("values,field", [
    ([1.5, -2.0, float("inf")], "data"),
    ([0.1, 1e300, -1e300, 3.0], "double_data"),  # Caffe casts to float32: too large is inf
])
def test_floats_read_without_numpy_equal_the_array(values: list[float], field: str) -> None:
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.append(len(values))
    getattr(proto, field).extend(values)
    raw = proto.SerializeToString()
    ref = scan_blob(raw, 0, len(raw))
    with np.errstate(over="ignore"):
        expected = np.asarray(values, np.float64).astype(np.float32).tolist()
    assert ref.floats() == ref.values().tolist() == expected
