"""Handlers of the layers that become ``torch.nn`` convolutions and ``Linear``: Convolution,
Deconvolution, the depthwise fork layers, InnerProduct.

Layouts (Caffe's blob shapes are PyTorch's, legacy 4-D dims accepted right-aligned):

- Convolution: weight (C_out, C_in/group, *k), bias (C_out,) -> ``Conv{1,2,3}d``;
- Deconvolution: weight (C_in, C_out/group, *k), bias (C_out,) -> ``ConvTranspose{1,2,3}d``;
- ConvolutionDepthwise / DepthwiseConvolution: weight (k·C, 1, *k) -> ``Conv*d(C, k·C,
  groups=C)``, C the input channels, k the channel multiplier (num_output = k·C);
- InnerProduct: weight (N, K) (``transpose: true`` stores (K, N), transposed here), bias (N,)
  -> ``Linear(K, N)`` over the input flattened from ``axis``.

Input channels and K come from Caffe's shape inference; where it cannot give them, the record
carries a note saying they were not checked, and why (``checks.unchecked``).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from ..errors import BlobError, UnsupportedLayerError
from ..fold.batch_norm import where
from ..layers.learned import ConvolutionParams, InnerProductParams, per_axis
from ..read.net import Layer
from .checks import (
    Expected,
    NetContext,
    checked_arrays,
    input_channels,
    input_rank,
    input_shape,
    unchecked,
)
from .handlers import handles, params_of
from .records import ConvLayer, ConvTransposeLayer, LearnedLayer, LinearLayer

__all__ = ["convert_convolution", "convert_deconvolution", "convert_depthwise",
           "convert_inner_product"]


def _spatial_axes(ctx: NetContext, layer: Layer, params: ConvolutionParams) -> int:
    """How many spatial axes the convolution has: from the input rank, else the kernel fields,
    else the weight blob."""
    rank = input_rank(ctx, layer)
    if rank is not None and rank > params.axis + 1:
        return rank - params.axis - 1
    if len(params.kernel) > 1:
        return len(params.kernel)
    if layer.blobs and not layer.blobs[0].legacy and len(layer.blobs[0].shape) > 2:
        return len(layer.blobs[0].shape) - 2
    return 2


def _geometry(ctx: NetContext, layer: Layer, params: ConvolutionParams) -> dict[str, Any]:
    """kernel_size, stride, padding, dilation per spatial axis (Caffe's defaults)."""
    axes = _spatial_axes(ctx, layer, params)
    if axes > 3:
        raise UnsupportedLayerError(f"{where(ctx.net, layer)}: a {axes}-D convolution has no "
                                    "PyTorch module (Conv1d/2d/3d only)")
    if params.kernel and len(per_axis(params.kernel, axes, 1)) != axes:
        raise BlobError(f"{where(ctx.net, layer)}: kernel {list(params.kernel)} does not fit "
                        f"its {axes} spatial axes")
    return {"kernel_size": per_axis(params.kernel, axes, 0) if params.kernel else (None,) * axes,
            "stride": per_axis(params.stride, axes, 1),
            "padding": per_axis(params.pad, axes, 0),
            "dilation": per_axis(params.dilation, axes, 1)}


def _why(params: ConvolutionParams, kernel: tuple[int | None, ...], channels: int | None) -> str:
    facts = [f"num_output {params.num_output}", f"kernel {'x'.join(map(str, kernel))}",
             f"group {params.group}", f"bias_term {str(params.bias_term).lower()}"]
    if channels is not None:
        facts.append(f"{channels} input channels")
    return ", ".join(facts)


def _conv_params(ctx: NetContext, layer: Layer) -> ConvolutionParams:
    params = cast(ConvolutionParams, params_of(ctx, layer, ConvolutionParams))
    group, out = params.group, params.num_output
    if not out or group < 1 or out % group:
        raise BlobError(f"{where(ctx.net, layer)}: num_output {out} is not a positive multiple "
                        f"of group {group}; Caffe refuses this layer")
    return params


def _record(cls: type[LearnedLayer], layer: Layer, module: str, arguments: dict[str, Any],
            arrays: list[np.ndarray], caffe: dict[str, Any],
            notes: tuple[str, ...] = ()) -> LearnedLayer:
    weights = {"weight": arrays[0]}
    if len(arrays) > 1:
        weights["bias"] = arrays[1]
    shapes = tuple(b.shape for b in layer.blobs or ())
    return cls(layer=layer.name, caffe_type=layer.type, module_class=module,
               arguments=arguments, weights=weights, blob_shapes=shapes, caffe=caffe,
               warnings=notes)


def _channel_notes(ctx: NetContext, layer: Layer, channels: int | None) -> tuple[str, ...]:
    return () if channels is not None else (unchecked(ctx, layer, "input channels"),)


def _conv_like(ctx: NetContext, layer: Layer, transposed: bool) -> LearnedLayer:
    params = _conv_params(ctx, layer)
    geometry = _geometry(ctx, layer, params)
    kernel, group = geometry["kernel_size"], params.group
    out = int(params.num_output or 0)  # checked positive by _conv_params
    channels = input_channels(ctx, layer, params.axis)
    if channels is not None and channels % group:
        raise BlobError(f"{where(ctx.net, layer)}: {channels} input channels are not a "
                        f"multiple of group {group}; Caffe refuses this layer")
    if transposed:
        weight = Expected("weight", (channels, out // group, *kernel))
    else:
        weight = Expected("weight", (out, None if channels is None else channels // group,
                                     *kernel))
    expected = [weight, Expected("bias", (out,))] if params.bias_term else [weight]
    arrays = checked_arrays(ctx.net, layer, expected, _why(params, kernel, channels))
    shape = arrays[0].shape
    in_channels = shape[0] if transposed else shape[1] * group
    geometry["kernel_size"] = tuple(shape[2:])
    name = ("ConvTranspose" if transposed else "Conv") + f"{len(shape) - 2}d"
    arguments = {"in_channels": int(in_channels), "out_channels": out, **geometry,
                 "groups": group, "bias": params.bias_term}
    return _record(ConvTransposeLayer if transposed else ConvLayer, layer, name, arguments,
                   arrays, {"axis": params.axis}, _channel_notes(ctx, layer, channels))


@handles("Convolution", "CuDNNConvolution")
def convert_convolution(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """Convolution: weight (C_out, C_in/group, *k), bias (C_out,) -> ``torch.nn.Conv*d``."""
    return _conv_like(ctx, layer, transposed=False)


@handles("Deconvolution")
def convert_deconvolution(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """Deconvolution: weight (C_in, C_out/group, *k), bias (C_out,) ->
    ``torch.nn.ConvTranspose*d`` (same layout)."""
    return _conv_like(ctx, layer, transposed=True)


@handles("ConvolutionDepthwise", "DepthwiseConvolution")
def convert_depthwise(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """The depthwise fork layers as a grouped convolution with one group per input channel C:
    weight (num_output, 1, *k), bias (num_output,), num_output = k·C (k the channel
    multiplier) -> ``torch.nn.Conv*d(C, num_output, groups=C)``.

    Where shape inference cannot give C, it is taken as num_output (k = 1, the one-filter-per-
    channel form of MobileNet) and the record says C was not checked."""
    params = _conv_params(ctx, layer)
    geometry = _geometry(ctx, layer, params)
    out, kernel = int(params.num_output or 0), geometry["kernel_size"]
    channels = input_channels(ctx, layer, params.axis)
    if channels is not None and out % channels:
        raise BlobError(f"{where(ctx.net, layer)}: num_output {out} is not a multiple of its "
                        f"{channels} input channels; a depthwise convolution has num_output = "
                        "k x input channels (k filters per channel)")
    weight = Expected("weight", (out, 1, *kernel))
    expected = [weight, Expected("bias", (out,))] if params.bias_term else [weight]
    why = _why(params, kernel, channels) + ", depthwise: group = input channels"
    arrays = checked_arrays(ctx.net, layer, expected, why)
    geometry["kernel_size"] = tuple(arrays[0].shape[2:])
    groups = out if channels is None else channels
    arguments = {"in_channels": groups, "out_channels": out, **geometry, "groups": groups,
                 "bias": params.bias_term}
    notes = () if channels is not None else (
        unchecked(ctx, layer, "input channels") + f"; converted as groups = num_output {out}",)
    return _record(ConvLayer, layer, f"Conv{arrays[0].ndim - 2}d", arguments, arrays,
                   {"axis": params.axis, "caffe_group": params.group}, notes)


@handles("InnerProduct")
def convert_inner_product(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """InnerProduct: weight (N, K) (stored (K, N) with ``transpose: true``), bias (N,) ->
    ``torch.nn.Linear(K, N)``; legacy (1, 1, N, K) blobs accepted."""
    params = cast(InnerProductParams, params_of(ctx, layer, InnerProductParams))
    n = params.num_output
    k = _inner_product_k(input_shape(ctx, layer), params.axis)
    weight = Expected("weight", (k, n) if params.transpose else (n, k))
    expected = [weight, Expected("bias", (n,))] if params.bias_term else [weight]
    why = f"num_output {n}, transpose {str(params.transpose).lower()}, bias_term " \
          f"{str(params.bias_term).lower()}" + (f", {k} inputs" if k is not None else "")
    arrays = checked_arrays(ctx.net, layer, expected, why)
    if params.transpose:
        arrays[0] = _read_only(np.ascontiguousarray(arrays[0].T))
    arguments = {"in_features": int(arrays[0].shape[1]), "out_features": n,
                 "bias": params.bias_term}
    notes = () if k is not None else (unchecked(ctx, layer, "input size K"),)
    return _record(LinearLayer, layer, "Linear", arguments, arrays,
                   {"axis": params.axis, "transpose": params.transpose}, notes)


def _inner_product_k(shape: tuple[int, ...] | None, axis: int) -> int | None:
    """K: the product of the input's dims from ``axis`` on (Caffe flattens them), or None."""
    if shape is None or not -len(shape) <= axis < len(shape):
        return None
    return math.prod(shape[axis % len(shape):])


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
