"""Torch7's serialization format (``torch.save``/``torch.load``): a pure numpy codec.

Reads binary and ascii files, writes binary ones the way ``torch.save`` does. No torch import.
"""

from __future__ import annotations

from .objects import STORAGE_DTYPES, T7Function, T7Object, T7Storage, T7Table, T7Tensor
from .reader import load_t7, loads_t7
from .sources import T7FormatError
from .writer import dump_t7, dumps_t7

__all__ = [
    "STORAGE_DTYPES",
    "T7FormatError",
    "T7Function",
    "T7Object",
    "T7Storage",
    "T7Table",
    "T7Tensor",
    "dump_t7",
    "dumps_t7",
    "load_t7",
    "loads_t7",
]
