"""Which format a converted file is in: the manifest's record when there is one, else the
file's magic bytes, else its extension — and a file of another kind (a text file, a Git LFS
pointer, a NumPy array) named for what it is instead of failing inside a loader."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ParseError
from ..read.sniff import HEAD_SIZE, sniff
from .registry import CONTAINERS, FORMATS

__all__ = ["converted_format"]


def converted_format(path: str | os.PathLike[str], recorded: str | None,
                     extensions: Mapping[str, str]) -> str:
    """The format to read ``path`` as, checked against its first bytes.

    Args:
        recorded: the format the manifest records (None without a manifest).
        extensions: extension -> format, e.g. ``{".pt": "pt", ...}``.

    Raises:
        ParseError: the bytes are not a file of that format (the message says what they are),
            or nothing tells the format.

    Example:
        >>> import torch
        >>> path = getfixture("tmp_path") / "weights.bin"
        >>> torch.save({}, path)
        >>> converted_format(path, None, {".pt": "pt"})  # the first bytes tell
        'pt'
    """
    head = _head(path)
    kind = sniff(head)
    fmt = recorded or (kind.converted_format if kind else None) \
        or extensions.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParseError(f"{path}: cannot tell the format from the manifest, the file's first "
                         f"bytes or the extension; verify reads {', '.join(sorted(extensions))}")
    if kind is None or (kind.converted_format != fmt and kind.name != CONTAINERS.get(fmt)):
        what = kind.description if kind else _unrecognized(head)
        source = " (the format the manifest records)" if recorded else ""
        title = FORMATS[fmt][2] if fmt in FORMATS else fmt
        raise ParseError(f"{path}: this is {what}, not a {title} "
                         f"file{source}{kind.hint if kind else ''}")
    return fmt


def _head(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(HEAD_SIZE)
    except FileNotFoundError:
        raise ParseError(f"{path}: no such file") from None
    except OSError as exc:
        raise ParseError(f"{path}: cannot read ({exc.strerror})") from None


def _unrecognized(head: bytes) -> str:
    if not head:
        return "an empty file"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return "a file of no known kind"
