"""Layer types with learned blobs: convolutions, inner products, embeddings, PReLU, and the
per-channel Scale and Bias layers. (BatchNorm and the fork BN live in ``normalization``.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from .base import Params, reads

__all__ = ["ConvolutionParams", "InnerProductParams", "EmbedParams", "PReLUParams",
           "ScaleParams", "BiasParams", "per_axis"]


def per_axis(values: tuple[int, ...], axes: int, default: int) -> tuple[int, ...]:
    """Caffe's repeated spatial field: none -> ``default`` on every axis, one value -> that value
    on every axis, else one value per axis.

    Example:
        >>> per_axis((3,), 2, 1), per_axis((), 2, 0), per_axis((3, 5), 2, 1)
        ((3, 3), (0, 0), (3, 5))
    """
    if not values:
        return (default,) * axes
    if len(values) == 1:
        return values * axes
    return values


def _pair_or(param: Message, h: str, w: str, repeated: str) -> tuple[int, ...]:
    if param.HasField(h) or param.HasField(w):
        return (int(getattr(param, h)), int(getattr(param, w)))
    return tuple(int(v) for v in getattr(param, repeated))


@reads("ConvolutionDepthwise", "DepthwiseConvolution", fork=True)
@reads("Convolution", "Deconvolution", "CuDNNConvolution")
@dataclass(frozen=True)
class ConvolutionParams(Params):
    """``convolution_param``. ``kernel``/``stride``/``pad`` as written (``kernel_h``/``_w`` etc.
    win over the repeated fields); expand them with ``per_axis``. ``num_output`` is None when
    unset (Caffe then refuses the net)."""

    proto_field = "convolution_param"
    learned = True
    num_output: int | None = None
    bias_term: bool = True
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    group: int = 1
    axis: int = 1

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> ConvolutionParams:
        p: Any = param
        return cls(num_output=int(p.num_output) if p.HasField("num_output") else None,
                   bias_term=bool(p.bias_term),
                   kernel=_pair_or(p, "kernel_h", "kernel_w", "kernel_size"),
                   stride=_pair_or(p, "stride_h", "stride_w", "stride"),
                   pad=_pair_or(p, "pad_h", "pad_w", "pad"),
                   dilation=tuple(int(v) for v in p.dilation), group=int(p.group),
                   axis=int(p.axis))


@reads("InnerProduct")
@dataclass(frozen=True)
class InnerProductParams(Params):
    """``inner_product_param``: ``y = x·Wᵀ + b`` over the axes from ``axis`` on."""

    proto_field = "inner_product_param"
    learned = True
    num_output: int = 0
    bias_term: bool = True
    axis: int = 1
    transpose: bool = False


@reads("Embed")
@dataclass(frozen=True)
class EmbedParams(Params):
    """``embed_param``: weight (input_dim, num_output), one row per index."""

    proto_field = "embed_param"
    learned = True
    num_output: int = 0
    input_dim: int = 0
    bias_term: bool = True


@reads("PReLU")
@dataclass(frozen=True)
class PReLUParams(Params):
    """``prelu_param``: one slope per channel, or one for all (``channel_shared``)."""

    proto_field = "prelu_param"
    learned = True
    channel_shared: bool = False


@reads("Scale")
@dataclass(frozen=True)
class ScaleParams(Params):
    """``scale_param``: ``y = x·γ (+ β)`` broadcast from ``axis`` over ``num_axes`` axes. A V1
    ``layers`` entry has no scale_param: Caffe's defaults (bias_term false) apply."""

    proto_field = "scale_param"
    learned = True
    axis: int = 1
    num_axes: int = 1
    bias_term: bool = False


@reads("Bias")
@dataclass(frozen=True)
class BiasParams(Params):
    """``bias_param``: ``y = x + b`` broadcast from ``axis`` over ``num_axes`` axes."""

    proto_field = "bias_param"
    learned = True
    axis: int = 1
    num_axes: int = 1
