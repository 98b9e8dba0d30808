"""``.safetensors`` output (optional extra ``bnconvert[safetensors]``), same keys as ``.pt``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from ..errors import OutputError
from ..records import FoldedBatchNorm
from .registry import WriteOptions, registers
from .state_dict import state_dict_arrays

__all__ = ["write_safetensors"]


@registers("safetensors", (".safetensors",))
def write_safetensors(records: Sequence[FoldedBatchNorm], stream: BinaryIO,
                      options: WriteOptions) -> None:
    """Serialize the state_dict with the ``safetensors`` library (numpy flavour, no torch).

    Raises:
        OutputError: the optional ``safetensors`` package is not installed.
    """
    try:
        from safetensors.numpy import save
    except ImportError:
        raise OutputError("writing .safetensors needs the optional 'safetensors' package: "
                          "pip install 'bnconvert[safetensors]'") from None
    stream.write(save(state_dict_arrays(records, options.prefix, options.dtype),
                      metadata={"format": "pt", "producer": "bnconvert"}))
