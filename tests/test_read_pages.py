"""release_pages: pages of the caffemodel's memory map that were read leave the resident set
(what keeps --whole .safetensors output at the interpreter's size for any model)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from bnconvert.read.pages import mapping_of, release_pages

MIB = 1 << 20


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc only")
def test_released_pages_leave_the_resident_set(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.arange(8 * MIB, dtype=np.float32).tobytes())  # 32 MiB
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapped, dtype=np.float32, count=8 * MIB - 1, offset=4)
    assert mapping_of(view[10:].reshape(-1)) is mapped
    before = _rss_file_kib()
    assert float(view.sum(dtype=np.float64)) > 0  # touch every page
    touched = _rss_file_kib()
    release_pages(view)
    after = _rss_file_kib()
    assert touched - before > 24 * 1024
    assert touched - after > 24 * 1024
    assert np.array_equal(view[:3], [1, 2, 3])  # still readable: faulted back from the file
    del view
    mapped.close()


def test_arrays_that_are_not_mapped_are_left_alone() -> None:
    array = np.ones(1000, dtype=np.float32)
    assert mapping_of(array) is None
    release_pages(array)
    assert array.sum() == 1000
