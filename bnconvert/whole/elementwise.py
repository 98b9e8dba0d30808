"""Handlers of the learned layers that become ``bnconvert.modules`` classes: PReLU, Embed, and
the Scale and Bias layers no BatchNorm chain claimed.

Layouts (each the module's own parameter shapes, so ``load_state_dict(strict=True)`` fits):

- PReLU: weight (C,), or 0-d with ``channel_shared: true`` -> ``bnconvert.modules.PReLU``;
- Embed: weight (input_dim, num_output), bias (num_output,) -> ``bnconvert.modules.Embed``;
- Scale, one bottom: weight and bias in the blob's shape (the bottom's dims from ``axis`` for
  ``num_axes`` axes) -> ``bnconvert.modules.Scale``; two bottoms (SE gating, the second bottom
  is the factor): bias only -> ``bnconvert.modules.ScaleBy``;
- Bias, one bottom: bias in the blob's shape -> ``bnconvert.modules.Bias`` (two bottoms: no
  learned blob, no record).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..layers.learned import BiasParams, EmbedParams, PReLUParams, ScaleParams
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
from .records import BiasLayer, EmbedLayer, LearnedLayer, PReLULayer, ScaleLayer

__all__ = ["convert_prelu", "convert_embed", "convert_scale", "convert_bias"]

_MODULES = "bnconvert.modules."


def _make(cls: type[LearnedLayer], layer: Layer, module: str, arguments: dict[str, Any],
          weights: dict[str, np.ndarray], caffe: dict[str, Any] | None = None,
          notes: tuple[str, ...] = ()) -> LearnedLayer:
    return cls(layer=layer.name, caffe_type=layer.type, module_class=_MODULES + module,
               arguments=arguments, weights=weights,
               blob_shapes=tuple(b.shape for b in layer.blobs or ()), caffe=caffe or {},
               warnings=notes)


@handles("PReLU")
def convert_prelu(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """PReLU: slopes (C,), or a 0-d slope with ``channel_shared: true``."""
    params = cast(PReLUParams, params_of(ctx, layer, PReLUParams))
    channels = input_channels(ctx, layer)
    shape: tuple[int | None, ...] = () if params.channel_shared else (channels,)
    why = "channel_shared true" if params.channel_shared else \
        "one slope per channel" + (f", {channels} channels" if channels is not None else "")
    (weight,) = checked_arrays(ctx.net, layer, [Expected("slopes", shape)], why)
    count = int(weight.shape[0]) if weight.ndim else (channels or 1)
    notes = () if params.channel_shared or channels is not None else (
        unchecked(ctx, layer, "channels"),)
    return _make(PReLULayer, layer, "PReLU",
                 {"channels": count, "channel_shared": params.channel_shared},
                 {"weight": weight}, notes=notes)


@handles("Embed")
def convert_embed(ctx: NetContext, layer: Layer) -> LearnedLayer:
    """Embed: weight (input_dim, num_output), bias (num_output,)."""
    params = cast(EmbedParams, params_of(ctx, layer, EmbedParams))
    k, n = params.input_dim, params.num_output
    expected = [Expected("weight", (k, n))]
    if params.bias_term:
        expected.append(Expected("bias", (n,)))
    why = f"input_dim {k}, num_output {n}, bias_term {str(params.bias_term).lower()}"
    arrays = checked_arrays(ctx.net, layer, expected, why)
    weights = dict(zip(("weight", "bias"), arrays, strict=False))
    return _make(EmbedLayer, layer, "Embed",
                 {"input_dim": k, "num_output": n, "bias_term": params.bias_term}, weights)


def _blob_shape(ctx: NetContext, layer: Layer, axis: int, num_axes: int,
                rank: int | None) -> tuple[int | None, ...]:
    """The shape a one-bottom Scale/Bias blob must have: the bottom's dims from ``axis`` for
    ``num_axes`` axes (-1: to the end), from Caffe's shape inference where it gives them."""
    shape_in = input_shape(ctx, layer)
    start = axis % rank if rank is not None and axis < 0 else axis
    if shape_in is not None and 0 <= start <= len(shape_in):
        return shape_in[start:] if num_axes < 0 else shape_in[start:start + num_axes]
    if num_axes < 0:
        if rank is not None:
            num_axes = rank - start
        else:  # the rank is unknown: take the stored blob's rank
            blobs = layer.blobs or ()
            num_axes = len(blobs[0].shape) if blobs and not blobs[0].legacy else 1
    return (None,) * num_axes


def _shape_notes(ctx: NetContext, layer: Layer, shape: tuple[int | None, ...]) -> tuple[str, ...]:
    return (unchecked(ctx, layer, "blob dims"),) if None in shape else ()


@handles("Scale")
def convert_scale(ctx: NetContext, layer: Layer) -> LearnedLayer | None:
    """A standalone Scale: weight (and bias) in the blob's shape -> ``Scale``; with two
    bottoms (the second is the factor) its bias only -> ``ScaleBy``, or nothing without
    ``bias_term``."""
    params = cast(ScaleParams, params_of(ctx, layer, ScaleParams))
    rank = input_rank(ctx, layer)
    caffe = {"axis": params.axis, "num_axes": params.num_axes, "bottoms": len(layer.bottoms),
             "ndim_known": rank is not None}
    if len(layer.bottoms) > 1:
        return _scale_by(ctx, layer, params, rank, caffe)
    shape = _blob_shape(ctx, layer, params.axis, params.num_axes, rank)
    expected = [Expected("scale", shape)] + ([Expected("bias", shape)] if params.bias_term
                                             else [])
    arrays = checked_arrays(ctx.net, layer, expected, _why(params.axis, params.num_axes,
                                                           params.bias_term))
    return _make(ScaleLayer, layer, "Scale",
                 {"shape": list(arrays[0].shape), "axis": params.axis, "ndim": rank or 4,
                  "bias_term": params.bias_term},
                 dict(zip(("weight", "bias"), arrays, strict=False)), caffe,
                 _shape_notes(ctx, layer, shape))


def _scale_by(ctx: NetContext, layer: Layer, params: ScaleParams, rank: int | None,
              caffe: dict[str, Any]) -> LearnedLayer | None:
    if not params.bias_term:
        return None
    factor_rank = input_rank(ctx, layer, 1)
    if factor_rank is None:
        blobs = layer.blobs or ()
        factor_rank = len(blobs[0].shape) if blobs and not blobs[0].legacy else 1
    (bias,) = checked_arrays(ctx.net, layer, [Expected("bias", (None,) * factor_rank)],
                             "two bottoms: one bias in the shape of the second bottom")
    return _make(ScaleLayer, layer, "ScaleBy",
                 {"axis": params.axis, "ndim": rank or 4, "factor_ndim": factor_rank,
                  "bias_shape": list(bias.shape)}, {"bias": bias}, caffe)


@handles("Bias")
def convert_bias(ctx: NetContext, layer: Layer) -> LearnedLayer | None:
    """A standalone one-bottom Bias: bias in the blob's shape -> ``Bias`` (a two-bottom Bias
    adds its second bottom and has nothing learned)."""
    params = cast(BiasParams, params_of(ctx, layer, BiasParams))
    if len(layer.bottoms) > 1:
        return None
    rank = input_rank(ctx, layer)
    shape = _blob_shape(ctx, layer, params.axis, params.num_axes, rank)
    (bias,) = checked_arrays(ctx.net, layer, [Expected("bias", shape)],
                             _why(params.axis, params.num_axes, None))
    return _make(BiasLayer, layer, "Bias",
                 {"shape": list(bias.shape), "axis": params.axis, "ndim": rank or 4},
                 {"bias": bias}, {"axis": params.axis, "num_axes": params.num_axes,
                                  "ndim_known": rank is not None},
                 _shape_notes(ctx, layer, shape))


def _why(axis: int, num_axes: int, bias_term: bool | None) -> str:
    text = f"axis {axis}, num_axes {num_axes}"
    return text if bias_term is None else f"{text}, bias_term {str(bias_term).lower()}"
