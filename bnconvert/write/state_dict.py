"""The state_dict layout shared by the ``.pt`` and ``.safetensors`` writers (no torch import)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..records import FoldedBatchNorm

__all__ = ["state_dict_arrays"]


def state_dict_arrays(records: Sequence[FoldedBatchNorm], prefix: str = "",
                      dtype: str = "float32") -> dict[str, np.ndarray]:
    """The state_dict as numpy arrays, keys in ``nn.BatchNorm*d`` order.

    Per record: ``weight``, ``bias`` (affine only), ``running_mean``, ``running_var``,
    ``num_batches_tracked`` (int64 scalar 0: Caffe keeps no such count).
    """
    out: dict[str, np.ndarray] = {}
    for record in records:
        base = f"{prefix}{record.key}."
        if record.weight is not None and record.bias is not None:
            out[base + "weight"] = np.array(record.weight, dtype=dtype)
            out[base + "bias"] = np.array(record.bias, dtype=dtype)
        out[base + "running_mean"] = np.array(record.running_mean, dtype=dtype)
        out[base + "running_var"] = np.array(record.running_var, dtype=dtype)
        out[base + "num_batches_tracked"] = np.array(0, dtype=np.int64)
    return out
