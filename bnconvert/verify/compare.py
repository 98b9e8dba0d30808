"""The error measure: per channel, the largest error relative to the magnitude of the terms the
output is made of, not element by element (where ``γ·x̂ + β`` cancelling to ~0 would inflate a
relative error without bound).

For channel c, with the reference's ``x̂ = (x - mean)/std``, Scale ``γ`` (1 without) and the
total shift ``β`` (Scale bias + Bias, 0 without)::

    magnitude_c = max(max|ref_c|, |γ_c|·max|x̂_c|, |γ_c·mean_c/std_c|, |β_c|, tiny)
    abs_err_c   = max|candidate_c - ref_c|
    rel_err_c   = abs_err_c / magnitude_c
    pass        ⇔ abs_err_c <= atol + rtol·magnitude_c   for every channel

``|γ·mean/std|`` is there because a correct float32 implementation may fold the BN into
``y = a·x + b`` (PyTorch's CPU kernel, OpenCV) and round at the size of ``a·x`` and ``b``.
With the default ``rtol = 1e-6`` (about 8 float32 ulps of the magnitude) float32 rounding
passes (measured ≤ 1.8e-7 on the fixtures) while eps added to the standard deviation instead
of the variance — which scales ``x̂`` by ``eps/σ - eps/(2σ²)``, ~3e-6 for σ ≈ 1..3 — fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference import ChainForward

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "Measurement", "measure"]

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 0.0
_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Measurement:
    """How far a candidate output is from the reference.

    Attributes:
        max_abs_err: largest ``|candidate - reference|`` (inf if the candidate has NaN/Inf).
        max_rel_err: largest per-channel ``abs_err_c / magnitude_c``.
        worst_channel: the channel with the largest relative error.
        failing_channels: channels whose error exceeds ``atol + rtol·magnitude_c``.
    """

    max_abs_err: float
    max_rel_err: float
    worst_channel: int
    failing_channels: tuple[int, ...]

    @property
    def passed(self) -> bool:
        """True when no channel is out of tolerance."""
        return not self.failing_channels

    def merged(self, other: Measurement) -> Measurement:
        """The worse of two measurements (e.g. the random input and the user's input)."""
        worst = self if self.max_rel_err >= other.max_rel_err else other
        failing = tuple(sorted(set(self.failing_channels) | set(other.failing_channels)))
        return Measurement(max(self.max_abs_err, other.max_abs_err), worst.max_rel_err,
                           worst.worst_channel, failing)


def _by_channel(array: np.ndarray) -> np.ndarray:
    """(N, C, ...) -> (C, N·spatial) in float64."""
    return np.moveaxis(np.asarray(array, np.float64), 1, 0).reshape(array.shape[1], -1)


def channel_magnitudes(forward: ChainForward, gamma: np.ndarray | None,
                       shift: np.ndarray | None) -> np.ndarray:
    """``magnitude_c`` of the module docstring, shape (C,)."""
    channels = forward.mean.size
    g = np.ones(channels) if gamma is None else np.abs(np.asarray(gamma, np.float64))
    b = np.zeros(channels) if shift is None else np.abs(np.asarray(shift, np.float64))
    ref = np.abs(_by_channel(forward.output)).max(axis=1)
    normalized = np.abs(_by_channel(forward.normalized)).max(axis=1)
    offset = np.abs(forward.mean.astype(np.float64) / forward.std.astype(np.float64))
    return np.maximum.reduce([ref, g * normalized, g * offset, b, np.full(channels, _TINY)])


def measure(candidate: np.ndarray, forward: ChainForward, gamma: np.ndarray | None,
            shift: np.ndarray | None, *, atol: float = DEFAULT_ATOL,
            rtol: float = DEFAULT_RTOL) -> Measurement:
    """Compare a candidate output with the reference forward of the same input.

    Args:
        candidate: the converted module's output, same shape as ``forward.output``.
        forward: the reference's forward (output and intermediate terms).
        gamma, shift: the chain's Scale and total shift (None where absent).
        atol, rtol: tolerances (see the module docstring).

    Example:
        >>> x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2)
        >>> ref = ChainForward(x, x, mean=np.zeros(2), std=np.ones(2))
        >>> m = measure(x, ref, None, None)
        >>> m.passed, m.max_rel_err
        (True, 0.0)
        >>> measure(x * 1.001, ref, None, None).failing_channels
        (0, 1)
    """
    if candidate.shape != forward.output.shape:
        raise ValueError(f"candidate shape {candidate.shape} != reference "
                         f"{forward.output.shape}")
    diff = np.abs(_by_channel(candidate) - _by_channel(forward.output))
    diff[~np.isfinite(diff)] = np.inf
    abs_err = diff.max(axis=1)
    magnitude = channel_magnitudes(forward, gamma, shift)
    rel_err = abs_err / magnitude
    failing = np.flatnonzero(~(abs_err <= atol + rtol * magnitude))
    worst = int(np.argmax(rel_err))
    return Measurement(float(abs_err.max()), float(rel_err[worst]), worst,
                       tuple(int(c) for c in failing))
