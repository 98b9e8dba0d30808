"""Writers registered by format name and file extension.

A writer is ``fn(records, stream, options) -> None``: it serializes the records to a binary
stream. It never opens files itself (``atomic.write_atomically`` does), so a failing writer
leaves nothing at the output path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError
from ..records import FoldedBatchNorm

__all__ = ["WriteOptions", "Writer", "registers", "writer_for", "supported_formats"]


@dataclass(frozen=True)
class WriteOptions:
    """Format-independent output options.

    Attributes:
        dtype: ``"float32"`` or ``"float64"``.
        prefix: prepended to every key (``prefix + key + ".weight"``).
        t7_layout: ``"table"`` (a table keyed by BN key) or ``"sequential"`` (Torch7 only).
    """

    dtype: str = "float32"
    prefix: str = ""
    t7_layout: str = "table"


Writer = Callable[[Sequence[FoldedBatchNorm], BinaryIO, WriteOptions], None]

_WRITERS: dict[str, Writer] = {}
_EXTENSIONS: dict[str, str] = {}
# Format name -> module that registers it; imported lazily so that e.g. `inspect` never
# imports torch.
_MODULES = {"pt": "bnconvert.write.pt", "safetensors": "bnconvert.write.safetensors_writer",
            "t7": "bnconvert.write.t7"}
_MODULE_EXTENSIONS = {".pt": "pt", ".pth": "pt", ".safetensors": "safetensors", ".t7": "t7"}


def registers(fmt: str, extensions: tuple[str, ...]) -> Callable[[Writer], Writer]:
    """Register ``fn`` as the writer of ``fmt`` for the given file extensions."""

    def decorate(fn: Writer) -> Writer:
        if fmt in _WRITERS:
            raise RuntimeError(f"format {fmt!r} is registered twice")
        _WRITERS[fmt] = fn
        for ext in extensions:
            _EXTENSIONS[ext] = fmt
        return fn

    return decorate


def supported_formats() -> list[str]:
    """The format names ``--format`` accepts."""
    return sorted(_MODULES)


def writer_for(path: str | Path, fmt: str | None = None) -> tuple[str, Writer]:
    """The writer for an explicit format, else for the output file's extension.

    Raises:
        OutputError: the format or extension is unknown (the message lists the supported ones).
    """
    if fmt is None:
        ext = Path(path).suffix.lower()
        fmt = _MODULE_EXTENSIONS.get(ext)
        if fmt is None:
            raise OutputError(
                f"{path}: cannot tell the output format from the extension {ext or '(none)'!r}; "
                f"use one of {', '.join(sorted(_MODULE_EXTENSIONS))} or --format "
                f"{'|'.join(supported_formats())}"
            )
    if fmt not in _MODULES:
        raise OutputError(
            f"unknown output format {fmt!r}; supported: {', '.join(supported_formats())}"
        )
    if fmt not in _WRITERS:
        importlib.import_module(_MODULES[fmt])
    return fmt, _WRITERS[fmt]
