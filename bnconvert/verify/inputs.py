"""Test inputs for one BN chain: seeded random values that expose mean and variance errors, and
the user's ``--input`` where it reaches the BN unchanged.

Random input, per channel c: ``x = mean_c + std_c·z`` with ``z`` uniform in [-8, 8], where
``mean_c`` and ``std_c = sqrt(var_c + eps)`` are the layer's effective running statistics (0 and 1
for SegNet's BN, which stores none: any input shows a wrong scale or shift). Values
that many standard deviations wide make ``γ·x̂`` dominate the output, so a wrong mean, variance,
scale factor or eps shows at full size in the error measure.
"""

from __future__ import annotations

import numpy as np

from .reference import CaffeChain
from .reference_forks import ReferenceChain

__all__ = ["random_input", "input_shape", "input_centre", "SPREAD"]

SPREAD = 8.0
_SHAPES = {2: (64,), 3: (8, 16), 4: (4, 6, 6), 5: (2, 3, 4, 4)}


def input_shape(rank: int | None, channels: int) -> tuple[int, ...]:
    """The random input's shape: (N, C, spatial...) in the layer's rank (unknown -> 4-D)."""
    dims = _SHAPES.get(rank if rank is not None else 4, _SHAPES[4])
    return (dims[0], channels) + dims[1:]


def input_centre(chain: ReferenceChain) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the mean and ``sqrt(var + eps)`` the layer's stored statistics give, in
    float64; ``(0, 1)`` for a layer without stored statistics (SegNet's BN)."""
    if isinstance(chain, CaffeChain):
        s = float(chain.scale_factor)
        f = 0.0 if s == 0 else 1.0 / s
        mean = chain.mean_acc.astype(np.float64) * f
        var = chain.var_acc.astype(np.float64) * f
    elif chain.mean is not None and chain.var is not None:
        mean, var = chain.mean.astype(np.float64), chain.var.astype(np.float64)
    else:
        return np.zeros(chain.channels), np.ones(chain.channels)
    return mean, np.sqrt(np.maximum(var, 0.0) + float(chain.module_eps))


def random_input(chain: ReferenceChain, rank: int | None, seed: int, index: int) -> np.ndarray:
    """A float32 input for ``chain``, reproducible from ``(seed, index)``.

    Args:
        chain: the Caffe parameters (the effective running statistics centre the values).
        rank: the BN input's rank (None -> 4).
        seed: the user's seed; index: the chain's position (each chain gets its own stream).

    Example:
        >>> random_input(EXAMPLE_CHAIN, 4, seed=0, index=0).shape
        (4, 16, 6, 6)
    """
    rng = np.random.default_rng([seed, index])
    mean, std = input_centre(chain)
    shape = input_shape(rank, chain.channels)
    z = rng.uniform(-SPREAD, SPREAD, size=shape)
    broadcast = (1, -1) + (1,) * (len(shape) - 2)
    return (mean.reshape(broadcast) + std.reshape(broadcast) * z).astype(np.float32)
