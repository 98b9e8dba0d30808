"""Intel Caffe's ``BatchNorm`` with the Scale merged in (MKL/MKLDNN engines).

Blobs: mean·s, var·s, s, gamma[, beta] — BVLC's BatchNorm and Scale in one layer. Its MKLDNN
engine sets ``use_global_stats = (phase == TEST)`` unless the field is written
(``mkldnn_batch_norm_layer.cpp``), so ``use_global_stats: false`` means batch statistics, as
in BVLC. ``batch_norm_param.relu`` fuses a ReLU into the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..read.net import Layer
from .base import Flavour, flavour
from .bvlc import (
    Bvlc,
    batch_norm_params,
    blob_count,
    fused_relu_notes,
    global_stats_reason,
    nvidia_hint,
)

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference import CaffeChain

__all__ = ["Intel"]


@flavour
class Intel(Flavour):
    """Intel Caffe BatchNorm: 4 or 5 blobs, no NVIDIA fork fields."""

    id = "intel"
    title = "Intel Caffe BatchNorm (merged Scale)"
    layer_type = "BatchNorm"
    running_average = "scale-factor"

    def claims(self, layer: Layer) -> bool:
        from .nvcaffe import digits_layout

        return not nvidia_hint(layer) and blob_count(layer) in (4, 5) \
            and not digits_layout(layer)

    def fused_affine(self, layer: Layer) -> bool:
        return layer.blobs is not None and len(layer.blobs) > 3

    def eps(self, layer: Layer) -> float:
        return batch_norm_params(layer).eps

    def batch_statistics(self, layer: Layer) -> str | None:
        return global_stats_reason(layer)

    def notes(self, layer: Layer) -> tuple[str, ...]:
        return fused_relu_notes(layer)

    def scale_factor(self, layer: Layer) -> float | None:
        return Bvlc().scale_factor(layer)

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """BVLC's update of blobs 0-2 (Intel's MKL engines keep it): ``continue_caffe``."""
        return Bvlc().continuation(layer, scale_factor, where)

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """BVLC's statistics from blobs 0-2; weight = gamma (blob 3), bias = beta (blob 4)."""
        from ..fold import batch_norm as fb
        from ..fold.numeric import fold_affine

        bn = chain.batch_norm
        count = len(bn.blobs or ())
        blobs = fb.expect_blobs(net, bn, 5 if count == 5 else 4,
                                "mean·s, variance·s, s, gamma[, beta]")
        stats = fb.scaled_statistics(net, chain, options, self, blobs[:3])
        gamma = fb.per_channel(net, bn, blobs[3], "gamma (blob 3)", stats.channels)
        beta = fb.per_channel(net, bn, blobs[4], "beta (blob 4)", stats.channels) \
            if count == 5 else None
        weight, bias = fold_affine(gamma, beta, None, stats.channels)
        return fb.make_record(chain, stats, weight, bias, self)

    def read_reference(self, net: Net, chain: BatchNormChain) -> CaffeChain:
        """BVLC's BatchNorm on blobs 0-2, then gamma (blob 3) and beta (blob 4)."""
        from dataclasses import replace

        from ..verify.reference import blob_vector, layer_blobs, read_caffe_chain

        bn = chain.batch_norm
        count = len(bn.blobs or ())
        blobs = layer_blobs(net, bn, 5 if count == 5 else 4,
                            "mean·s, variance·s, s, gamma[, beta]")
        bvlc = read_caffe_chain(net, replace(chain, batch_norm=replace(bn, blobs=blobs[:3])))
        gamma = blob_vector(net, bn, blobs[3], "blob 3 (gamma)", bvlc.channels)
        beta = blob_vector(net, bn, blobs[4], "blob 4 (beta)", bvlc.channels) \
            if count == 5 else None
        storage = frozenset(b.source for b in blobs)
        return replace(bvlc, gamma=gamma, beta=beta, blob_storage=storage, flavour=self.id)
