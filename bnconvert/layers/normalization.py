"""Normalization layer types: BVLC ``BatchNorm`` (with the fork fields NVIDIA and Intel Caffe add
to ``batch_norm_param``), the SegNet/PSPNet ``BN`` layer (its ``bn_param`` is a fork field), LRN
and MVN. Fork fields are read from the layer's ``extras`` (``read.fork_params``) and checked here:
a malformed value is a ``LayerParamError``, never a silent default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from .base import LayerParamError, Params, float32, reads

__all__ = ["BatchNormParams", "BNParams", "LRNParams", "MVNParams", "fork_bool", "fork_float"]

_TRUE, _FALSE = ("true", "t", "1"), ("false", "f", "0")
_ENGINES = {"DEFAULT": "DEFAULT", "CAFFE": "CAFFE", "CUDNN": "CUDNN", "0": "DEFAULT", "1": "CAFFE",
            "2": "CUDNN"}


def fork_engine(block: str, value: Any) -> str | None:
    """A fork's ``engine`` (by name or number) as ``DEFAULT``/``CAFFE``/``CUDNN``; None unset.

    Raises:
        LayerParamError: anything else.
    """
    if value is None:
        return None
    word = str(value).strip().upper()
    if word not in _ENGINES:
        raise LayerParamError(f"{block}.engine is {value!r}, expected DEFAULT, CAFFE or CUDNN")
    return _ENGINES[word]


def fork_bool(block: str, name: str, value: Any) -> bool:
    """A fork boolean as a prototxt writes it (``true``, ``True``, ``t``, ``1`` ...).

    Raises:
        LayerParamError: anything else.
    """
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise LayerParamError(f"{block}.{name} is {value!r}, expected true or false")


def fork_float(block: str, name: str, value: Any) -> float:
    """A fork number as written, as Caffe's float32.

    Raises:
        LayerParamError: not a number.
    """
    try:
        return float32(float(str(value).rstrip("fF")))
    except ValueError:
        raise LayerParamError(f"{block}.{name} is {value!r}, expected a number") from None


@reads("BatchNorm")
@dataclass(frozen=True)
class BatchNormParams(Params):
    """``batch_norm_param``.

    Attributes:
        use_global_stats: as written, None when unset (each flavour says what unset means).
        moving_average_fraction, eps: Caffe's float32 values (defaults 0.999, 1e-5).
        scale_bias: NVIDIA Caffe's ``scale_bias`` fork field (scale and bias inside the layer).
        scale_bias_fillers: NVIDIA's ``scale_filler``/``bias_filler`` fork fields are present.
        fused_relu: Intel Caffe's ``relu`` fork field (a ReLU fused into the layer).
        engine: NVIDIA Caffe's ``engine`` fork field as written (None when unset).
    """

    proto_field = "batch_norm_param"
    learned = True
    use_global_stats: bool | None = None
    moving_average_fraction: float = float32(0.999)
    eps: float = float32(1e-5)
    scale_bias: bool = False
    scale_bias_fillers: bool = False
    fused_relu: bool = False
    engine: str | None = None

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> BatchNormParams:
        p: Any = param
        fork = extras.get("batch_norm_param", {})
        if not isinstance(fork, Mapping):
            raise LayerParamError("batch_norm_param is not a block")
        return cls(
            use_global_stats=bool(p.use_global_stats) if p.HasField("use_global_stats")
            else None,
            moving_average_fraction=float32(p.moving_average_fraction), eps=float32(p.eps),
            scale_bias=fork_bool("batch_norm_param", "scale_bias",
                                 fork.get("scale_bias", "false")),
            scale_bias_fillers="scale_filler" in fork or "bias_filler" in fork,
            fused_relu=fork_bool("batch_norm_param", "relu", fork.get("relu", "false")),
            engine=fork_engine("batch_norm_param", fork.get("engine")))


_BN_MODES = {"LEARN": "LEARN", "INFERENCE": "INFERENCE", "0": "LEARN", "1": "INFERENCE"}


@reads("BN", fork=True)
@dataclass(frozen=True)
class BNParams(Params):
    """The fork ``BN`` layer's ``bn_param`` (SegNet/ENet or PSPNet/yjxiong; the flavour tells
    which from ``fields`` and the blobs).

    Attributes:
        fields: the names of the ``bn_param`` fields written.
        bn_mode: SegNet's ``LEARN``/``INFERENCE`` (by name or number), None when unset.
        eps, momentum: PSPNet/yjxiong's values as float32, None when unset.
        frozen: PSPNet/yjxiong's ``frozen``.
        engine: PSPNet/yjxiong's ``engine`` as written (None when unset).
    """

    learned = True
    fields: frozenset[str] = frozenset()
    bn_mode: str | None = None
    eps: float | None = None
    momentum: float | None = None
    frozen: bool = False
    engine: str | None = None

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> BNParams:
        fork = extras.get("bn_param", {})
        if not isinstance(fork, Mapping):
            raise LayerParamError("bn_param is not a block")
        mode = fork.get("bn_mode")
        if mode is not None and str(mode).strip().upper() not in _BN_MODES:
            raise LayerParamError(f"bn_param.bn_mode is {mode!r}, expected LEARN or INFERENCE")
        number = {k: fork_float("bn_param", k, fork[k]) for k in ("eps", "momentum") if k in fork}
        return cls(fields=frozenset(fork), bn_mode=None if mode is None
                   else _BN_MODES[str(mode).strip().upper()],
                   eps=number.get("eps"), momentum=number.get("momentum"),
                   frozen=fork_bool("bn_param", "frozen", fork.get("frozen", "false")),
                   engine=fork_engine("bn_param", fork.get("engine")))


@reads("LRN")
@dataclass(frozen=True)
class LRNParams(Params):
    """``lrn_param`` (``norm_region`` as its enum name)."""

    proto_field = "lrn_param"
    local_size: int = 5
    alpha: float = 1.0
    beta: float = 0.75
    norm_region: str = "ACROSS_CHANNELS"
    k: float = 1.0

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> LRNParams:
        p: Any = param
        from .structure import enum_name

        return cls(int(p.local_size), float32(p.alpha), float32(p.beta),
                   enum_name(p, "norm_region"), float32(p.k))


@reads("MVN")
@dataclass(frozen=True)
class MVNParams(Params):
    """``mvn_param``: eps is added to the standard deviation."""

    proto_field = "mvn_param"
    normalize_variance: bool = True
    across_channels: bool = False
    eps: float = float32(1e-9)
