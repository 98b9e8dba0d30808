"""Options that change how BN layers are read and what folding produces."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FoldOptions"]


@dataclass(frozen=True)
class FoldOptions:
    """Attributes:
    affine: give non-affine BNs weight 1 / bias 0 (for loaders requiring affine modules,
        e.g. cudnn's Torch7 BatchNormalization).
    strict: turn warnings that mean "PyTorch will not compute what Caffe computed"
        (``use_global_stats: false``, SegNet's LEARN mode) into errors.
    clamp_eps: raise PSPNet/yjxiong eps to 1e-5, as that fork's cuDNN builds do.
    flavour: the BN flavour id of every BN-like layer (``--flavor``), None to detect it.
    momentum: the momentum the converted BNs carry (``--momentum``): ``"caffe"`` (the one that
        continues Caffe's running averages), ``"default"`` (PyTorch's 0.1) or a number in
        [0, 1] (``bnconvert.fold.momentum.parse_momentum_option``; checked when folding).
    """

    affine: bool = False
    strict: bool = False
    clamp_eps: bool = False
    flavour: str | None = None
    momentum: str | float = "caffe"
