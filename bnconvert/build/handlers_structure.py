"""Handlers of the layers that route, reshape or reduce blobs, and of the common fork layers
(ShuffleChannel, Axpy, Interp, Upsample; their parameters are fork fields)."""

from __future__ import annotations

from torch import nn

from .. import modules
from ..graph.shape_rules import fork_int
from ..graph.shape_rules_structure import fork_flag
from ..layers.structure import (
    ArgMaxParams,
    ConcatParams,
    CropParams,
    EltwiseParams,
    FlattenParams,
    ReductionParams,
    ReshapeParams,
    SliceParams,
    SoftmaxParams,
    TileParams,
)
from ..read.net import Layer
from .context import BuildContext, Made, Node
from .handlers import handles

__all__: list[str] = []


def _one(ctx: BuildContext, layer: Layer, inputs: list[Node], made: Made) -> list[Node]:
    return [ctx.call(layer, made, inputs)]


@handles("Silence")
def build_silence(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """Silence consumes its bottoms and computes nothing."""
    return []


@handles("Eltwise")
def build_eltwise(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """SUM (one coeff per bottom, or none), PROD or MAX."""
    p = layer.params
    assert isinstance(p, EltwiseParams)
    if p.operation != "SUM" and p.coeff:
        raise ValueError("Eltwise layer only takes coefficients for summation")
    if p.coeff and len(p.coeff) != len(inputs):
        raise ValueError("Eltwise Layer takes one coefficient per bottom blob")
    if p.operation == "SUM":
        return _one(ctx, layer, inputs, Made(modules.EltwiseSum, (p.coeff or None,)))
    made = Made(modules.EltwiseProd if p.operation == "PROD" else modules.EltwiseMax)
    return _one(ctx, layer, inputs, made)


@handles("Concat")
def build_concat(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Concat(axis)``."""
    p = layer.params
    assert isinstance(p, ConcatParams)
    return _one(ctx, layer, inputs, Made(modules.Concat, (p.axis,)))


@handles("Slice")
def build_slice(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Slice``: one top per piece."""
    p = layer.params
    assert isinstance(p, SliceParams)
    made = Made(modules.Slice, (p.axis, p.slice_point, len(layer.tops)))
    return ctx.unpack(ctx.call(layer, made, inputs), len(layer.tops))


@handles("Flatten")
def build_flatten(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``nn.Flatten(axis, end_axis)``."""
    p = layer.params
    assert isinstance(p, FlattenParams)
    return _one(ctx, layer, inputs, Made(nn.Flatten, (p.axis, p.end_axis)))


@handles("Reshape")
def build_reshape(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Reshape`` (0 copies a dim, -1 is inferred)."""
    p = layer.params
    assert isinstance(p, ReshapeParams)
    return _one(ctx, layer, inputs, Made(modules.Reshape, (p.shape, p.axis, p.num_axes)))


@handles("Softmax")
def build_softmax(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``nn.Softmax(dim=axis)``."""
    p = layer.params
    assert isinstance(p, SoftmaxParams)
    return _one(ctx, layer, inputs, Made(nn.Softmax, (), {"dim": p.axis}))


@handles("Crop")
def build_crop(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Crop``: bottom 0 cut to bottom 1's shape from ``axis`` on."""
    p = layer.params
    assert isinstance(p, CropParams)
    ndim = len(ctx.bottom_shapes(layer)[0])
    return _one(ctx, layer, inputs, Made(modules.Crop, (p.axis, p.offset, ndim)))


@handles("Tile")
def build_tile(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Tile``."""
    p = layer.params
    assert isinstance(p, TileParams)
    return _one(ctx, layer, inputs, Made(modules.Tile, (p.axis, p.tiles)))


@handles("Reduction")
def build_reduction(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.Reduction`` over every axis from ``axis`` on."""
    p = layer.params
    assert isinstance(p, ReductionParams)
    return _one(ctx, layer, inputs, Made(modules.Reduction, (p.operation, p.axis, p.coeff)))


@handles("ArgMax")
def build_argmax(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.ArgMax`` (ties to the larger index)."""
    p = layer.params
    assert isinstance(p, ArgMaxParams)
    return _one(ctx, layer, inputs, Made(modules.ArgMax, (p.top_k, p.out_max_val, p.axis)))


@handles("ShuffleChannel")
def build_shuffle_channel(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.ShuffleChannel(shuffle_channel_param.group)``."""
    group = fork_int(layer, "shuffle_channel_param", "group", 1)
    return _one(ctx, layer, inputs, Made(modules.ShuffleChannel, (group,)))


@handles("Axpy")
def build_axpy(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """SENet's ``a * x + y``."""
    return _one(ctx, layer, inputs, Made(modules.Axpy))


@handles("Interp")
def build_interp(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """PSPNet's bilinear Interp (corners aligned) from ``interp_param``."""
    names = ("height", "width", "zoom_factor", "shrink_factor")
    kwargs = {name: fork_int(layer, "interp_param", name) for name in names}
    pads = {name: fork_int(layer, "interp_param", name, 0) for name in ("pad_beg", "pad_end")}
    return _one(ctx, layer, inputs, Made(modules.Interp, (), {**kwargs, **pads}))


@handles("Upsample")
def build_upsample(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """SegNet's Upsample: scatter to a MAX pooling's mask positions."""
    scale = fork_int(layer, "upsample_param", "scale", 2)
    kwargs = {"scale_h": fork_int(layer, "upsample_param", "scale_h", scale),
              "scale_w": fork_int(layer, "upsample_param", "scale_w", scale),
              "upsample_h": fork_int(layer, "upsample_param", "upsample_h"),
              "upsample_w": fork_int(layer, "upsample_param", "upsample_w"),
              "pad_out_h": bool(fork_flag(layer, "pad_out_h")),
              "pad_out_w": bool(fork_flag(layer, "pad_out_w"))}
    return _one(ctx, layer, inputs, Made(modules.Upsample, (), kwargs))
