"""An array's bytes as the writers stream them: C order, little-endian, in chunks of at most
``CHUNK`` bytes, without a copy of the whole array.

A C-contiguous little-endian array (a view of the caffemodel's memory map, typically) is cut
into views of its own memory, and the mapped pages under each chunk are released
(``read.pages.release_pages``) once the consumer has taken it, so a model of any size converts
with flat memory. Any other array (strided, big-endian) is copied a block of leading-axis
slices at a time, each block at most about ``CHUNK`` bytes (or one slice, if larger).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np

from ..read.pages import release_pages

__all__ = ["CHUNK", "array_chunks", "little_endian", "write_while_computing"]

CHUNK = 16 << 20  # bytes written (and released) at a time
PARALLEL = 1 << 20  # chunks at least this large are checksummed while they are written
T = TypeVar("T")


def little_endian(dtype: np.dtype) -> np.dtype:
    """``dtype`` with little-endian byte order (itself when it already is, or has none)."""
    native_big = dtype.byteorder == "=" and sys.byteorder == "big"
    return dtype.newbyteorder("<") if dtype.byteorder == ">" or native_big else dtype


def array_chunks(array: np.ndarray, chunk: int | None = None) -> Iterator[memoryview]:
    """The bytes of ``array`` in C order and little-endian, as consecutive chunks of at most
    ``chunk`` bytes (default ``CHUNK``).

    Example:
        >>> [bytes(c) for c in array_chunks(np.arange(3, dtype="<i2"), chunk=4)]
        [b'\\x00\\x00\\x01\\x00', b'\\x02\\x00']
    """
    chunk = chunk or CHUNK
    if array.flags.c_contiguous and little_endian(array.dtype) == array.dtype:
        data = array.reshape(-1).view(np.uint8).data
        for start in range(0, len(data), chunk):
            yield data[start:start + chunk]
            release_pages(array, start, min(start + chunk, len(data)))
        return
    if array.ndim == 0 or array.size == 0:
        yield _contiguous(array).reshape(-1).view(np.uint8).data
        return
    rows = max(1, chunk // max(1, array[0].nbytes))
    for start in range(0, array.shape[0], rows):
        yield _contiguous(array[start:start + rows]).reshape(-1).view(np.uint8).data


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous little-endian copy of ``array``."""
    return np.ascontiguousarray(array, dtype=little_endian(array.dtype))


def write_while_computing(pool: Executor | None, write: Callable[[], object],
                          compute: Callable[[], T], size: int) -> T:
    """Run ``write()`` (a chunk of ``size`` bytes to a file) and ``compute()`` (a checksum of
    the same bytes) and return the latter's result; for a chunk of ``PARALLEL`` bytes or more
    ``compute`` runs in ``pool`` while the chunk is written (zlib, hashlib and file writes
    release the GIL, so both proceed on a second core).

    Example:
        >>> import zlib
        >>> write_while_computing(None, lambda: None, lambda: zlib.crc32(b"abc"), 3)
        891568578
    """
    if pool is None or size < PARALLEL:
        write()
        return compute()
    computed = pool.submit(compute)
    try:
        write()
    finally:
        result = computed.result()
    return result
