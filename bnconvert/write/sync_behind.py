"""Let the disk write a large output while it is being produced.

The staged output is ``fsync``-ed before it is renamed into place (``atomic``). Left alone, the
kernel writes most of a 500 MB file only then, and the process waits for the whole of it: on
this project's benchmark machine about a second for VGG-16. ``SyncBehind`` starts an
``os.fdatasync`` of the file in a background thread after every ``step`` bytes (one at a time),
so the disk works while the writer does, and the final ``fsync`` waits for the tail only.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any, BinaryIO

__all__ = ["SyncBehind"]

STEP = 64 << 20
#: ``os.fdatasync`` is missing on macOS and Windows; ``os.fsync`` does the same job there
_SYNC = getattr(os, "fdatasync", os.fsync)


class SyncBehind(io.BufferedIOBase):
    """A write-only stream passing every byte on to ``raw`` (a file with a ``fileno``; any
    other stream is passed through untouched), syncing the file in the background as it grows.
    Closing it waits for the running sync and raises its error, if any (the underlying stream
    stays open).

    Example:
        >>> with SyncBehind(io.BytesIO()) as stream:  # no file: nothing to sync
        ...     stream.write(b"abc")
        3
    """

    def __init__(self, raw: BinaryIO, step: int | None = None) -> None:
        super().__init__()
        self._raw = raw
        self._step = step or STEP
        self._since = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        try:
            self._fd: int | None = raw.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            self._fd = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write all of ``data`` to the underlying stream."""
        self._raw.write(data)
        size = memoryview(data).nbytes
        self._since += size
        if self._fd is not None and self._since >= self._step and not self._syncing():
            self._raw.flush()
            self._thread = threading.Thread(target=self._sync, args=(self._fd,), daemon=True,
                                            name="bnconvert-sync-behind")
            self._thread.start()
            self._since = 0
        return size

    def _syncing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _sync(self, fd: int) -> None:
        try:
            _SYNC(fd)
        except OSError as exc:
            self._error = exc

    def close(self) -> None:
        """Wait for the running sync; raise the error a sync met."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        super().close()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
