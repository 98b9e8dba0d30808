"""What kind of file is this, by its first bytes — so that a file of the wrong kind is named for
what it is ("this is a NumPy array file, not a caffemodel") rather than failing deep inside a
parser with an error at byte 0.

Only kinds with a reliable signature are recognized; text prototxts and binary caffemodels
have none and are left to their readers (``sniff`` returns None for them).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from ..errors import ParseError

__all__ = ["FileKind", "sniff", "sniff_file", "refuse_foreign", "HEAD_SIZE"]

#: How many leading bytes ``sniff`` looks at.
HEAD_SIZE = 64


@dataclass(frozen=True)
class FileKind:
    """A recognized kind of file.

    Attributes:
        name: short id (``npy``, ``zip``, ``pickle``, ``safetensors``, ``hdf5``, ``lfs``,
            ``json``, ``t7``).
        description: what to call it in a message ("a NumPy array file (.npy)").
        converted_format: the bnconvert output format it can be (``pt``, ``safetensors``,
            ``t7``), or None.
        hint: what to do when it was given by mistake, or "".
    """

    name: str
    description: str
    converted_format: str | None = None
    hint: str = ""


_NPY = FileKind("npy", "a NumPy array file (.npy)")
_ZIP = FileKind("zip", "a zip archive (e.g. a PyTorch .pt file)", "pt")
_PICKLE = FileKind("pickle", "a Python pickle (e.g. a legacy PyTorch .pt file)", "pt")
_SAFETENSORS = FileKind("safetensors", "a safetensors file", "safetensors")
_HDF5 = FileKind("hdf5", "an HDF5 file (e.g. a Keras .h5 model)")
_LFS = FileKind("lfs", "a Git LFS pointer (the real file was never downloaded)",
                hint="; run `git lfs pull` to fetch it")
_JSON = FileKind("json", "a JSON file")
_T7 = FileKind("t7", "a Torch7 file (.t7)", "t7")

_T7_ASCII = re.compile(rb"^[34]\r?\n1\r?\n")
_JSON_START = re.compile(rb"^\s*(\{\s*(\"|\}|$)|\[\s*(\{|\[|\"|-?\d|\]|$))")


def sniff(head: bytes) -> FileKind | None:
    """The kind of file whose first bytes (at least ``HEAD_SIZE`` of them when the file is
    that long) are ``head``, or None when no signature matches.

    Example:
        >>> sniff(b"\\x93NUMPY\\x01\\x00").name
        'npy'
        >>> sniff(b'layer { name: "bn" }') is None
        True
    """
    signatures = ((b"\x93NUMPY", _NPY), (b"PK\x03\x04", _ZIP), (b"PK\x05\x06", _ZIP),
                  (b"\x89HDF\r\n\x1a\n", _HDF5),
                  (b"version https://git-lfs.github.com/spec/", _LFS))
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return _PICKLE
    if len(head) >= 10 and head[8:10] in (b'{"', b"{}"):
        size = struct.unpack("<Q", head[:8])[0]
        if 2 <= size < 100_000_000:
            return _SAFETENSORS
    if len(head) >= 8 and struct.unpack("<ii", head[:8]) in ((3, 1), (4, 1)):
        return _T7
    if _T7_ASCII.match(head):
        return _T7
    return _JSON if _JSON_START.match(head.lstrip(b"\xef\xbb\xbf")) else None


def sniff_file(path: str | os.PathLike[str]) -> FileKind | None:
    """``sniff`` of a file's first bytes (None when it cannot be read: its reader says why)."""
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(HEAD_SIZE))
    except OSError:
        return None


def refuse_foreign(name: str, head: bytes, expected: str,
                   allowed: frozenset[str] = frozenset()) -> None:
    """Raise when ``head`` is a recognized kind that is not ``expected``.

    Args:
        name: the file, for the message.
        expected: what the file should be, e.g. ``"a caffemodel"``.
        allowed: kind names that are acceptable here.

    Raises:
        ParseError: "<name>: this is a NumPy array file (.npy), not a caffemodel".
    """
    kind = sniff(head)
    if kind is not None and kind.name not in allowed:
        raise ParseError(f"{name}: this is {kind.description}, not {expected}{kind.hint}")
