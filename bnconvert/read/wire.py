"""A minimal protobuf wire-format scanner over a buffer (bytes, mmap or memoryview).

It never copies payloads: length-delimited fields come back as ``(start, end)`` spans into the
buffer, so a caller can hand a 2 GiB blob to numpy as a view, or skip it without reading it.
Every fault raises ``WireFormatError`` with the byte offset where it was found.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, overload

__all__ = ["WireFormatError", "Buffer", "read_varint", "iter_fields", "VARINT", "FIXED64",
           "LENGTH", "FIXED32", "encode_varint", "encode_tag"]

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "start-group",
               4: "end-group", 5: "32-bit"}
_MAX_VARINT_BYTES = 10


class Buffer(Protocol):
    """Anything indexable by int (giving a byte) and by slice (giving bytes-like)."""

    @overload
    def __getitem__(self, key: int, /) -> int: ...  # pragma: no cover - protocol
    @overload
    def __getitem__(self, key: slice, /) -> bytes | bytearray | memoryview: ...  # pragma: no cover
    def __len__(self) -> int: ...  # pragma: no cover - protocol


class WireFormatError(Exception):
    """Malformed protobuf bytes at ``offset``; callers add the file name."""

    def __init__(self, offset: int, problem: str) -> None:
        self.offset, self.problem = offset, problem
        super().__init__(f"byte {offset}: {problem}")


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return ``(value, next_pos)``.

    Like protobuf, a varint is at most 10 bytes and its value is taken modulo 2**64.

    Raises:
        WireFormatError: the varint runs past ``end`` or is longer than 10 bytes.
    """
    if pos < end:
        byte = buf[pos]
        if byte < 0x80:  # the common one-byte case
            return byte, pos + 1
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireFormatError(start, "truncated varint (file or message ends inside it)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if pos - start >= _MAX_VARINT_BYTES:
            raise WireFormatError(start, "varint longer than 10 bytes")


def iter_fields(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, wire_type, a, b)`` for each field of the message in ``[start, end)``.

    For VARINT fields ``a`` is the value; for LENGTH, FIXED32 and FIXED64 fields ``(a, b)`` is
    the payload's span in ``buf``. In every case ``b`` is where the field ends, so a field's raw
    bytes run from the previous field's ``b`` (or ``start``) to its own ``b``. Payloads are never
    read, only skipped. Groups are not used by Caffe's schema and are rejected.

    Raises:
        WireFormatError: bad tag, field number 0, unsupported wire type, or a payload that runs
            past ``end``.
    """
    pos = start
    while pos < end:
        tag_pos = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise WireFormatError(tag_pos, "field number 0 is invalid")
        if wire == LENGTH:
            size, pos = read_varint(buf, pos, end)
        elif wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield field, wire, value, pos
            continue
        elif wire == FIXED32:
            size = 4
        elif wire == FIXED64:
            size = 8
        else:
            raise WireFormatError(
                tag_pos, f"field {field} has wire type {wire} "
                f"({_WIRE_NAMES.get(wire, 'invalid')}), which Caffe files never use"
            )
        if size > end - pos:
            raise WireFormatError(
                tag_pos, f"field {field} claims {size} bytes but only {end - pos} remain "
                "in its message (truncated or corrupt file)"
            )
        yield field, wire, pos, pos + size
        pos += size


def encode_varint(value: int) -> bytes:
    """The base-128 varint of a non-negative int (the inverse of ``read_varint``).

    bnconvert only reads Caffe files; the encoder serves tests and the benchmark's generator.

    Example:
        >>> encode_varint(150)
        b'\\x96\\x01'
    """
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_tag(field: int, wire: int = LENGTH, length: int | None = None) -> bytes:
    """A field's tag, followed by ``length`` as a varint for a length-delimited field."""
    tag = encode_varint(field << 3 | wire)
    return tag if length is None else tag + encode_varint(length)
