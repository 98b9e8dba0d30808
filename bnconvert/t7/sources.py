"""The two encodings of Torch7's ``File``: binary (little-endian, x86_64 sizes) and ascii.

Both offer the same reads, each raising ``T7FormatError`` with the byte offset of the fault.
Binary: int32 ints, int64 longs, float64 doubles, raw little-endian storage elements.
Ascii (``THDiskFile`` in ascii mode): numbers as text (``%d``, ``%.17g``, floats ``%.9g``),
a run of numbers space-separated on one line, chars as raw bytes followed by a newline.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np

from ..errors import T7FormatError

__all__ = ["AsciiSource", "BinarySource", "Source", "T7FormatError"]


class Source:
    """Reads primitive values from a ``.t7`` file held in memory."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name, self.pos = data, name, 0

    def fail(self, problem: str, offset: int | None = None) -> T7FormatError:
        """An error at ``offset`` (default: the current position) to raise."""
        return T7FormatError(self.name, self.pos if offset is None else offset, problem)

    def remaining(self) -> int:
        """Bytes left after the current position."""
        return len(self.data) - self.pos

    def read_int(self, what: str) -> int:
        """One int32 (type tags, counts, reference indices, booleans)."""
        return int(self.read_array(np.dtype("<i4"), 1, what)[0])

    def read_long(self, what: str) -> int:
        """One int64 (sizes, strides, storage offsets and lengths)."""
        return int(self.read_array(np.dtype("<i8"), 1, what)[0])

    def read_longs(self, count: int, what: str) -> tuple[int, ...]:
        """``count`` int64 values."""
        return tuple(int(v) for v in self.read_array(np.dtype("<i8"), count, what))

    def read_double(self, what: str) -> float:
        """One float64 (Lua numbers)."""
        return float(self.read_array(np.dtype("<f8"), 1, what)[0])

    def read_chars(self, count: int, what: str) -> bytes:
        """``count`` raw bytes (strings, class names, bytecode)."""
        raise NotImplementedError

    def read_array(self, dtype: np.dtype[Any], count: int, what: str) -> np.ndarray:
        """``count`` elements of ``dtype`` (storage contents), a new array."""
        raise NotImplementedError


class BinarySource(Source):
    """Torch7's binary mode as written on little-endian 64-bit machines."""

    def read_int(self, what: str) -> int:
        return int(self._scalar(_INT32, what))

    def read_long(self, what: str) -> int:
        return int(self._scalar(_INT64, what))

    def read_double(self, what: str) -> float:
        return float(self._scalar(_FLOAT64, what))

    def _scalar(self, layout: struct.Struct, what: str) -> int | float:
        if layout.size > self.remaining():
            raise self.fail(f"truncated: {what} needs {layout.size} bytes, "
                            f"{self.remaining()} left")
        value: int | float = layout.unpack_from(self.data, self.pos)[0]
        self.pos += layout.size
        return value

    def read_chars(self, count: int, what: str) -> bytes:
        return bytes(self._take(count, what))

    def read_array(self, dtype: np.dtype[Any], count: int, what: str) -> np.ndarray:
        if count > self.remaining() // dtype.itemsize:
            needs = f"{count} x {dtype.itemsize}" if count != 1 else str(dtype.itemsize)
            raise self.fail(f"truncated: {what} needs {needs} bytes, {self.remaining()} left")
        return np.frombuffer(self._take(count * dtype.itemsize, what), dtype=dtype).copy()

    def _take(self, nbytes: int, what: str) -> memoryview:
        if nbytes > self.remaining():
            raise self.fail(f"truncated: {what} needs {nbytes} bytes, {self.remaining()} left")
        start, self.pos = self.pos, self.pos + nbytes
        return memoryview(self.data)[start:self.pos]


_INT32, _INT64, _FLOAT64 = struct.Struct("<i"), struct.Struct("<q"), struct.Struct("<d")
_TOKEN = re.compile(rb"\s*(\S+)")
_INTEGER = re.compile(rb"[+-]?\d+")


class AsciiSource(Source):
    """Torch7's ascii mode: ``fscanf`` semantics, one newline eaten after each run of values."""

    def read_chars(self, count: int, what: str) -> bytes:
        if count > self.remaining():
            raise self.fail(f"truncated: {what} needs {count} bytes, {self.remaining()} left")
        start, self.pos = self.pos, self.pos + count
        if count:
            self._eat_newline()
        return self.data[start:start + count]

    def read_array(self, dtype: np.dtype[Any], count: int, what: str) -> np.ndarray:
        if dtype.itemsize == 1 and dtype.kind in "iu":
            return np.frombuffer(self.read_chars(count, what), dtype=dtype).copy()
        if count > max(self.remaining(), 1):
            raise self.fail(f"truncated: {what} needs {count} numbers, at most "
                            f"{self.remaining()} left")
        out = np.empty(count, dtype=dtype)
        for i in range(count):
            out[i] = self._number(dtype, what)
        if count:
            self._eat_newline()
        return out

    def _number(self, dtype: np.dtype[Any], what: str) -> Any:
        match = _TOKEN.match(self.data, self.pos)
        if match is None:
            raise self.fail(f"truncated: expected {what}, found the end of the file")
        token, offset = match.group(1), match.start(1)
        try:
            if dtype.kind == "f":
                value: Any = float(token)
            elif _INTEGER.fullmatch(token):
                value = int(token)
                np.array(value, dtype=dtype)  # range check: OverflowError if it does not fit
            else:
                raise ValueError(token)
        except (ValueError, OverflowError) as exc:
            raise self.fail(f"expected {what} ({dtype.name}), found {token[:40]!r}",
                            offset) from exc
        self.pos = match.end(1)
        return value

    def _eat_newline(self) -> None:
        if self.data[self.pos:self.pos + 1] == b"\n":
            self.pos += 1
