"""One shape rule per Caffe layer type, as Caffe's ``LayerSetUp``/``Reshape`` compute it.

A rule takes the typed layer and its bottoms' shapes and returns its tops' shapes (one shape
for a layer whose tops all have it). ``Refused`` carries Caffe's reason for a definition it
will not build. Formulas: ``/work/shared/CAFFE_SEMANTICS.md`` ("Shapes and rounding").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..layers.learned import ConvolutionParams, EmbedParams, InnerProductParams, per_axis
from ..layers.normalization import LRNParams
from ..layers.structure import FlattenParams, PoolingParams, ReshapeParams, SPPParams
from ..read.net import Layer
from ..registry import Registry

__all__ = ["RULES", "Refused", "Shape", "pooled_size", "canonical_axis", "fork_int"]

Shape = tuple[int, ...]
_Rule = Callable[[Layer, list[Shape]], list[Shape]]
RULES: Registry[_Rule] = Registry("shape rule")
_rule = RULES.register

SAME_SHAPE = ("ReLU", "ReLU6", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power",
              "Exp", "Log", "Threshold", "Clip", "Swish", "Dropout", "BatchNorm", "BN",
              "Scale", "Bias", "Softmax", "MVN", "ShuffleChannel", "Eltwise", "Split")


class Refused(Exception):
    """Caffe refuses the layer; the message is Caffe's reason."""


def canonical_axis(axis: int, rank: int) -> int:
    """Caffe's ``CanonicalAxisIndex``: a negative axis counts from the end.

    Raises:
        Refused: the axis is out of range.
    """
    if not -rank <= axis < rank:
        raise Refused(f"axis {axis} out of range for a {rank}-axis blob")
    return axis % rank


def fork_int(layer: Layer, block: str, name: str, default: int | None = None) -> int | None:
    """An integer fork field (``extras[block][name]``) as written, else ``default``."""
    section: Any = layer.extras.get(block, {})
    if not isinstance(section, Mapping) or name not in section:
        return default
    return int(str(section[name]))


@_rule(*SAME_SHAPE)
def _same(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]]


@_rule("Silence")
def _none(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return []


@_rule("Axpy")
def _axpy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[1]]


def _conv_geometry(params: ConvolutionParams, spatial: int) -> tuple[Shape, ...]:
    if not params.kernel:
        raise Refused("Filter size (kernel_size or kernel_h and kernel_w) is required")
    if params.num_output is None:
        raise Refused("num_output is required")
    kernel = per_axis(params.kernel, spatial, 1)
    stride = per_axis(params.stride, spatial, 1)
    pad = per_axis(params.pad, spatial, 0)
    dilation = per_axis(params.dilation, spatial, 1)
    if not len(kernel) == len(stride) == len(pad) == len(dilation) == spatial:
        raise Refused(f"kernel/stride/pad/dilation must give 1 or {spatial} values")
    return kernel, stride, pad, dilation


@_rule("Convolution", "Deconvolution", "CuDNNConvolution", "ConvolutionDepthwise",
       "DepthwiseConvolution")
def _convolution(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, ConvolutionParams)
    shape = bottoms[0]
    axis = canonical_axis(params.axis, len(shape))
    kernel, stride, pad, dilation = _conv_geometry(params, len(shape) - axis - 1)
    group = _group(layer, params, shape[axis])
    if shape[axis] % group or (params.num_output or 0) % group:
        raise Refused(f"channels {shape[axis]} and num_output {params.num_output} must be "
                      f"multiples of group {group}")
    out = []
    for size, k, s, p, d in zip(shape[axis + 1:], kernel, stride, pad, dilation, strict=True):
        extent = d * (k - 1) + 1
        if layer.type == "Deconvolution":
            out.append(s * (size - 1) + extent - 2 * p)
        else:
            out.append((size + 2 * p - extent) // s + 1)
    return [(*shape[:axis], params.num_output or 0, *out)]


def _group(layer: Layer, params: ConvolutionParams, channels: int) -> int:
    """Caffe's group; the depthwise forks use one group per channel."""
    if layer.type in ("ConvolutionDepthwise", "DepthwiseConvolution"):
        return channels
    return params.group


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's pooled length: ceil (or floor) rounding, then the clip rule when ``pad > 0``.

    Example:
        >>> pooled_size(11, 3, 3, 1, True), pooled_size(6, 2, 3, 0, True)
        (4, 3)
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def check_pooling(params: PoolingParams) -> None:
    """Caffe's ``PoolingLayer::LayerSetUp`` checks and the TEST-phase STOCHASTIC refusal.

    Raises:
        Refused: with Caffe's reason.
    """
    if params.pool == "STOCHASTIC":
        raise Refused("STOCHASTIC pooling has no CPU forward in TEST (Caffe: Not Implemented)")
    if params.global_pooling:
        if params.kernel is not None:
            raise Refused("With Global_pooling: true Filter size cannot specified")
        if params.pad != (0, 0) or params.stride != (1, 1):
            raise Refused("With Global_pooling: true; only pad = 0 and stride = 1")
        return
    if params.kernel is None:
        raise Refused("Filter size (kernel_size or kernel_h and kernel_w) is required")
    if min(params.kernel) < 1 or min(params.stride) < 1:
        raise Refused("Filter and stride dimensions must be greater than zero")
    if params.pad[0] >= params.kernel[0] or params.pad[1] >= params.kernel[1]:
        raise Refused(f"pad {list(params.pad)} must be less than kernel {list(params.kernel)}")


@_rule("Pooling")
def _pooling(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, PoolingParams)
    check_pooling(params)
    shape = bottoms[0]
    if len(shape) != 4:
        raise Refused(f"Input must have 4 axes, corresponding to (num, channels, height, "
                      f"width); got {len(shape)}")
    if params.global_pooling:
        return [(*shape[:2], 1, 1)]
    assert params.kernel is not None
    ceil = params.round_mode == "CEIL"
    out = tuple(pooled_size(shape[2 + i], params.kernel[i], params.stride[i], params.pad[i], ceil)
                for i in (0, 1))
    return [(*shape[:2], *out)]


@_rule("SPP")
def _spp(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, SPPParams)
    n, c = bottoms[0][:2]
    if params.pyramid_height == 1:
        return [(n, c, 1, 1)]
    return [(n, c * sum(4 ** level for level in range(params.pyramid_height)))]


@_rule("LRN")
def _lrn(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, LRNParams)
    if params.local_size % 2 == 0:
        raise Refused(f"LRN only supports odd values for local_size (got {params.local_size})")
    if len(bottoms[0]) != 4:
        raise Refused("Input must have 4 axes, corresponding to (num, channels, height, width)")
    return [bottoms[0]]


@_rule("InnerProduct")
def _inner_product(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, InnerProductParams)
    axis = canonical_axis(params.axis, len(bottoms[0]))
    return [(*bottoms[0][:axis], params.num_output)]


@_rule("Embed")
def _embed(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, EmbedParams)
    return [(*bottoms[0], params.num_output)]


@_rule("Flatten")
def _flatten(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, FlattenParams)
    shape = bottoms[0]
    start = canonical_axis(params.axis, len(shape))
    end = canonical_axis(params.end_axis, len(shape))
    return [(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])]


@_rule("Reshape")
def _reshape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, ReshapeParams)
    shape = bottoms[0]
    rank = len(shape)
    start = rank + params.axis + 1 if params.axis < 0 else params.axis
    if not 0 <= start <= rank:
        raise Refused(f"axis {params.axis} out of range for a {rank}-axis blob")
    end = rank if params.num_axes == -1 else start + params.num_axes
    if end > rank:
        raise Refused(f"axis + num_axes {end} exceeds the bottom's {rank} axes")
    dims = [shape[start + i] if d == 0 else d for i, d in enumerate(params.shape)]
    if dims.count(-1) > 1:
        raise Refused("new shape contains multiple -1 dims")
    out = [*shape[:start], *dims, *shape[end:]]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if not known or math.prod(shape) % known:
            raise Refused(f"bottom count ({math.prod(shape)}) must be divisible by the product "
                          f"of the specified dimensions ({known})")
        out[out.index(-1)] = math.prod(shape) // known
    if math.prod(out) != math.prod(shape):
        raise Refused(f"output count {math.prod(out)} does not match the input's "
                      f"{math.prod(shape)} (shape {list(shape)} -> {out})")
    return [tuple(out)]
