"""BVLC Caffe's ``BatchNorm`` (``batch_norm_layer.cpp``), followed by ``Scale`` [+ ``Bias``].

Blobs: mean·s, var·s, s (the scale factor). TEST: stored statistics unless
``use_global_stats: false`` (then each batch's own). ``f = 0 if s == 0 else 1/s`` (float32),
``y = (x − blob0·f) / sqrt(blob1·f + eps)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fold.checks import BlobLayout
from ..layers.normalization import BatchNormParams
from ..read.net import Layer
from .base import Flavour, flavour

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference import CaffeChain

__all__ = ["Bvlc", "batch_norm_params", "nvidia_hint", "blob_count", "fused_relu_notes",
           "global_stats_reason", "scaled_layout"]


def batch_norm_params(layer: Layer) -> BatchNormParams:
    """The layer's ``batch_norm_param`` (Caffe's defaults when unreadable: its problem is
    reported on its own)."""
    params = layer.params
    return params if isinstance(params, BatchNormParams) else BatchNormParams()


def nvidia_hint(layer: Layer) -> bool:
    """NVIDIA Caffe's fork fields (``scale_bias``, scale/bias fillers) are set."""
    params = batch_norm_params(layer)
    return params.scale_bias or params.scale_bias_fillers


def blob_count(layer: Layer) -> int | None:
    """Number of blobs, None when the caffemodel has none for the layer (or none was given)."""
    return None if layer.blobs is None else len(layer.blobs)


def fused_relu_notes(layer: Layer) -> tuple[str, ...]:
    """Intel Caffe's ``batch_norm_param.relu`` (a ReLU fused into the BatchNorm), whatever the
    blob layout."""
    if not batch_norm_params(layer).fused_relu:
        return ()
    return ("batch_norm_param.relu is set (Intel Caffe fuses a ReLU into this BatchNorm): the "
            "converted BN does not include it; add a ReLU after it",)


def scaled_layout(meaning: str, count: int = 3,
                  affine: tuple[tuple[int, str], ...] = ()) -> BlobLayout:
    """BVLC's blobs (mean·s, var·s, s), then a merged affine's (``affine``)."""

    return BlobLayout(count, meaning, ((0, "mean (blob 0)"), (1, "variance (blob 1)"), *affine),
                      variance=1, factor=2)


def global_stats_reason(layer: Layer) -> str | None:
    """BVLC's (and Intel's MKL engines') rule: ``use_global_stats: false`` means batch
    statistics in TEST; unset means stored statistics."""
    if batch_norm_params(layer).use_global_stats is False:
        return "use_global_stats is false"
    return None


@flavour
class Bvlc(Flavour):
    """BVLC BatchNorm: 3 blobs, no fork fields."""

    id = "bvlc"
    title = "BVLC BatchNorm"
    layer_type = "BatchNorm"
    running_average = "scale-factor"

    def claims(self, layer: Layer) -> bool:
        return not nvidia_hint(layer) and blob_count(layer) in (None, 3)

    def layout(self, layer: Layer) -> BlobLayout:
        return scaled_layout("mean accumulator, variance accumulator, scale factor")

    def eps(self, layer: Layer) -> float:
        return batch_norm_params(layer).eps

    def batch_statistics(self, layer: Layer) -> str | None:
        return global_stats_reason(layer)

    def notes(self, layer: Layer) -> tuple[str, ...]:
        return fused_relu_notes(layer)

    def scale_factor(self, layer: Layer) -> float | None:
        blobs = layer.blobs
        return blobs[2].first() if blobs and len(blobs) > 2 and blobs[2].spans else None

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """``continue_caffe`` with ``batch_norm_param.moving_average_fraction`` and blob 2."""
        from ..fold.momentum import continue_caffe

        return continue_caffe(batch_norm_params(layer).moving_average_fraction,
                              scale_factor or 0.0, where)

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """Running stats = blobs 0, 1 divided by the scale factor; weight/bias from the
        chain's Scale and Bias layers."""
        from ..fold import batch_norm as fb

        blobs = fb.expect_blobs(net, chain.batch_norm, 3, "scaled statistics")
        stats = fb.scaled_statistics(net, chain, options, self, blobs)
        weight, bias = fb.chain_affine(net, chain, stats.channels, options)
        return fb.make_record(chain, stats, weight, bias, self)

    def read_reference(self, net: Net, chain: BatchNormChain) -> CaffeChain:
        from ..verify.reference import read_caffe_chain

        return read_caffe_chain(net, chain)
