"""Inputs, pooling and the layers that route, reshape or reduce blobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from .base import NoParams, Params, float32, reads

__all__ = ["InputParams", "DummyDataParams", "DataParams", "PoolingParams", "EltwiseParams",
           "ConcatParams", "SliceParams", "FlattenParams", "ReshapeParams", "SoftmaxParams",
           "CropParams", "TileParams", "ReductionParams", "ArgMaxParams", "SPPParams",
           "enum_name"]


def enum_name(param: Message, field: str) -> str:
    """The name of an enum field's value (``"MAX"``, ``"SUM"``...)."""
    enum = param.DESCRIPTOR.fields_by_name[field].enum_type
    assert enum is not None, field
    return str(enum.values_by_number[getattr(param, field)].name)


def _shapes(shapes: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(d) for d in shape.dim) for shape in shapes)


@reads("Input")
@dataclass(frozen=True)
class InputParams(Params):
    """``input_param``: one shape per top (or one for all)."""

    proto_field = "input_param"
    shape: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> InputParams:
        p: Any = param
        return cls(_shapes(p.shape))


@reads("DummyData")
@dataclass(frozen=True)
class DummyDataParams(Params):
    """``dummy_data_param``: shapes from ``shape`` or the legacy num/channels/height/width."""

    proto_field = "dummy_data_param"
    shape: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> DummyDataParams:
        p: Any = param
        if len(p.shape):
            return cls(_shapes(p.shape))
        legacy = zip(p.num, p.channels, p.height, p.width, strict=False)
        return cls(tuple(tuple(int(d) for d in dims) for dims in legacy))


@reads("VideoData", "AnnotatedData", fork=True)
@reads("Data", "ImageData", "MemoryData", "WindowData", "HDF5Data", "Python")
@dataclass(frozen=True)
class DataParams(NoParams):
    """Data source layers: their first top is image-like (N, C, H, W)."""


@reads("Pooling")
@dataclass(frozen=True)
class PoolingParams(Params):
    """``pooling_param`` with ``kernel``/``stride``/``pad`` as (h, w) (``*_h``/``*_w`` win).
    ``round_mode`` is ``CEIL`` (Caffe's default) or ``FLOOR``; the fork field ``ceil_mode:
    false`` also means ``FLOOR``."""

    proto_field = "pooling_param"
    pool: str = "MAX"
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    global_pooling: bool = False
    round_mode: str = "CEIL"

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> PoolingParams:
        p: Any = param
        kernel = None
        if p.HasField("kernel_h") or p.HasField("kernel_w"):
            kernel = (int(p.kernel_h), int(p.kernel_w))
        elif p.HasField("kernel_size"):
            kernel = (int(p.kernel_size),) * 2
        stride = ((int(p.stride_h), int(p.stride_w))
                  if p.HasField("stride_h") or p.HasField("stride_w") else (int(p.stride),) * 2)
        pad = ((int(p.pad_h), int(p.pad_w))
               if p.HasField("pad_h") or p.HasField("pad_w") else (int(p.pad),) * 2)
        round_mode = enum_name(p, "round_mode")
        from .normalization import fork_bool

        fork = extras.get("pooling_param", {})
        if isinstance(fork, Mapping) and "ceil_mode" in fork \
                and not fork_bool("pooling_param", "ceil_mode", fork["ceil_mode"]):
            round_mode = "FLOOR"
        return cls(enum_name(p, "pool"), kernel, stride, pad, bool(p.global_pooling),
                   round_mode)


@reads("Eltwise")
@dataclass(frozen=True)
class EltwiseParams(Params):
    """``eltwise_param``: ``PROD``, ``SUM`` (with one ``coeff`` per bottom) or ``MAX``."""

    proto_field = "eltwise_param"
    operation: str = "SUM"
    coeff: tuple[float, ...] = ()

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> EltwiseParams:
        p: Any = param
        return cls(enum_name(p, "operation"), tuple(float32(c) for c in p.coeff))


@reads("Concat")
@dataclass(frozen=True)
class ConcatParams(Params):
    """``concat_param``: ``axis``, or the legacy ``concat_dim`` when only it is set."""

    proto_field = "concat_param"
    axis: int = 1

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> ConcatParams:
        p: Any = param
        legacy = p.HasField("concat_dim") and not p.HasField("axis")
        return cls(int(p.concat_dim) if legacy else int(p.axis))


@reads("Slice")
@dataclass(frozen=True)
class SliceParams(Params):
    """``slice_param``: ``axis`` (or legacy ``slice_dim``) and the ``slice_point``s."""

    proto_field = "slice_param"
    axis: int = 1
    slice_point: tuple[int, ...] = ()

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> SliceParams:
        p: Any = param
        legacy = p.HasField("slice_dim") and not p.HasField("axis")
        return cls(int(p.slice_dim) if legacy else int(p.axis), tuple(p.slice_point))


@reads("Flatten")
@dataclass(frozen=True)
class FlattenParams(Params):
    """``flatten_param``: merge axes ``axis``..``end_axis``."""

    proto_field = "flatten_param"
    axis: int = 1
    end_axis: int = -1


@reads("Reshape")
@dataclass(frozen=True)
class ReshapeParams(Params):
    """``reshape_param``: ``shape`` (0 copies, -1 inferred) over ``axis``/``num_axes``."""

    proto_field = "reshape_param"
    shape: tuple[int, ...] = ()
    axis: int = 0
    num_axes: int = -1

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> ReshapeParams:
        p: Any = param
        return cls(tuple(int(d) for d in p.shape.dim), int(p.axis), int(p.num_axes))


@reads("Softmax")
@dataclass(frozen=True)
class SoftmaxParams(Params):
    """``softmax_param``."""

    proto_field = "softmax_param"
    axis: int = 1


@reads("Crop")
@dataclass(frozen=True)
class CropParams(Params):
    """``crop_param``: crop bottom 0 to bottom 1's shape from ``axis`` on."""

    proto_field = "crop_param"
    axis: int = 2
    offset: tuple[int, ...] = ()


@reads("Tile")
@dataclass(frozen=True)
class TileParams(Params):
    """``tile_param``."""

    proto_field = "tile_param"
    axis: int = 1
    tiles: int = 0


@reads("Reduction")
@dataclass(frozen=True)
class ReductionParams(Params):
    """``reduction_param``: ``SUM``, ``ASUM``, ``SUMSQ`` or ``MEAN`` from ``axis`` to the end."""

    proto_field = "reduction_param"
    operation: str = "SUM"
    axis: int = 0
    coeff: float = 1.0

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> ReductionParams:
        p: Any = param
        return cls(enum_name(p, "operation"), int(p.axis), float32(p.coeff))


@reads("ArgMax")
@dataclass(frozen=True)
class ArgMaxParams(Params):
    """``argmax_param``; ``axis`` None when unset (per sample over C·H·W)."""

    proto_field = "argmax_param"
    out_max_val: bool = False
    top_k: int = 1
    axis: int | None = None

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> ArgMaxParams:
        p: Any = param
        return cls(bool(p.out_max_val), int(p.top_k),
                   int(p.axis) if p.HasField("axis") else None)


@reads("SPP")
@dataclass(frozen=True)
class SPPParams(Params):
    """``spp_param``."""

    proto_field = "spp_param"
    pyramid_height: int = 0
    pool: str = "MAX"

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> SPPParams:
        p: Any = param
        return cls(int(p.pyramid_height), enum_name(p, "pool"))


@reads("Split", "Silence", "Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss",
       "InfogainLoss", "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
       "HDF5Output", "Im2col", "BatchReindex", "Filter", "LSTMUnit")
@dataclass(frozen=True)
class OtherBvlcParams(NoParams):
    """BVLC layer types whose parameters nothing in bnconvert reads yet."""


@reads("LSTM", "RNN", "Recurrent", "Parameter")
@dataclass(frozen=True)
class OtherLearnedParams(NoParams):
    """BVLC layer types with learned blobs that bnconvert does not convert."""

    learned = True
