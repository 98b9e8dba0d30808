"""Folding a BatchNorm into the layer before it: pure numpy, inputs never mutated.

With the BN's per-channel multiplier ``m = γ / sqrt(var + eps)`` (γ = 1, β = 0 for a non-affine
BN), for every output channel ``o`` of the convolution / inner product::

    W'[o] = W[o] · m[o]
    b'[o] = (b[o] − mean[o]) · m[o] + β[o]        (b = 0 for a layer without bias)

computed in float64 and returned as float32. The output channel is axis 0 of a Convolution or
InnerProduct weight (C_out, ...) and axis 1 of a Deconvolution weight (C_in, C_out/group, ...)
within each group.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bn_multiplier", "fused_weight", "fused_bias"]


def bn_multiplier(var: np.ndarray, eps: float, gamma: np.ndarray | None) -> np.ndarray:
    """``γ / sqrt(var + eps)`` in float64 (γ = 1 when None).

    Example:
        >>> bn_multiplier(np.array([3.0], np.float32), 1.0, np.array([4.0], np.float32))
        array([2.])
    """
    scale = 1.0 / np.sqrt(var.astype(np.float64) + float(eps))
    return scale if gamma is None else scale * gamma.astype(np.float64)


def fused_weight(weight: np.ndarray, multiplier: np.ndarray, transposed: bool = False,
                 groups: int = 1) -> np.ndarray:
    """``W · m`` per output channel, float32.

    Args:
        weight: (C_out, ...) or, ``transposed``, a Deconvolution weight (C_in, C_out/groups,
            ...).
        multiplier: (C_out,) float64.
        groups: the Deconvolution's group (output channel ``g·C_out/groups + j`` is
            ``weight[g·C_in/groups : (g+1)·C_in/groups, j]``).

    Example:
        >>> fused_weight(np.ones((2, 1, 1, 1), np.float32), np.array([2.0, 3.0])).ravel()
        array([2., 3.], dtype=float32)
    """
    wide = weight.astype(np.float64)
    if not transposed:
        factor = multiplier.reshape((-1,) + (1,) * (weight.ndim - 1))
        return (wide * factor).astype(np.float32)
    c_in, per_group = weight.shape[0], weight.shape[1]
    grouped = wide.reshape((groups, c_in // groups, per_group) + weight.shape[2:])
    factor = multiplier.reshape((groups, 1, per_group) + (1,) * (weight.ndim - 2))
    return (grouped * factor).reshape(weight.shape).astype(np.float32)


def fused_bias(bias: np.ndarray | None, mean: np.ndarray, multiplier: np.ndarray,
               beta: np.ndarray | None) -> np.ndarray:
    """``(b − mean) · m + β``, float32 (b = 0 and β = 0 where None).

    Example:
        >>> fused_bias(None, np.array([1.0]), np.array([2.0]), np.array([0.5]))
        array([-1.5], dtype=float32)
    """
    b = np.zeros(mean.shape, np.float64) if bias is None else bias.astype(np.float64)
    out = (b - mean.astype(np.float64)) * multiplier
    if beta is not None:
        out = out + beta.astype(np.float64)
    return out.astype(np.float32)
