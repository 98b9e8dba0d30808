"""Pure numeric folding of Caffe's BatchNorm parameters (numpy only; inputs never mutated).

Caffe's TEST-phase BatchNorm (``batch_norm_layer.cpp``), all in float32::

    f    = 0 if s == 0 else 1 / s          # s = blob2[0], the scale factor
    mean = blob0 * f
    var  = blob1 * f
    y    = (x - mean) / sqrt(var + eps)

followed by Scale (``y * gamma + beta``) and Bias (``y + b``), so PyTorch's
``weight = gamma`` and ``bias = beta + b``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scale_factor_multiplier", "fold_running_stats", "fold_affine", "identity_affine",
           "unit_variance_for"]


def scale_factor_multiplier(factor: float) -> np.float32:
    """Caffe's multiplier ``f = 0 if s == 0 else 1/s``, a float32 reciprocal.

    Example:
        >>> float(scale_factor_multiplier(0.0)), float(scale_factor_multiplier(4.0))
        (0.0, 0.25)
    """
    s = np.float32(factor)
    if s == 0:
        return np.float32(0)
    return np.float32(1) / s


def fold_running_stats(mean_acc: np.ndarray, var_acc: np.ndarray,
                       factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``(blob0 * f, blob1 * f)`` in float32: the running mean and variance Caffe uses.

    Args:
        mean_acc: blob 0, the (scaled) mean accumulator, shape (C,).
        var_acc: blob 1, the (scaled) variance accumulator, shape (C,).
        factor: blob 2's single value, the scale factor s.

    Returns:
        New float32 arrays ``(running_mean, running_var)``.

    Example:
        >>> fold_running_stats(np.array([2.0]), np.array([4.0]), 2.0)
        (array([1.], dtype=float32), array([2.], dtype=float32))
    """
    f = scale_factor_multiplier(factor)
    mean = np.asarray(mean_acc, dtype=np.float32) * f
    var = np.asarray(var_acc, dtype=np.float32) * f
    return mean.astype(np.float32, copy=False), var.astype(np.float32, copy=False)


def fold_affine(gamma: np.ndarray | None, beta: np.ndarray | None,
                extra_bias: np.ndarray | None, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of ``Scale(gamma, beta)`` followed by ``Bias(extra_bias)``.

    ``weight = gamma`` (ones without a Scale), ``bias = beta + extra_bias`` (absent terms are 0),
    in float32.

    Example:
        >>> fold_affine(np.array([2.0]), None, np.array([0.5]), 1)
        (array([2.], dtype=float32), array([0.5], dtype=float32))
    """
    weight = (np.ones(channels, np.float32) if gamma is None
              else np.array(gamma, dtype=np.float32, copy=True))
    bias = np.zeros(channels, np.float32) if beta is None else np.array(beta, np.float32)
    if extra_bias is not None:
        bias = (bias + np.asarray(extra_bias, dtype=np.float32)).astype(np.float32)
    return weight, bias


def identity_affine(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight 1 and bias 0: what a non-affine BN computes, for loaders needing affine modules."""
    return np.ones(channels, np.float32), np.zeros(channels, np.float32)


def unit_variance_for(eps: float) -> np.float32:
    """A running variance ``v`` with ``float32(v + eps) == 1`` exactly, so that a BN computes
    ``x * weight + bias`` (how a pure scale-and-shift is expressed as a BatchNorm).

    Example:
        >>> float(unit_variance_for(1e-5) + np.float32(1e-5))
        1.0
    """
    e = np.float32(eps)
    v = np.float32(1) - e
    for _ in range(4):  # nudge by one ulp until the float32 sum is exactly 1
        total = np.float32(v + e)
        if total == 1:
            return v
        v = np.nextafter(v, np.float32(0) if total > 1 else np.float32(2), dtype=np.float32)
    raise ArithmeticError(f"no float32 variance makes var + {eps} exactly 1")
