"""Caffe layer semantics as plain PyTorch modules.

Every module here imports only torch and the standard library (no numpy, no bnconvert), so
that the source of the classes a net needs can be copied into a generated ``model.py``; each
file is self-contained. Constructors take Caffe's parameters as plain ints, floats and tuples
(already defaulted by the reader); forwards have no data-dependent Python control flow, so
they work under ``torch.fx.symbolic_trace``, ``torch.jit.trace`` and ``torch.onnx.export``,
on any device and dtype.

Where PyTorch's own module computes exactly what Caffe computes, the factories return it
(``caffe_pooling`` -> ``nn.MaxPool2d``/``nn.AvgPool2d`` when Caffe's rounding agrees,
``caffe_lrn`` -> ``nn.LocalResponseNorm`` across channels), and other exact equivalents are
listed in each file's docstring (ReLU, ReLU6, ELU, Sigmoid, TanH, BNLL = Softplus, Clip =
Hardtanh, Flatten, Softmax, Dropout = Identity).
"""

from __future__ import annotations

from .activations import (
    AbsVal,
    Bias,
    BiasBy,
    Exp,
    Log,
    Power,
    PReLU,
    Scale,
    ScaleBy,
    Swish,
    Threshold,
)
from .caffe_batch_norm import CaffeBatchNorm1d, CaffeBatchNorm2d, CaffeBatchNorm3d
from .forks import Axpy, Interp, ShuffleChannel, Upsample
from .normalization import MVN, LRNWithinChannel, caffe_lrn
from .pooling import SPP, CaffePool2d, GlobalPool2d, caffe_pool_size, caffe_pooling
from .structure import (
    ArgMax,
    Concat,
    Crop,
    EltwiseMax,
    EltwiseProd,
    EltwiseSum,
    Embed,
    Reduction,
    Reshape,
    Slice,
    Tile,
)

__all__ = [
    "AbsVal", "ArgMax", "Axpy", "Bias", "BiasBy", "CaffeBatchNorm1d", "CaffeBatchNorm2d",
    "CaffeBatchNorm3d", "CaffePool2d", "Concat", "Crop",
    "EltwiseMax", "EltwiseProd", "EltwiseSum", "Embed", "Exp", "GlobalPool2d", "Interp",
    "LRNWithinChannel", "Log", "MVN", "PReLU", "Power", "Reduction", "Reshape", "SPP", "Scale",
    "ScaleBy", "ShuffleChannel", "Slice", "Swish", "Threshold", "Tile", "Upsample",
    "caffe_lrn", "caffe_pool_size", "caffe_pooling",
]
