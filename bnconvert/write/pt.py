"""PyTorch state_dict output (``.pt``/``.pth``), loadable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
import torch

from ..records import FoldedBatchNorm
from .registry import WriteOptions, registers
from .state_dict import state_dict_arrays

__all__ = ["write_pt", "to_state_dict"]


def to_state_dict(records: Sequence[FoldedBatchNorm], prefix: str = "",
                  dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The records as a PyTorch state_dict of tensors (each owns its memory).

    Example:
        >>> sd = to_state_dict(records)  # doctest: +SKIP
        >>> torch.nn.BatchNorm2d(64, eps=records[0].eps).load_state_dict(  # doctest: +SKIP
        ...     {k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("bn_conv1.")})
    """
    return {key: torch.from_numpy(np.array(value, copy=True, order="C"))
            for key, value in state_dict_arrays(records, prefix, dtype).items()}


@registers("pt", (".pt", ".pth"))
def write_pt(records: Sequence[FoldedBatchNorm], stream: BinaryIO, options: WriteOptions) -> None:
    """Serialize the records' state_dict with ``torch.save``."""
    torch.save(to_state_dict(records, options.prefix, options.dtype), stream)
