"""Atomic file output: write to a temporary file in the target folder, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError

__all__ = ["write_atomically"]


def write_atomically(path: str | Path, fill: Callable[[BinaryIO], None]) -> None:
    """Call ``fill(stream)`` on a temporary file beside ``path`` and move it into place.

    Nothing is left at ``path`` (nor a temporary file) when ``fill`` raises.

    Raises:
        OutputError: the target folder does not exist or is not writable, or writing failed
            (disk full, target is a directory, ...).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as stream:
            fill(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: writing failed: {exc.strerror or exc}") from exc
        raise
