"""Layer types of Caffe forks that bnconvert knows by name (their parameters are fork fields,
kept in the layer's ``extras``). The fork BN layer is in ``normalization``."""

from __future__ import annotations

from dataclasses import dataclass

from .base import NoParams, reads

__all__ = ["ForkLearnedParams", "ForkParams"]


@reads("Normalize", "EltwiseAffine", fork=True)
@dataclass(frozen=True)
class ForkLearnedParams(NoParams):
    """Fork layers with learned blobs (SSD's ``Normalize``, PR #2996's ``EltwiseAffine``)."""

    learned = True


@reads("ReLU6", "ShuffleChannel", "Axpy", "Interp", "Upsample", fork=True)
@dataclass(frozen=True)
class ForkParams(NoParams):
    """Common fork layers without learned blobs."""
