"""BlobProto, read lazily and exactly the way Caffe's ``Blob::FromProto`` reads it.

A ``BlobRef`` records where a blob's values are in the caffemodel without reading them; numpy
views are made only when ``values()`` is called. Caffe's rules:

- shape: the legacy ``num/channels/height/width`` fields win when any of them is set (a vector
  in legacy form is right-aligned: 1x1x1xC); otherwise ``shape.dim``;
- values: ``double_data`` (cast to float32) wins over ``data``; NVIDIA Caffe's ``raw_data`` with
  ``raw_data_type`` FLOAT, FLOAT16 or DOUBLE is read after both.
"""

from __future__ import annotations

import array
import struct
import sys
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Any, cast

from .wire import (
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    Buffer,
    WireFormatError,
    iter_fields,
    read_varint,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BlobRef", "scan_blob"]

# BlobProto field numbers (BVLC caffe.proto; raw_* from NVIDIA Caffe 0.17).
_NUM, _CHANNELS, _HEIGHT, _WIDTH, _DATA, _DIFF, _SHAPE, _DOUBLE_DATA = 1, 2, 3, 4, 5, 6, 7, 8
_RAW_DATA_TYPE, _RAW_DATA = 10, 12
# NVIDIA Caffe's BlobProto.Type enum -> numpy dtype and item size.
_RAW_TYPES = {0: ("<f8", 8, "DOUBLE"), 1: ("<f4", 4, "FLOAT"), 2: ("<f2", 2, "FLOAT16")}


@dataclass(frozen=True)
class BlobRef:
    """Where one blob's values are in a buffer, and its shape as Caffe reads it.

    Attributes:
        buf: the whole caffemodel buffer (an mmap); values are views into it.
        offset: byte offset of the BlobProto message (for error messages).
        shape: the blob's shape under Caffe's rules (legacy dims right-aligned, not squeezed).
        legacy: True when the shape came from num/channels/height/width.
        spans: ``(start, end)`` byte spans holding the values, in order.
        dtype: numpy dtype string of the stored values (``<f4``, ``<f8`` or ``<f2``).
        source: which field the values come from (``data``, ``double_data``, ``raw_data FLOAT``...).
    """

    buf: Buffer
    offset: int
    shape: tuple[int, ...]
    legacy: bool
    spans: tuple[tuple[int, int], ...]
    dtype: str
    source: str

    @property
    def count(self) -> int:
        """Number of values stored (may disagree with the shape in a corrupt file)."""
        size = int(self.dtype[-1])
        return sum(end - start for start, end in self.spans) // size

    @property
    def shape_count(self) -> int:
        """Number of elements the shape describes (1 for a 0-d blob, as Caffe's ``count()``:
        a channel-shared PReLU stores its one slope with shape ``[]``)."""
        return prod(self.shape)

    def first(self) -> float:
        """The first value, decoded without numpy (for the BatchNorm scale factor)."""
        if not self.spans:
            raise IndexError("blob holds no values")
        start = self.spans[0][0]
        size = int(self.dtype[-1])
        raw = bytes(self.buf[start : start + size])
        return float(struct.unpack({"4": "<f", "8": "<d", "2": "<e"}[self.dtype[-1]], raw)[0])

    def floats(self) -> list[float]:
        """The values as Python floats after Caffe's cast to float32, without numpy (for the
        checks ``inspect`` runs; ``values()`` gives the array)."""
        out = array.array("f")
        for start, end in self.spans:
            raw = bytes(self.buf[start:end])
            if self.dtype == "<f2":
                out.extend(v for (v,) in struct.iter_unpack("<e", raw))
                continue
            chunk = array.array("d" if self.dtype == "<f8" else "f")
            chunk.frombytes(raw)
            if sys.byteorder == "big":
                chunk.byteswap()
            if chunk.typecode == "f":
                out.extend(chunk)
            else:  # doubles cast to float32 (too large: inf), as Caffe
                out.fromlist(chunk.tolist())
        return out.tolist()

    def values(self) -> np.ndarray:
        """The values as a read-only float32 vector, as Caffe holds them after loading.

        Stored values are little-endian (protobuf's fixed32/fixed64 and NVIDIA's raw_data).
        float32 data on a little-endian host is a zero-copy view into the buffer, which may
        start at any byte offset (unaligned: numpy handles it; copy it before handing it to
        code that needs alignment). Double, half and (on a big-endian host) float data are
        converted into a new native float32 array.
        """
        import numpy as np

        size = int(self.dtype[-1])
        source = cast(Any, self.buf)
        parts = [np.frombuffer(source, dtype=self.dtype, count=(end - start) // size,
                               offset=start) for start, end in self.spans]
        if not parts:
            out = np.zeros(0, dtype=np.float32)
        elif len(parts) == 1:
            out = parts[0]
        else:
            out = np.concatenate(parts)
        if out.dtype != np.float32:  # double, half, or non-native byte order
            with np.errstate(over="ignore"):  # as C++'s cast: out-of-range doubles become inf
                out = out.astype(np.float32)
        out.flags.writeable = False
        return out


def _packed_ints(buf: Buffer, start: int, end: int) -> list[int]:
    values = []
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        values.append(value - (1 << 64) if value >= 1 << 63 else value)
    return values


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _scan_shape(buf: Buffer, start: int, end: int) -> list[int]:
    dims: list[int] = []
    for field, wire, a, b in iter_fields(buf, start, end):
        if field == 1 and wire == LENGTH:
            dims.extend(_packed_ints(buf, a, b))
        elif field == 1 and wire == VARINT:
            dims.append(a - (1 << 64) if a >= 1 << 63 else a)
    return dims


def scan_blob(buf: Buffer, start: int, end: int) -> BlobRef:
    """Scan one BlobProto message in ``buf[start:end]`` without reading its values.

    Only the field headers are read (tags, lengths, the small ``shape``): the pages holding
    the values are never touched.

    Raises:
        WireFormatError: malformed message, a negative dimension, packed values that are not a
            whole number of items, a value count that disagrees with the shape, or an unknown
            ``raw_data_type``.
    """
    legacy: dict[int, int] = {}
    dims: list[int] = []
    data: list[tuple[int, int]] = []
    double_data: list[tuple[int, int]] = []
    raw_type: int | None = None
    raw_span: tuple[int, int] | None = None
    for field, wire, a, b in iter_fields(buf, start, end):
        if field == _DATA:
            if wire == LENGTH or wire == FIXED32:
                data.append((a, b))
        elif field == _SHAPE:
            if wire == LENGTH:
                dims = _scan_shape(buf, a, b)
        elif field <= _WIDTH:
            if wire == VARINT:
                legacy[field] = _int32(a)
        elif field == _DOUBLE_DATA:
            if wire == LENGTH or wire == FIXED64:
                double_data.append((a, b))
        elif field == _RAW_DATA_TYPE:
            if wire == VARINT:
                raw_type = a
        elif field == _RAW_DATA and wire == LENGTH:
            raw_span = (a, b)
    legacy_used = bool(legacy)
    shape = tuple(legacy.get(f, 0) for f in (_NUM, _CHANNELS, _HEIGHT, _WIDTH)) if legacy_used \
        else tuple(dims)
    if any(d < 0 for d in shape):
        raise WireFormatError(start, f"blob has a negative dimension in shape {list(shape)}")
    blob = _pick_values(buf, start, shape, legacy_used, data, double_data, raw_type, raw_span)
    if blob.spans and blob.count != blob.shape_count:
        raise WireFormatError(
            start, f"blob holds {blob.count} values but its shape {list(shape)} needs "
            f"{blob.shape_count}"
        )
    return blob


def _whole_items(start: int, spans: list[tuple[int, int]], size: int, name: str) -> None:
    for a, b in spans:
        if (b - a) % size:
            raise WireFormatError(start, f"blob {name} of {b - a} bytes is not a whole number "
                                  f"of {size}-byte values")


def _pick_values(buf: Buffer, start: int, shape: tuple[int, ...], legacy: bool,
                 data: list[tuple[int, int]], double_data: list[tuple[int, int]],
                 raw_type: int | None, raw_span: tuple[int, int] | None) -> BlobRef:
    """Caffe's order: ``double_data``, then ``data``, then NVIDIA's ``raw_data``."""
    if any(b > a for a, b in double_data):
        _whole_items(start, double_data, 8, "double_data")
        return BlobRef(buf, start, shape, legacy, tuple(double_data), "<f8", "double_data")
    if any(b > a for a, b in data):
        _whole_items(start, data, 4, "data")
        return BlobRef(buf, start, shape, legacy, tuple(data), "<f4", "data")
    if raw_span is not None and raw_span[1] > raw_span[0]:
        kind = _RAW_TYPES.get(raw_type if raw_type is not None else -1)
        if kind is None:
            raise WireFormatError(start, f"blob raw_data has raw_data_type {raw_type}, "
                                  "which bnconvert cannot read (FLOAT, FLOAT16, DOUBLE are known)")
        dtype, size, name = kind
        _whole_items(start, [raw_span], size, f"raw_data {name}")
        return BlobRef(buf, start, shape, legacy, (raw_span,), dtype, f"raw_data {name}")
    return BlobRef(buf, start, shape, legacy, (), "<f4", "none")
