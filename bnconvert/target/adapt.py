"""Exact numeric adaptations when the target model's modules differ from Caffe's in ways that
do not change what the net computes: a convolution bias moved into the BatchNorm after it, and
a different BatchNorm eps moved into the running variance. Pure numpy, float64."""

from __future__ import annotations

import numpy as np

from ..errors import NumericError
from ..layers import float32

__all__ = ["fold_bias_into_running_mean", "adapt_eps", "same_eps"]


def fold_bias_into_running_mean(bias: np.ndarray, running_mean: np.ndarray) -> np.ndarray:
    """The BN running mean that absorbs the bias of the convolution right before it.

    ``BN(conv(x) + b) = ((conv(x) + b) - μ) / σ · γ + β = (conv(x) - (μ - b)) / σ · γ + β``,
    so a target convolution without bias followed by a BN with ``μ' = μ - b`` computes the same.

    Args:
        bias: the Caffe convolution's bias, shape (C,).
        running_mean: the following BN's running mean μ, shape (C,).

    Returns:
        ``μ - b`` in float64.

    Example:
        >>> fold_bias_into_running_mean(np.array([1.0, -2.0]), np.array([0.5, 0.5])).tolist()
        [-0.5, 2.5]
    """
    if bias.shape != running_mean.shape:
        raise NumericError(f"a bias of shape {bias.shape} cannot fold into a running mean of "
                           f"shape {running_mean.shape}")
    return running_mean.astype(np.float64) - bias.astype(np.float64)


def same_eps(eps_caffe: float, eps_target: float) -> bool:
    """True when both eps are the same float32 value (the value a float32 BN adds).

    Example:
        >>> same_eps(9.999999747378752e-06, 1e-5), same_eps(1e-3, 1e-5)
        (True, False)
    """
    return float32(eps_caffe) == float32(eps_target)


def adapt_eps(running_var: np.ndarray, eps_caffe: float, eps_target: float,
              layer: str = "") -> np.ndarray:
    """The running variance that makes a BN with ``eps_target`` compute what Caffe's with
    ``eps_caffe`` computed: ``var' + eps_target = var + eps_caffe``.

    Args:
        running_var: Caffe's effective running variance, shape (C,).
        eps_caffe, eps_target: the two eps values.
        layer: the Caffe layer, for the error message.

    Returns:
        ``var + eps_caffe - eps_target`` in float64.

    Raises:
        NumericError: a channel's adapted variance would be negative (the target's eps is
            larger than Caffe's variance plus eps: no variance makes the target equal).

    Example:
        >>> adapt_eps(np.array([1.0]), 0.5, 0.25).tolist()
        [1.25]
    """
    adapted = running_var.astype(np.float64) + float(eps_caffe) - float(eps_target)
    negative = np.flatnonzero(adapted < 0)
    if negative.size:
        raise NumericError(
            f"layer {layer!r}: the target's BatchNorm eps {eps_target:g} exceeds Caffe's "
            f"variance + eps ({eps_caffe:g}) in {negative.size} channel(s), first channel "
            f"{int(negative[0])} (variance {float(running_var[negative[0]]):g}): no running "
            "variance reproduces Caffe there; build the target with eps="
            f"{float32(eps_caffe)!r}")
    return adapted
