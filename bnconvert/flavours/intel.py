"""Intel Caffe's ``BatchNorm`` with the Scale merged in (MKL/MKLDNN engines).

Blobs: mean·s, var·s, s, gamma[, beta] — BVLC's BatchNorm and Scale in one layer. Its MKLDNN
engine sets ``use_global_stats = (phase == TEST)`` unless the field is written
(``mkldnn_batch_norm_layer.cpp``), so ``use_global_stats: false`` means batch statistics, as
in BVLC. ``batch_norm_param.relu`` fuses a ReLU into the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fold.checks import BlobLayout
from ..read.net import Layer
from .base import flavour
from .bvlc import Bvlc, blob_count, nvidia_hint, scaled_layout

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference import CaffeChain

__all__ = ["Intel"]


@flavour
class Intel(Bvlc):
    """Intel Caffe BatchNorm: 4 or 5 blobs, no NVIDIA fork fields. BVLC's rules (eps, what
    ``use_global_stats`` means, the scale factor, the fused-ReLU note, the running average of
    blobs 0-2, which its MKL engines keep) with the Scale merged."""

    id = "intel"
    title = "Intel Caffe BatchNorm (merged Scale)"
    layer_type = "BatchNorm"

    def claims(self, layer: Layer) -> bool:
        from .nvcaffe import digits_layout

        return not nvidia_hint(layer) and blob_count(layer) in (4, 5) \
            and not digits_layout(layer)

    def fused_affine(self, layer: Layer) -> bool:
        return layer.blobs is not None and len(layer.blobs) > 3

    def layout(self, layer: Layer) -> BlobLayout:
        count = 5 if blob_count(layer) == 5 else 4
        affine = ((3, "gamma (blob 3)"), (4, "beta (blob 4)"))[:count - 3]
        return scaled_layout("mean·s, variance·s, s, gamma[, beta]", count, affine)

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """BVLC's statistics from blobs 0-2; weight = gamma (blob 3), bias = beta (blob 4)."""
        from ..fold import batch_norm as fb
        from ..fold.numeric import fold_affine

        bn = chain.batch_norm
        count = len(bn.blobs or ())
        blobs = fb.expect_blobs(net, bn, 5 if count == 5 else 4,
                                "mean·s, variance·s, s, gamma[, beta]")
        stats = fb.scaled_statistics(net, chain, options, self, blobs[:3])
        gamma = fb.vector(blobs[3])
        beta = fb.vector(blobs[4]) if count == 5 else None
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
