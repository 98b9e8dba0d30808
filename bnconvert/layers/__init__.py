"""The typed reading of Caffe layers: one frozen ``Params`` class per Caffe type string, with
Caffe's defaults (``base``); the types are registered in ``learned``, ``normalization``,
``structure`` and ``elementwise``. Adding a layer type is one class with ``@reads("Type")``.
"""

from __future__ import annotations

from .base import (
    LEARNED,
    LayerParamError,
    NoParams,
    Params,
    UnknownParams,
    UnreadableParams,
    bvlc_layer_types,
    float32,
    is_learned,
    known_layer_types,
    read_params,
    reads,
)

__all__ = ["Params", "NoParams", "UnknownParams", "UnreadableParams", "LayerParamError",
           "read_params", "reads", "known_layer_types", "bvlc_layer_types", "is_learned",
           "LEARNED", "float32"]
