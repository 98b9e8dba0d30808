"""The canonical record that crosses from folding to writing: one ``FoldedBatchNorm`` per BN.

A writer needs nothing else: it never looks at Caffe messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChainLayers", "FoldedBatchNorm"]


@dataclass(frozen=True)
class ChainLayers:
    """The Caffe layers one BN record was folded from, by layer name (None where absent)."""

    batch_norm: str
    scale: str | None = None
    bias: str | None = None
    batch_norm_type: str = "BatchNorm"

    def names(self) -> tuple[str, ...]:
        """The layer names in graph order, absent ones left out."""
        return tuple(n for n in (self.batch_norm, self.scale, self.bias) if n is not None)


@dataclass(frozen=True, eq=False)
class FoldedBatchNorm:
    """Caffe's effective TEST-phase batch normalization of one chain, in PyTorch's terms.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel (axis 1).
    ``weight``/``bias`` are None for a non-affine BN (a BatchNorm with no Scale). Arrays are
    float32 of shape ``(channels,)`` and read-only.

    Attributes:
        key: the state_dict key prefix (from the BatchNorm layer name, see ``naming``).
        layers: the Caffe layers folded into this record.
        channels: number of channels C.
        rank: rank of the BN's input blob (2 for (N,C), 4 for (N,C,H,W), 5 for (N,C,D,H,W)),
            or None where the net does not tell.
        eps: Caffe's eps as a float32 value widened to float.
        scale_factor: the BatchNorm's third blob (s), None for layers without one.
        use_global_stats: False when Caffe normalizes with batch statistics in TEST.
        flavour: which BN implementation the layer came from (``"bvlc"``, forks later).
        warnings: human-readable notes about this record (zero scale factor, batch stats, ...).
    """

    key: str
    layers: ChainLayers
    channels: int
    rank: int | None
    eps: float
    running_mean: np.ndarray
    running_var: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None
    scale_factor: float | None = None
    use_global_stats: bool = True
    flavour: str = "bvlc"
    warnings: tuple[str, ...] = field(default=())

    @property
    def affine(self) -> bool:
        """True when the record carries weight and bias."""
        return self.weight is not None

    @property
    def torch_class(self) -> str:
        """``BatchNorm1d``/``2d``/``3d`` from the input rank (2d where the rank is unknown)."""
        return {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}.get(
            self.rank or 4, "BatchNorm2d"
        )
