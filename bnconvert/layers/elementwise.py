"""Element-wise layer types (activations and point-wise maps)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import NoParams, Params, float32, reads

__all__ = ["ReLUParams", "ELUParams", "PowerParams", "ExpParams", "LogParams",
           "ThresholdParams", "ClipParams", "SwishParams", "DropoutParams"]


@reads("ReLU")
@dataclass(frozen=True)
class ReLUParams(Params):
    """``max(x, 0) + negative_slope·min(x, 0)``."""

    proto_field = "relu_param"
    negative_slope: float = 0.0


@reads("ELU")
@dataclass(frozen=True)
class ELUParams(Params):
    """``x`` for x > 0, else ``alpha·(exp(x) − 1)``."""

    proto_field = "elu_param"
    alpha: float = 1.0


@reads("Power")
@dataclass(frozen=True)
class PowerParams(Params):
    """``(shift + scale·x)^power``."""

    proto_field = "power_param"
    power: float = 1.0
    scale: float = 1.0
    shift: float = 0.0


@reads("Exp")
@dataclass(frozen=True)
class ExpParams(Params):
    """``base^(shift + scale·x)``; base -1 means e."""

    proto_field = "exp_param"
    base: float = -1.0
    scale: float = 1.0
    shift: float = 0.0


@reads("Log")
@dataclass(frozen=True)
class LogParams(Params):
    """``log_base(shift + scale·x)``; base -1 means e."""

    proto_field = "log_param"
    base: float = -1.0
    scale: float = 1.0
    shift: float = 0.0


@reads("Threshold")
@dataclass(frozen=True)
class ThresholdParams(Params):
    """``1 if x > threshold else 0``."""

    proto_field = "threshold_param"
    threshold: float = 0.0


@reads("Clip")
@dataclass(frozen=True)
class ClipParams(Params):
    """``max(min, min(x, max))``."""

    proto_field = "clip_param"
    min: float = 0.0
    max: float = 0.0


@reads("Swish")
@dataclass(frozen=True)
class SwishParams(Params):
    """``x·sigmoid(beta·x)``."""

    proto_field = "swish_param"
    beta: float = 1.0


@reads("Dropout")
@dataclass(frozen=True)
class DropoutParams(Params):
    """Identity in TEST."""

    proto_field = "dropout_param"
    dropout_ratio: float = float32(0.5)


@reads("Sigmoid", "TanH", "AbsVal", "BNLL")
@dataclass(frozen=True)
class PointwiseParams(NoParams):
    """Element-wise maps without parameters."""
