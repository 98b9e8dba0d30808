"""Test inputs for one BN chain: seeded random values that expose mean and variance errors, and
the user's ``--input`` where it reaches the BN unchanged.

Random input, per channel c: ``x = mean_c + std_c·z`` with ``z`` uniform in [-8, 8], where
``mean_c`` and ``std_c = sqrt(var_c + eps)`` are the layer's effective running statistics. Values
that many standard deviations wide make ``γ·x̂`` dominate the output, so a wrong mean, variance,
scale factor or eps shows at full size in the error measure.
"""

from __future__ import annotations

import numpy as np

from .reference import CaffeChain

__all__ = ["random_input", "input_shape", "SPREAD"]

SPREAD = 8.0
_SHAPES = {2: (64,), 3: (8, 16), 4: (4, 6, 6), 5: (2, 3, 4, 4)}


def input_shape(rank: int | None, channels: int) -> tuple[int, ...]:
    """The random input's shape: (N, C, spatial...) in the layer's rank (unknown -> 4-D)."""
    dims = _SHAPES.get(rank if rank is not None else 4, _SHAPES[4])
    return (dims[0], channels) + dims[1:]


def random_input(chain: CaffeChain, rank: int | None, seed: int, index: int) -> np.ndarray:
    """A float32 input for ``chain``, reproducible from ``(seed, index)``.

    Args:
        chain: the Caffe parameters (the effective running statistics centre the values).
        rank: the BN input's rank (None -> 4).
        seed: the user's seed; index: the chain's position (each chain gets its own stream).

    Example:
        >>> random_input(chain, 4, seed=0, index=0).shape  # doctest: +SKIP
        (4, 16, 6, 6)
    """
    rng = np.random.default_rng([seed, index])
    s = float(chain.scale_factor)
    f = 0.0 if s == 0 else 1.0 / s
    mean = chain.mean_acc.astype(np.float64) * f
    var = np.maximum(chain.var_acc.astype(np.float64) * f, 0.0)
    std = np.sqrt(var + float(chain.eps))
    shape = input_shape(rank, chain.channels)
    z = rng.uniform(-SPREAD, SPREAD, size=shape)
    broadcast = (1, -1) + (1,) * (len(shape) - 2)
    return (mean.reshape(broadcast) + std.reshape(broadcast) * z).astype(np.float32)
