"""NVIDIA Caffe 0.17's ``BatchNorm`` (``batch_norm_layer.cpp``): eps = max(eps, 1e-5); the stored
statistics in TEST whatever ``use_global_stats`` says; blobs mean, var, correction (1) and, with
``scale_bias``, scale and bias. A 3-blob BVLC-format file is divided by blob 2 on load
(``Net::CopyTrainedLayersFrom``) and followed by a Scale like BVLC's. The legacy DIGITS order is
scale, bias, mean, var, reserved (the ``nvcaffe-digits`` variant). Blobs may be in NVIDIA's
``raw_data`` (FLOAT, FLOAT16, DOUBLE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fold.checks import BlobLayout
from ..layers.base import float32
from ..read.net import Layer
from .base import Flavour, flavour
from .bvlc import Bvlc, batch_norm_params, blob_count, nvidia_hint, scaled_layout

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference_forks import ForkChain

__all__ = ["NvCaffe", "NvCaffeDigits", "digits_layout", "MIN_EPS"]

MIN_EPS = float32(1e-5)  # batch_norm_layer.cpp: eps_ = max(eps, 0.00001f)
_BLOB_NAMES = ("mean", "variance", "correction", "scale", "bias")


def digits_layout(layer: Layer) -> bool:
    """Five blobs, the last of one element: DIGITS' scale, bias, mean, var, reserved."""
    return bool(layer.blobs) and len(layer.blobs or ()) == 5 \
        and (layer.blobs or ())[4].shape_count == 1


@flavour
class NvCaffe(Flavour):
    """NVIDIA Caffe BatchNorm: ``scale_bias`` (or its fillers) set, 3 or 5 blobs."""

    id = "nvcaffe"
    title = "NVIDIA Caffe BatchNorm"
    layer_type = "BatchNorm"
    running_average = "fixed-factor"
    order: tuple[int, ...] = (0, 1, 2, 3, 4)

    def claims(self, layer: Layer) -> bool:
        return nvidia_hint(layer) and blob_count(layer) in (None, 3, 5) \
            and not digits_layout(layer)

    def refine(self, layer: Layer) -> Flavour:
        return NvCaffeDigits() if digits_layout(layer) else self

    def fused_affine(self, layer: Layer) -> bool:
        return nvidia_hint(layer) if layer.blobs is None else len(layer.blobs) == 5

    def layout(self, layer: Layer) -> BlobLayout:

        meaning = "mean, variance, correction[, scale, bias]"
        if blob_count(layer) != 5:
            return scaled_layout(meaning)
        o = self.order
        return BlobLayout(5, meaning, ((o[0], "mean"), (o[1], "variance"), (o[3], "scale"),
                                       (o[4], "bias")), variance=o[1])

    def eps(self, layer: Layer) -> float:
        return max(batch_norm_params(layer).eps, MIN_EPS)

    def notes(self, layer: Layer) -> tuple[str, ...]:
        if batch_norm_params(layer).use_global_stats is False:
            return ("NVIDIA Caffe uses the stored statistics in TEST whatever "
                    "use_global_stats says",)
        return ()

    def scale_factor(self, layer: Layer) -> float | None:
        return Bvlc().scale_factor(layer) if blob_count(layer) == 3 else None

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """NVIDIA's own update (``continue_nvcaffe``): factor ``1 − moving_average_fraction``,
        whatever the blob layout; the CUDNN engine unless ``engine: CAFFE`` is written."""
        from ..fold.momentum_forks import continue_nvcaffe

        params = batch_norm_params(layer)
        if params.engine == "CAFFE":
            return continue_nvcaffe(params.moving_average_fraction, "CAFFE", where)
        return continue_nvcaffe(params.moving_average_fraction, "CUDNN", where)

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """5 blobs: stats and affine as stored; 3 blobs: BVLC's division and the chain's
        Scale/Bias."""
        from ..fold import batch_norm as fb

        bn = chain.batch_norm
        count = len(bn.blobs or ())
        fb.expect_blobs(net, bn, 5 if count == 5 else 3,
                        "mean, variance, correction[, scale, bias]")
        assert bn.blobs is not None
        blobs = {_BLOB_NAMES[i]: bn.blobs[j] for i, j in enumerate(self.order[:count])}
        if count == 3:
            stats = fb.scaled_statistics(net, chain, options, self, tuple(blobs.values()))
            weight, bias = fb.chain_affine(net, chain, stats.channels, options)
            return fb.make_record(chain, stats, weight, bias, self)
        stats = fb.stored_statistics(net, chain, options, self, blobs["mean"],
                                     blobs["variance"])
        weight, bias = fb.vector(blobs["scale"]), fb.vector(blobs["bias"])
        return fb.make_record(chain, stats, weight, bias, self)

    def read_reference(self, net: Net, chain: BatchNormChain) -> ForkChain:
        """As ``Net::CopyTrainedLayersFrom`` loads it: 5 blobs as stored; 3 blobs times
        ``1.f / blob2`` (0 if blob 2 is 0), then the following Scale/Bias layers."""
        import numpy as np

        from ..verify.reference import blob_vector, layer_blobs, read_scale_bias
        from ..verify.reference_forks import ForkChain, common_fields

        bn = chain.batch_norm
        count = len(bn.blobs or ())
        stored = layer_blobs(net, bn, 5 if count == 5 else 3,
                             "mean, variance, correction[, scale, bias]")
        blobs = tuple(stored[j] for j in self.order[:count])
        mean = blob_vector(net, bn, blobs[0], "mean", None)
        var = blob_vector(net, bn, blobs[1], "variance", mean.size)
        gamma = beta = bias = None
        if count == 5:
            gamma = blob_vector(net, bn, blobs[3], "scale", mean.size)
            beta = blob_vector(net, bn, blobs[4], "bias", mean.size)
        else:
            s = np.float32(blob_vector(net, bn, blobs[2], "blob 2 (scale factor)", 1)[0])
            factor = np.float32(0) if s == 0 else np.float32(1) / s
            mean, var = mean * factor, var * factor
            gamma, beta, bias = read_scale_bias(net, chain, mean.size)
        eps = max(np.float32(batch_norm_params(bn).eps), np.float32(MIN_EPS))
        return ForkChain(formula="inv-std", mean=mean, var=var, eps=eps, gamma=gamma, beta=beta,
                         bias=bias, use_global_stats=True, notes=self.notes(bn),
                         **common_fields(net, chain, self.id))


@flavour
class NvCaffeDigits(NvCaffe):
    """NVIDIA Caffe BatchNorm saved in DIGITS' legacy blob order."""

    id = "nvcaffe-digits"
    title = "NVIDIA Caffe BatchNorm (legacy DIGITS blob order)"
    selectable = False
    order = (2, 3, 4, 0, 1)

    def claims(self, layer: Layer) -> bool:
        return digits_layout(layer)

    def refine(self, layer: Layer) -> Flavour:
        return self

    def fused_affine(self, layer: Layer) -> bool:
        return True
