"""``.safetensors`` files (optional extra ``bnconvert[safetensors]``), same keys as ``.pt``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from ..errors import ParseError
from ..records import ConvertedLayer
from .registry import LoadedFile, WriteOptions, loads, registers
from .safetensors_stream import write_safetensors_stream
from .state_dict import group_by_key, state_dict_arrays

__all__ = ["write_safetensors", "load_safetensors"]

_MISSING = "the optional 'safetensors' package: pip install 'bnconvert[safetensors]'"


@registers("safetensors")
def write_safetensors(records: Sequence[ConvertedLayer], stream: BinaryIO,
                      options: WriteOptions) -> None:
    """Stream the state_dict as .safetensors from the arrays (memory-map views of the
    caffemodel where possible: ``safetensors_stream``); needs numpy only, no torch."""
    write_safetensors_stream(state_dict_arrays(records, options), stream,
                             {"format": "pt", "producer": "bnconvert"})


@loads("safetensors")
def load_safetensors(path: str) -> LoadedFile:
    """A ``.safetensors`` file's tensors (as torch tensors) grouped by key.

    Raises:
        ParseError: not readable, or the optional package is missing.
    """
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ParseError(f"reading .safetensors needs {_MISSING}") from None
    try:
        flat = dict(load_file(path))
    except (SafetensorError, OSError) as exc:
        raise ParseError(f"{path}: not a readable .safetensors file: {exc}") from exc
    return LoadedFile(path, "safetensors", group_by_key(flat))
