"""The fingerprint (size and SHA-256, as ``fingerprint.fingerprint`` gives it) of an output,
computed from the bytes as a writer writes them instead of by reading the file back.

A writer only calls ``write`` on its stream (none seeks), so the bytes that pass through a
``DigestingStream`` are the file's bytes. A large chunk is hashed in a worker thread while the
same chunk is written (``hashlib`` and the file write both release the GIL), so the hash costs
little wall time on a machine with a second core.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from .chunks import write_while_computing

__all__ = ["DigestingStream"]


class DigestingStream(io.BufferedIOBase):
    """A write-only stream that passes every byte on to ``raw`` and hashes it on the way;
    close it (or leave its ``with`` block) before asking for ``fingerprint()``.

    Example:
        >>> out = io.BytesIO()
        >>> with DigestingStream(out) as stream:
        ...     _ = stream.write(b"abc")
        >>> stream.fingerprint()["sha256"][:16], out.getvalue()
        ('ba7816bf8f01cfea', b'abc')
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._sha = hashlib.sha256()
        self._size = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bnconvert-sha256")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write all of ``data`` (a bytes-like object) to the underlying stream and hash it."""
        size = memoryview(data).nbytes
        write_while_computing(self._pool, lambda: self._raw.write(data),
                              lambda: self._sha.update(data), size)
        self._size += size
        return size

    def close(self) -> None:
        """Stop the hashing thread (the underlying stream stays open)."""
        self._pool.shutdown()
        super().close()

    def fingerprint(self) -> dict[str, Any]:
        """``{"size": bytes, "sha256": hex digest}`` of everything written."""
        return {"size": self._size, "sha256": self._sha.hexdigest()}
