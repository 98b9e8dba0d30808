"""``.safetensors`` files (optional extra ``bnconvert[safetensors]``), same keys as ``.pt``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from ..errors import OutputError, ParseError
from ..records import ConvertedLayer
from .registry import LoadedFile, WriteOptions, loads, registers
from .state_dict import group_by_key, state_dict_arrays

__all__ = ["write_safetensors", "load_safetensors"]

_MISSING = "the optional 'safetensors' package: pip install 'bnconvert[safetensors]'"


@registers("safetensors")
def write_safetensors(records: Sequence[ConvertedLayer], stream: BinaryIO,
                      options: WriteOptions) -> None:
    """Serialize the state_dict with the ``safetensors`` library (numpy flavour, no torch).

    Raises:
        OutputError: the optional ``safetensors`` package is not installed.
    """
    try:
        from safetensors.numpy import save
    except ImportError:
        raise OutputError(f"writing .safetensors needs {_MISSING}") from None
    stream.write(save(state_dict_arrays(records, options),
                      metadata={"format": "pt", "producer": "bnconvert"}))


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
