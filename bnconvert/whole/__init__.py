"""Whole-model conversion (issue #11): every layer with learned blobs becomes a record of the
PyTorch module it is (``records``), by one handler per Caffe type (``handlers``), with its blobs
checked against the prototxt (``checks``); BatchNorm chains stay BatchNorms or are fused into
the layer before them (``fuse``, arithmetic in ``fuse_numeric``)."""

from __future__ import annotations

from .convert import FOLD_MODES, convert_whole, unknown_learned_layers
from .records import (
    LEARNED_KINDS,
    BiasLayer,
    ConvLayer,
    ConvTransposeLayer,
    EmbedLayer,
    FusedChain,
    LearnedLayer,
    LinearLayer,
    PReLULayer,
    ScaleLayer,
    SkippedLayer,
)

__all__ = ["convert_whole", "unknown_learned_layers", "FOLD_MODES", "LearnedLayer", "ConvLayer",
           "ConvTransposeLayer", "LinearLayer", "EmbedLayer", "PReLULayer", "ScaleLayer",
           "BiasLayer", "SkippedLayer", "FusedChain", "LEARNED_KINDS"]
