"""PyTorch state_dict files (``.pt``/``.pth``): written in ``torch.save``'s zip format without
importing torch (``pt_zip``), read back with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..errors import ParseError
from ..records import ConvertedLayer
from .pt_zip import write_pt_stream
from .registry import LoadedFile, WriteOptions, loads, registers
from .state_dict import group_by_key, state_dict_arrays

if TYPE_CHECKING:
    import torch

__all__ = ["write_pt", "load_pt", "to_state_dict", "read_state_dict"]


def to_state_dict(records: Sequence[ConvertedLayer],
                  options: WriteOptions = WriteOptions()) -> dict[str, torch.Tensor]:
    """The records as a PyTorch state_dict of tensors (each owns its memory).

    Example:
        >>> sd = to_state_dict(EXAMPLE_RECORDS)
        >>> list(sd)[:3], tuple(sd["bn2a_branch1.running_var"].shape)
        (['bn2a_branch1.weight', 'bn2a_branch1.bias', 'bn2a_branch1.running_mean'], (16,))
    """
    import torch

    return {key: torch.from_numpy(np.array(value, copy=True, order="C"))
            for key, value in state_dict_arrays(records, options).items()}


@registers("pt")
def write_pt(records: Sequence[ConvertedLayer], stream: BinaryIO, options: WriteOptions) -> None:
    """Stream the records' state_dict as ``torch.save`` would write it, from the arrays
    (views of the caffemodel's memory map where possible, released as they are written: see
    ``pt_zip.write_pt_stream``); needs numpy only, no torch."""
    write_pt_stream(state_dict_arrays(records, options), stream)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A ``.pt`` file as a flat state_dict.

    Raises:
        ParseError: ``torch.load(weights_only=True)`` fails, or the file is not a dict of
            name -> tensor.
    """
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ParseError(f"{path}: cannot be read by torch.load(weights_only=True): "
                         f"{' '.join(str(exc).split())[:300]}") from exc
    if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise ParseError(f"{path}: expected a state_dict (a dict of name -> tensor), found "
                         f"{type(loaded).__name__}")
    return loaded


@loads("pt")
def load_pt(path: str) -> LoadedFile:
    """A ``.pt`` file's tensors grouped by key."""
    return LoadedFile(path, "pt", group_by_key(read_state_dict(path)))
