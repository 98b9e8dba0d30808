"""Give back the memory-mapped pages of a caffemodel that were read and are no longer needed.

Reading a blob from the memory map makes its pages part of the process's resident set; for a
5 GB model that is 5 GB of RSS although every page is only read once. ``release_pages`` tells
the kernel (``madvise(MADV_DONTNEED)`` on the read-only mapping) that the pages under an array
need not stay resident: they remain in the page cache and fault back in if touched again.
Arrays that are not views of an ``mmap`` are left alone.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["release_pages", "mapping_of"]

_PAGE = mmap.PAGESIZE


def mapping_of(array: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` an array is a view of, or None."""
    import numpy as np

    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def release_pages(array: np.ndarray, start: int = 0, end: int | None = None) -> None:
    """Drop the whole pages under bytes ``[start, end)`` of ``array`` from the resident set
    (the pages a neighbouring array shares at either edge are kept).

    Example:
        >>> import numpy as np
        >>> release_pages(np.zeros(3))  # not a view of an mmap: nothing happens
    """
    mapped = mapping_of(array)
    if mapped is None or not hasattr(mapped, "madvise") or len(mapped) == 0:
        return
    import numpy as np

    origin = int(np.frombuffer(mapped, dtype=np.uint8, count=1).ctypes.data)
    offset = int(array.ctypes.data) - origin
    stop = offset + (array.nbytes if end is None else end)
    first = -(-(offset + start) // _PAGE) * _PAGE  # round up: a shared first page stays
    last = stop // _PAGE * _PAGE
    if last > first:
        mapped.madvise(mmap.MADV_DONTNEED, first, last - first)
