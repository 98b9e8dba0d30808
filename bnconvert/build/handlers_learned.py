"""Handlers of the layers with learned blobs: convolutions, InnerProduct, Embed, PReLU,
standalone Scale and Bias, and BatchNorm chains (one torch BatchNorm per chain).

Modules and parameter names follow the whole-model weights contract: ``nn.Conv*d`` /
``nn.ConvTranspose*d`` / ``nn.Linear`` for Convolution / Deconvolution / InnerProduct (the
depthwise forks are grouped convolutions), ``bnconvert.modules`` Embed/PReLU/Scale/Bias with
Caffe-shaped blobs, and ``nn.BatchNorm1d/2d/3d`` under the BatchNorm layer's key for a chain.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import modules
from ..errors import UnsupportedLayerError
from ..flavours import flavour_by_id
from ..flavours.segnet import MODULE_EPS
from ..graph.shape_rules import canonical_axis
from ..layers.learned import (
    BiasParams,
    ConvolutionParams,
    EmbedParams,
    InnerProductParams,
    PReLUParams,
    ScaleParams,
    per_axis,
)
from ..layers.normalization import BatchNormParams
from ..read.net import Layer
from ..records import FoldedBatchNorm, batch_norm_class
from .context import BuildContext, Made, Node
from .handlers import handles

__all__: list[str] = []

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_DEPTHWISE = ("ConvolutionDepthwise", "DepthwiseConvolution")


@handles("Convolution", "CuDNNConvolution", "Deconvolution", *_DEPTHWISE)
def build_convolution(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``nn.Conv*d`` / ``nn.ConvTranspose*d`` with Caffe's kernel, stride, pad, dilation, group."""
    params = layer.params
    assert isinstance(params, ConvolutionParams)
    shape = ctx.bottom_shapes(layer)[0]
    spatial = len(shape) - 2
    if canonical_axis(params.axis, len(shape)) != 1 or spatial not in _CONV:
        raise UnsupportedLayerError(f"channel axis {params.axis} of a {len(shape)}-axis input "
                                    "(only axis 1 with 1 to 3 spatial axes is built)")
    channels = shape[1]
    groups = channels if layer.type in _DEPTHWISE else params.group
    geometry = {"kernel_size": per_axis(params.kernel, spatial, 1),
                "stride": per_axis(params.stride, spatial, 1),
                "padding": per_axis(params.pad, spatial, 0),
                "dilation": per_axis(params.dilation, spatial, 1),
                "groups": groups, "bias": params.bias_term or layer.index in ctx.fused}
    table = _DECONV if layer.type == "Deconvolution" else _CONV
    made = Made(table[spatial], (channels, params.num_output), geometry)
    return [ctx.call(layer, made, inputs)]


@handles("InnerProduct")
def build_inner_product(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``nn.Linear`` over the axes from ``axis`` on (flattened first when there are several)."""
    params = layer.params
    assert isinstance(params, InnerProductParams)
    shape = ctx.bottom_shapes(layer)[0]
    axis = canonical_axis(params.axis, len(shape))
    x = inputs[0]
    if len(shape) > axis + 1:
        x = ctx.method(x, "flatten", axis)
    made = Made(nn.Linear, (math.prod(shape[axis:]), params.num_output),
                {"bias": params.bias_term or layer.index in ctx.fused})
    return [ctx.call(layer, made, [x])]


@handles("Embed")
def build_embed(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Embed``: weight (input_dim, num_output), one row per (truncated) index."""
    params = layer.params
    assert isinstance(params, EmbedParams)
    made = Made(modules.Embed, (params.input_dim, params.num_output, params.bias_term))
    return [ctx.call(layer, made, inputs)]


@handles("PReLU")
def build_prelu(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.PReLU``: slopes (C,), or a 0-d slope with ``channel_shared``."""
    params = layer.params
    assert isinstance(params, PReLUParams)
    channels = ctx.bottom_shapes(layer)[0][1]
    made = Made(modules.PReLU, (channels,), {"channel_shared": params.channel_shared})
    return [ctx.call(layer, made, inputs)]


def _blob_shape(shape: tuple[int, ...], axis: int, num_axes: int) -> tuple[int, ...]:
    """The learned blob's shape: the bottom's dims from ``axis`` for ``num_axes`` (-1: all)."""
    return shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes]


@handles("Scale")
def build_scale(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """A standalone Scale: learned (``modules.Scale``) or by a second bottom (``ScaleBy``)."""
    params = layer.params
    assert isinstance(params, ScaleParams)
    shapes = ctx.bottom_shapes(layer)
    ndim = len(shapes[0])
    if len(shapes) == 2:
        factor = shapes[1]
        axis = 0 if not factor else canonical_axis(params.axis, ndim)
        made = Made(modules.ScaleBy, (axis, ndim, len(factor)),
                    {"bias_shape": factor if params.bias_term else None})
        return [ctx.call(layer, made, inputs)]
    axis = canonical_axis(params.axis, ndim)
    made = Made(modules.Scale, (_blob_shape(shapes[0], axis, params.num_axes), axis, ndim),
                {"bias_term": params.bias_term})
    return [ctx.call(layer, made, inputs)]


@handles("Bias")
def build_bias(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """A standalone Bias: learned (``modules.Bias``) or by a second bottom (``BiasBy``)."""
    params = layer.params
    assert isinstance(params, BiasParams)
    shapes = ctx.bottom_shapes(layer)
    ndim = len(shapes[0])
    if len(shapes) == 2:
        axis = 0 if not shapes[1] else canonical_axis(params.axis, ndim)
        return [ctx.call(layer, Made(modules.BiasBy, (axis, ndim, len(shapes[1]))), inputs)]
    axis = canonical_axis(params.axis, ndim)
    made = Made(modules.Bias, (_blob_shape(shapes[0], axis, params.num_axes), axis, ndim))
    return [ctx.call(layer, made, inputs)]


def _caffe_training(layer: Layer, record: FoldedBatchNorm | None, made: Made) -> Made:
    """``CaffeBatchNorm*d``: Caffe's running-average update at every train step (#15)."""
    from ..modules import caffe_batch_norm

    if record is None or record.running_average != "scale-factor" \
            or record.moving_average_fraction is None or record.scale_factor is None:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({layer.type}): bn_train='caffe' needs a BVLC or Intel "
            "BatchNorm with its caffemodel (moving average fraction and scale factor); "
            f"this one keeps {'no weights' if record is None else record.running_average}")
    kwargs = {k: v for k, v in made.kwargs.items() if k != "momentum"}
    cls = getattr(caffe_batch_norm, "Caffe" + getattr(made.factory, "__name__", ""))
    return Made(cls, made.args, {**kwargs, "moving_average_fraction":
                                 record.moving_average_fraction,
                                 "scale_factor": record.scale_factor})


@handles("BatchNorm", "BN")
def build_batch_norm(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """One ``nn.BatchNorm*d`` for the chain (its Scale/Bias pass through): class, eps, affine
    and the momentum continuing Caffe's averages from the folded record when weights are
    given, else from the flavour (PyTorch's default momentum)."""
    chain = ctx.chains[layer.index]
    shape = ctx.bottom_shapes(layer)[0]
    record = ctx.records.get(layer.name)
    settings: dict[str, object] = {}
    if record is not None:  # the momentum that continues Caffe's running averages (#15)
        channels, eps, affine = record.channels, record.eps, record.affine
        settings["momentum"] = record.momentum
    else:
        flavour = flavour_by_id(chain.flavour)
        if flavour is None or chain.problems:
            raise UnsupportedLayerError("; ".join(chain.problems)
                                        or f"a {chain.flavour} BN layer cannot be built")
        # SegNet's INFERENCE BN has no eps (scale·x + shift): its record uses 1e-5 too.
        channels, eps = shape[1], flavour.eps(layer) or MODULE_EPS
        affine = chain.scale is not None or chain.bias is not None \
            or flavour.fused_affine(layer)
    made = Made(getattr(nn, batch_norm_class(len(shape))), (channels,),
                {"eps": eps, "affine": affine, **settings})
    if ctx.bn_train == "caffe":
        made = _caffe_training(layer, record, made)
    node = ctx.call(layer, made, inputs[:1])
    if isinstance(layer.params, BatchNormParams) and layer.params.fused_relu:
        node = ctx.function(torch.relu, node)
    return [node]
