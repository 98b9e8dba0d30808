"""BatchNorm settings read from a layer's parameters (no numpy: ``inspect`` uses these)."""

from __future__ import annotations

import struct

from ..read.net import Layer

__all__ = ["as_float32", "batch_norm_eps", "uses_global_stats"]

_FLOAT32 = struct.Struct("<f")


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32, widened back (how Caffe stores eps).

    Example:
        >>> as_float32(1e-5)
        9.999999747378752e-06
    """
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])


def batch_norm_eps(layer: Layer) -> float:
    """``batch_norm_param.eps`` as Caffe's float32 (default 1e-5)."""
    param = layer.param_or_default("batch_norm_param")
    return as_float32(param.eps if param is not None else 1e-5)  # type: ignore[attr-defined]


def uses_global_stats(layer: Layer) -> bool:
    """In TEST Caffe uses the stored statistics unless ``use_global_stats: false`` is set."""
    param = layer.param("batch_norm_param")
    if param is not None and param.HasField("use_global_stats"):
        return bool(param.use_global_stats)  # type: ignore[attr-defined]
    return True
