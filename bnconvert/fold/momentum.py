"""The PyTorch momentum that continues a Caffe BatchNorm's running averages (pure Python/numpy).

BVLC Caffe (``src/caffe/layers/batch_norm_layer.cpp``, BVLC/caffe 9b89154, TRAIN phase with
batch statistics) keeps sums and a scale factor ``s`` (blob 2) and, per forward pass, in float32::

    blob2 <- maf·blob2 + 1
    blob0 <- maf·blob0 + mean_b
    blob1 <- maf·blob1 + m/(m−1)·var_b          (m = values per channel)

Its effective statistics are ``blob/s``, so after one step, with ``s`` the scale factor before it::

    mean_new = (maf·s·mean_old + mean_b) / (maf·s + 1)

which is PyTorch's ``running = (1 − momentum)·running + momentum·batch`` (PyTorch, too, puts the
unbiased ``m/(m−1)·var_b`` into ``running_var``) with ``momentum = 1/(maf·s + 1)``. A plain
``torch.nn.BatchNorm*d`` keeps that momentum fixed, so it is exact for the next step only, unless
``s`` does not change (float32 fixed point, e.g. 999.98236 for maf 0.999) or ``maf == 1`` (a
cumulative average, PyTorch's ``momentum=None`` with ``num_batches_tracked = s``).
Forks: see ``momentum_forks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import BnConvertError, NumericError

__all__ = ["TORCH_DEFAULT_MOMENTUM", "Exactness", "Continuation", "caffe_momentum",
           "next_scale_factor", "continue_caffe", "MomentumOption", "parse_momentum_option",
           "choose_momentum"]

TORCH_DEFAULT_MOMENTUM = 0.1  # torch.nn.BatchNorm*d's and Torch7's nn.BatchNormalization's

_F32 = np.float32
_FLOAT32_EXACT_INTEGERS = 2 ** 24  # float32 s + 1 stays exact (and integral) below this

Exactness = Literal["every step", "next step", "approximate", "nothing to continue"]


@dataclass(frozen=True)
class Continuation:
    """How a plain PyTorch BatchNorm continues one Caffe layer's running averages.

    Attributes:
        momentum: PyTorch's ``momentum``; None means PyTorch's cumulative average (then
            ``num_batches_tracked`` carries the count).
        num_batches_tracked: the state_dict's ``num_batches_tracked``.
        exact: for how many train-mode steps the plain module matches the Caffe layer.
        note: why, in one sentence (for the manifest and warnings).
    """

    momentum: float | None
    num_batches_tracked: int
    exact: Exactness
    note: str


def _check_average(maf: float, scale_factor: float, where: str) -> None:
    prefix = f"{where}: " if where else ""
    if not math.isfinite(maf) or not 0 <= maf <= 1:
        raise NumericError(f"{prefix}moving_average_fraction is {maf}, expected a value in "
                           "[0, 1]: no momentum continues that running average")
    if not math.isfinite(scale_factor) or scale_factor < 0:
        raise NumericError(f"{prefix}scale factor (blob 2) is {scale_factor}, expected a "
                           "finite value >= 0; the model is corrupt")


def caffe_momentum(maf: float, scale_factor: float, where: str = "") -> float:
    """PyTorch's momentum for Caffe's next TRAIN step: ``1/(maf·s + 1)``; 1 when ``s == 0``.

    ``maf·s`` is rounded to float32 as Caffe's ``blob2 *= maf`` does; ``maf`` is Caffe's float32.

    Args:
        maf: ``batch_norm_param.moving_average_fraction`` (Caffe's default 0.999).
        scale_factor: blob 2's value ``s`` before the step.
        where: file and layer, to prefix error messages.

    Returns:
        The momentum in (0, 1].

    Raises:
        NumericError: maf outside [0, 1] or s negative or not finite.

    Example:
        >>> caffe_momentum(0.9, 0.0), round(caffe_momentum(0.999, 999.98236), 10)
        (1.0, 0.0010000176)
    """
    _check_average(maf, scale_factor, where)
    decayed = _F32(scale_factor) * _F32(maf)
    return 1.0 / (float(decayed) + 1.0)


def next_scale_factor(maf: float, scale_factor: float) -> float:
    """Caffe's blob 2 after one TRAIN step: ``float32(float32(s·maf) + 1)``, bit for bit.

    Example:
        >>> next_scale_factor(0.999, 999.98236) == float(np.float32(999.98236))
        True
    """
    return float(_F32(_F32(scale_factor) * _F32(maf)) + _F32(1))


def continue_caffe(maf: float, scale_factor: float, where: str = "") -> Continuation:
    """The plain-BatchNorm continuation of a BVLC (or Intel) ``BatchNorm`` layer.

    - ``maf == 1`` and integral ``s``: Caffe's cumulative average, ``blob/s`` over ``s``
      batches; PyTorch's ``momentum=None`` with ``num_batches_tracked = s`` continues it at
      every step (factor ``1/(s + k)`` at step k).
    - otherwise ``momentum = caffe_momentum(maf, s)``: exact at every step when ``s`` is a
      float32 fixed point of ``s <- maf·s + 1``, else for the next step only (the true
      momentum then drifts towards ``1 − maf``).

    Args:
        maf: the layer's moving_average_fraction; scale_factor: blob 2's value.
        where: file and layer, to prefix error messages.

    Raises:
        NumericError: see ``caffe_momentum``.

    Example:
        >>> c = continue_caffe(1.0, 37.0)
        >>> c.momentum, c.num_batches_tracked, c.exact
        (None, 37, 'every step')
    """
    _check_average(maf, scale_factor, where)
    s = float(_F32(scale_factor))
    if _F32(maf) == 1 and s.is_integer() and s < _FLOAT32_EXACT_INTEGERS:
        return Continuation(None, int(s), "every step",
                            f"cumulative average (moving_average_fraction 1) over {int(s)} "
                            "batches: momentum None with num_batches_tracked = scale factor")
    momentum = caffe_momentum(maf, scale_factor, where)
    if next_scale_factor(maf, s) == s:
        return Continuation(momentum, 0, "every step",
                            f"scale factor {s:.8g} is Caffe's float32 fixed point: momentum "
                            "1/(maf·s + 1) stays exact")
    return Continuation(momentum, 0, "next step",
                        "momentum 1/(maf·s + 1) continues Caffe exactly for one step; Caffe's "
                        "own momentum then moves towards 1 − maf (CaffeBatchNorm*d, "
                        "bn_train='caffe', follows it at every step)")


@dataclass(frozen=True)
class MomentumOption:
    """``--momentum``: ``caffe`` (continue Caffe), ``default`` (PyTorch's 0.1) or a number."""

    mode: Literal["caffe", "default", "value"]
    value: float | None = None


def parse_momentum_option(text: str) -> MomentumOption:
    """Parse ``--momentum caffe|default|VALUE`` (VALUE a number in [0, 1]).

    Raises:
        BnConvertError: anything else (the CLI reports it as a usage error).

    Example:
        >>> parse_momentum_option("caffe"), parse_momentum_option("0.01").value
        (MomentumOption(mode='caffe', value=None), 0.01)
    """
    word = text.strip().lower()
    if word in ("caffe", "default"):
        return MomentumOption(word)  # type: ignore[arg-type]
    try:
        value = float(word)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise BnConvertError(f"--momentum: expected 'caffe', 'default' or a number in [0, 1], "
                             f"got {text!r}")
    return MomentumOption("value", value)


def choose_momentum(option: MomentumOption,
                    continuation: Continuation) -> tuple[float | None, int]:
    """``(momentum, num_batches_tracked)`` to write for one BN under ``--momentum``.

    Example:
        >>> choose_momentum(MomentumOption("default"), continue_caffe(1.0, 37.0))
        (0.1, 0)
    """
    if option.mode == "caffe":
        return continuation.momentum, continuation.num_batches_tracked
    if option.mode == "default":
        return TORCH_DEFAULT_MOMENTUM, 0
    assert option.value is not None
    return option.value, 0
