"""Output formats: one table of format name -> file extensions and the module that implements
it; each module registers its writer and its loader (the reading back ``verify`` uses).

A writer is ``fn(records, stream, options) -> None``: it serializes converted layers to a binary
stream. It never opens files itself (``atomic.write_atomically`` does), so a failing writer
leaves nothing at the output path. A loader is ``fn(path) -> LoadedFile``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import OutputError
from ..naming import CaffeNames, NamingPolicy
from ..records import ConvertedLayer

__all__ = ["WriteOptions", "Writer", "Loader", "LoadedFile", "FORMATS", "EXTENSIONS", "registers",
           "loads", "add_format",
           "writer_for", "loader_for", "format_for_path", "supported_formats"]


@dataclass(frozen=True)
class WriteOptions:
    """Format-independent output options.

    Attributes:
        dtype: ``"float32"`` or ``"float64"``.
        prefix: prepended to every key (``prefix + key + ".weight"``).
        t7_layout: ``"table"`` (a table keyed by key) or ``"sequential"`` (Torch7 only).
        naming: the policy that gives each converted layer its key (Caffe names by default).
    """

    dtype: str = "float32"
    prefix: str = ""
    t7_layout: str = "table"
    naming: NamingPolicy = field(default_factory=CaffeNames)

    def key(self, record: ConvertedLayer) -> str:
        """The record's full key: ``prefix`` + the naming policy's key."""
        return self.prefix + self.naming.key(record)


@dataclass(frozen=True, eq=False)
class LoadedFile:
    """A converted file read back: its tensors grouped by key (state_dict formats: the part
    before the last ``.``; Torch7: the module path) with the raw fields of each."""

    path: str
    format: str
    entries: dict[str, dict[str, Any]]


Writer = Callable[[Sequence[ConvertedLayer], BinaryIO, WriteOptions], None]
Loader = Callable[[str], LoadedFile]

#: format name -> (file extensions, the module that registers its writer and loader, what
#: messages call it)
FORMATS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "pt": ((".pt", ".pth"), "bnconvert.write.pt", "PyTorch .pt"),
    "safetensors": ((".safetensors",), "bnconvert.write.safetensors_writer", ".safetensors"),
    "t7": ((".t7",), "bnconvert.write.t7", "Torch7 .t7"),
}
#: file extension -> format name (kept equal to ``FORMATS`` by ``add_format``)
EXTENSIONS = {ext: fmt for fmt, (exts, _, _) in FORMATS.items() for ext in exts}


#: format added by ``add_format`` -> the kind of file ``read.sniff`` sees in it (``zip``...)
CONTAINERS: dict[str, str] = {}


def add_format(fmt: str, extensions: tuple[str, ...], module: str, title: str,
               container: str | None = None) -> None:
    """Add a format to ``FORMATS`` (a format defined outside bnconvert: call it where its module
    registers its writer and loader, and import that module before converting).

    Args:
        container: what ``read.sniff`` calls its files (e.g. ``"zip"`` for a ``.npz``), so that
            verify accepts their first bytes.

    Raises:
        RuntimeError: the name or an extension is taken.
    """
    taken = [e for e in extensions if e in EXTENSIONS]
    if fmt in FORMATS or taken:
        raise RuntimeError(f"format {fmt!r} or extension {taken} already registered")
    FORMATS[fmt] = (extensions, module, title)
    EXTENSIONS.update((ext, fmt) for ext in extensions)
    if container is not None:
        CONTAINERS[fmt] = container
_WRITERS: dict[str, Writer] = {}
_LOADERS: dict[str, Loader] = {}


def registers(fmt: str) -> Callable[[Writer], Writer]:
    """Register ``fn`` as the writer of ``fmt`` (a format of ``FORMATS``)."""

    def decorate(fn: Writer) -> Writer:
        if fmt in _WRITERS or fmt not in FORMATS:
            raise RuntimeError(f"writer of format {fmt!r} registered twice or not in FORMATS")
        _WRITERS[fmt] = fn
        return fn

    return decorate


def loads(fmt: str) -> Callable[[Loader], Loader]:
    """Register ``fn`` as the loader of ``fmt`` (a format of ``FORMATS``)."""

    def decorate(fn: Loader) -> Loader:
        if fmt in _LOADERS or fmt not in FORMATS:
            raise RuntimeError(f"loader of format {fmt!r} registered twice or not in FORMATS")
        _LOADERS[fmt] = fn
        return fn

    return decorate


def supported_formats() -> list[str]:
    """The format names ``--format`` accepts."""
    return sorted(FORMATS)


def format_for_path(path: str | os.PathLike[str]) -> str | None:
    """The format an output file's extension names, or None."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def _implementation(fmt: str) -> None:
    if fmt not in FORMATS:
        raise OutputError(
            f"unknown output format {fmt!r}; supported: {', '.join(supported_formats())}")
    importlib.import_module(FORMATS[fmt][1])


def writer_for(path: str | Path, fmt: str | None = None) -> tuple[str, Writer]:
    """The writer for an explicit format, else for the output file's extension.

    Raises:
        OutputError: the format or extension is unknown (the message lists the supported ones).
    """
    if fmt is None:
        fmt = format_for_path(path)
        if fmt is None:
            extensions = sorted(EXTENSIONS)
            ext = Path(path).suffix.lower()
            raise OutputError(
                f"{path}: cannot tell the output format from the extension {ext or '(none)'!r}; "
                f"use one of {', '.join(extensions)} or --format {'|'.join(supported_formats())}")
    _implementation(fmt)
    return fmt, _WRITERS[fmt]


def loader_for(fmt: str) -> Loader:
    """The loader of a format (imports its module)."""
    _implementation(fmt)
    return _LOADERS[fmt]
