"""Options that change what folding produces."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FoldOptions"]


@dataclass(frozen=True)
class FoldOptions:
    """Attributes:
    affine: give non-affine BNs weight 1 / bias 0 (for loaders requiring affine modules,
        e.g. cudnn's Torch7 BatchNormalization).
    strict: turn warnings that mean "PyTorch will not compute what Caffe computed"
        (``use_global_stats: false``) into errors.
    """

    affine: bool = False
    strict: bool = False
