"""The state_dict layout shared by the ``.pt`` and ``.safetensors`` writers (no torch import),
and the grouping of a flat state_dict by key that their loaders share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OutputError
from ..records import ConvertedLayer
from .registry import WriteOptions

__all__ = ["state_dict_arrays", "group_by_key"]


def state_dict_arrays(records: Sequence[ConvertedLayer],
                      options: WriteOptions = WriteOptions()) -> dict[str, np.ndarray]:
    """The state_dict as numpy arrays: ``<key>.<tensor>`` for every record's tensors, floats
    in ``options.dtype`` (integer buffers such as ``num_batches_tracked`` keep their type).
    Arrays already of that dtype are the records' own (read-only, possibly views of the
    caffemodel's memory map), not copies.

    Raises:
        OutputError: two records get the same key.
    """
    out: dict[str, np.ndarray] = {}
    owner: dict[str, str] = {}
    for record in records:
        key = options.key(record)
        if key in owner:
            raise OutputError(f"layers {owner[key]!r} and {record.name!r} both get the key "
                              f"{key!r}")
        owner[key] = record.name
        for name, value in record.tensors().items():
            dtype = options.dtype if value.dtype.kind == "f" else value.dtype
            out[f"{key}.{name}"] = np.asarray(value, dtype=dtype)
    return out


def group_by_key(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"a.b.weight": t}`` -> ``{"a.b": {"weight": t}}`` (split at the last ``.``)."""
    grouped: dict[str, dict[str, Any]] = {}
    for name, tensor in flat.items():
        prefix, _, field = name.rpartition(".")
        grouped.setdefault(prefix, {})[field] = tensor
    return grouped
