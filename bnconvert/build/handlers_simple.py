"""Handlers of the element-wise layers, Pooling, SPP, LRN and MVN: PyTorch's own module where it
computes what Caffe computes (``CAFFE_SEMANTICS.md``), else the ``bnconvert.modules`` one."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .. import modules
from ..layers.elementwise import (
    ClipParams,
    ELUParams,
    ExpParams,
    LogParams,
    PowerParams,
    ReLUParams,
    SwishParams,
    ThresholdParams,
)
from ..layers.normalization import LRNParams, MVNParams
from ..layers.structure import PoolingParams, SPPParams
from ..read.net import Layer
from .context import BuildContext, Made, Node
from .handlers import handles

__all__: list[str] = []


def _one(ctx: BuildContext, layer: Layer, inputs: list[Node], made: Made) -> list[Node]:
    return [ctx.call(layer, made, inputs[:1])]


@handles("Split", "Dropout")
def build_pass_through(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """Split copies its bottom to every top; Dropout is the identity in TEST."""
    return [inputs[0]] * len(layer.tops)


@handles("ReLU")
def build_relu(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``nn.ReLU``, or ``nn.LeakyReLU(negative_slope)``."""
    params = layer.params
    assert isinstance(params, ReLUParams)
    if params.negative_slope == 0:
        return _one(ctx, layer, inputs, Made(nn.ReLU))
    return _one(ctx, layer, inputs, Made(nn.LeakyReLU, (params.negative_slope,)))


_PLAIN: dict[str, Callable[..., nn.Module]] = {
    "ReLU6": nn.ReLU6, "Sigmoid": nn.Sigmoid, "TanH": nn.Tanh, "BNLL": nn.Softplus,
    "AbsVal": modules.AbsVal}


@handles(*_PLAIN)
def build_plain(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """Parameterless maps: ReLU6, Sigmoid, TanH, BNLL (= Softplus), AbsVal."""
    return _one(ctx, layer, inputs, Made(_PLAIN[layer.type]))


@handles("ELU", "Power", "Exp", "Log", "Threshold", "Clip", "Swish")
def build_pointwise(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """Element-wise maps with parameters."""
    p = layer.params
    made: Made
    if isinstance(p, ELUParams):
        made = Made(nn.ELU, (p.alpha,))
    elif isinstance(p, PowerParams):
        made = Made(modules.Power, (p.power, p.scale, p.shift))
    elif isinstance(p, ExpParams | LogParams):
        made = Made(modules.Exp if isinstance(p, ExpParams) else modules.Log,
                    (p.base, p.scale, p.shift))
    elif isinstance(p, ThresholdParams):
        made = Made(modules.Threshold, (p.threshold,))
    elif isinstance(p, ClipParams):
        made = Made(nn.Hardtanh, (p.min, p.max))
    else:
        assert isinstance(p, SwishParams)
        made = Made(modules.Swish, (p.beta,))
    return _one(ctx, layer, inputs, made)


@handles("Pooling")
def build_pooling(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.caffe_pooling``: nn.MaxPool2d/AvgPool2d where Caffe's rounding agrees, else
    ``CaffePool2d``; a second top is MAX pooling's argmax mask."""
    p = layer.params
    assert isinstance(p, PoolingParams)
    mask = len(layer.tops) > 1
    kwargs = {"max_pool": p.pool == "MAX", "ceil_mode": p.round_mode == "CEIL",
              "global_pooling": p.global_pooling, "return_mask": mask}
    made = Made(modules.caffe_pooling, (p.kernel or 1, p.stride, p.pad), kwargs)
    node = ctx.call(layer, made, inputs[:1])
    return ctx.unpack(node, 2) if mask else [node]


@handles("SPP")
def build_spp(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.SPP`` for the input's height and width."""
    p = layer.params
    assert isinstance(p, SPPParams)
    shape = ctx.bottom_shapes(layer)[0]
    made = Made(modules.SPP, (p.pyramid_height, shape[2], shape[3]),
                {"max_pool": p.pool == "MAX"})
    return _one(ctx, layer, inputs, made)


@handles("LRN")
def build_lrn(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.caffe_lrn``: nn.LocalResponseNorm across channels, LRNWithinChannel within."""
    p = layer.params
    assert isinstance(p, LRNParams)
    made = Made(modules.caffe_lrn, (p.local_size, p.alpha, p.beta, p.k),
                {"within_channel": p.norm_region == "WITHIN_CHANNEL"})
    return _one(ctx, layer, inputs, made)


@handles("MVN")
def build_mvn(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    """``modules.MVN`` (eps added to the standard deviation)."""
    p = layer.params
    assert isinstance(p, MVNParams)
    made = Made(modules.MVN, (p.normalize_variance, p.across_channels, p.eps))
    return _one(ctx, layer, inputs, made)
