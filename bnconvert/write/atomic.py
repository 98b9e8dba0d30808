"""Atomic file output: write to temporary files in the target folders, then ``os.replace``.

Several files that belong together (an output and its manifest) are written as one: every
temporary file is written first, and only when all of them are complete are they renamed into
place, so a failure leaves the previous files as they were. New files get the usual
permissions (0666 minus the umask); a file that is replaced keeps its mode.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError

__all__ = ["write_atomically", "write_files_atomically", "staged_files", "Stage",
           "new_file_mode"]

Fill = Callable[[BinaryIO], None]
#: ``stage(target, fill) -> temporary path``: writes one file of a group (see ``staged_files``).
Stage = Callable[[Path, Fill], Path]


def write_atomically(path: str | Path, fill: Fill, *, make_dirs: bool = False) -> None:
    """Call ``fill(stream)`` on a temporary file beside ``path`` and move it into place.

    Nothing is left at ``path`` (nor a temporary file) when ``fill`` raises.

    Args:
        make_dirs: create missing parent folders (removed again if the write fails).

    Raises:
        OutputError: the target folder does not exist or is not writable, or writing failed
            (disk full, target is a directory, ...).
    """
    write_files_atomically([(Path(path), fill)], make_dirs=make_dirs)


def write_files_atomically(targets: Sequence[tuple[Path, Fill]], *,
                           make_dirs: bool = False) -> None:
    """Write several files together: all temporaries first, then the renames.

    Args:
        targets: ``(path, fill)`` pairs, written in this order.
        make_dirs: create missing parent folders.

    Raises:
        OutputError: as ``write_atomically``; then no target has changed.

    Example:
        >>> folder = getfixture("tmp_path")
        >>> write_files_atomically([(folder / "a.bin", lambda out: out.write(b"a")),
        ...                         (folder / "b.bin", lambda out: out.write(b"b"))])
        >>> sorted(p.name for p in folder.iterdir())
        ['a.bin', 'b.bin']
    """
    with staged_files(make_dirs=make_dirs) as stage:
        for path, fill in targets:
            stage(path, fill)


@contextmanager
def staged_files(*, make_dirs: bool = False) -> Iterator[Stage]:
    """A group of files renamed into place together when the block ends without an error.

    ``stage(target, fill)`` writes ``fill``'s bytes to a temporary file beside ``target`` and
    returns the temporary path (so a later file, e.g. a manifest, can fingerprint it). On an
    error every temporary file and every folder created for them is removed.

    Raises:
        OutputError: a folder or a temporary file cannot be created, or writing failed.
    """
    staged: list[tuple[Path, Path]] = []
    created: list[Path] = []

    def stage(target: Path, fill: Fill) -> Path:
        folder = target.parent if str(target.parent) else Path(".")
        if make_dirs:
            created.extend(_make_folders(target, folder))
        staged.append((_write_temporary(target, folder, fill), target))
        return staged[-1][0]

    try:
        yield stage
        for tmp, target in staged:
            _replace(tmp, target)
    except BaseException:
        _clean_up([tmp for tmp, _ in staged], created)
        raise


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"{target}: writing failed: {exc.strerror or exc}") from exc


def _make_folders(target: Path, folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the folder {folder}: "
                          f"{exc.strerror or exc}") from exc
    return missing


def _write_temporary(target: Path, folder: Path, fill: Fill) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here: {exc.strerror}") from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            fill(stream)
            stream.flush()
            os.fsync(stream.fileno())
            os.chmod(stream.fileno(), _mode_for(target))
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: writing failed: {exc.strerror or exc}") from exc
        raise
    return tmp


def _clean_up(temporaries: list[Path], created: list[Path]) -> None:
    for tmp in temporaries:
        tmp.unlink(missing_ok=True)
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


def new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _mode_for(target: Path) -> int:
    """The mode of the file being replaced, else ``new_file_mode()``."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return new_file_mode()
