"""Outputs appear whole or not at all."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bnconvert.errors import OutputError
from bnconvert.write.atomic import write_atomically, write_files_atomically


def test_success_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomically(target, lambda stream: stream.write(b"new") and None)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failure_in_writer_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"

    def fail(stream) -> None:
        stream.write(b"partial")
        raise ValueError("writer bug")

    with pytest.raises(ValueError):
        write_atomically(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_os_error_becomes_output_error(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"

    def disk_full(stream) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"out.bin: writing failed: No space left on device"):
        write_atomically(target, disk_full)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write here"):
        write_atomically(tmp_path / "nope" / "x.bin", lambda stream: None)


def test_files_written_together_change_together(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "a.json"
    first.write_bytes(b"old a")
    second.write_bytes(b"old json")

    def fail(stream) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="a.json: writing failed"):
        write_files_atomically([(first, lambda s: s.write(b"new a") and None), (second, fail)])
    assert (first.read_bytes(), second.read_bytes()) == (b"old a", b"old json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json"]
    write_files_atomically([(first, lambda s: s.write(b"new a") and None),
                            (second, lambda s: s.write(b"new json") and None)])
    assert (first.read_bytes(), second.read_bytes()) == (b"new a", b"new json")


def test_make_dirs_creates_the_folders_and_removes_them_on_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_atomically(tmp_path / "x" / "y" / "f.bin", _raise, make_dirs=True)
    assert list(tmp_path.iterdir()) == []
    write_atomically(tmp_path / "x" / "y" / "f.bin", lambda s: s.write(b"1") and None,
                     make_dirs=True)
    assert (tmp_path / "x" / "y" / "f.bin").read_bytes() == b"1"


def _raise(stream) -> None:
    raise ValueError("writer bug")
