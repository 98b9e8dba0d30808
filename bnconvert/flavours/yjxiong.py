"""PSPNet/ICNet/TSN's ``BN`` layer (yjxiong/caffe, hszhao/PSPNet ``bn_layer.cpp``): blobs slope,
bias, moving mean, moving variance; ``bn_param { slope_filler bias_filler momentum eps frozen
engine }``. TEST: ``y = slope·(x − mean)·(var + eps)^−½ + bias`` with eps from ``bn_param``
(default 1e-5) as float32; the fork's cuDNN builds raise eps to 1e-5 (``--clamp-eps``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fold.checks import BlobLayout
from ..layers.base import float32
from ..read.net import Layer
from .base import Flavour, flavour
from .segnet import SEGNET_KEYS, bn_params

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference_forks import ForkChain

__all__ = ["YjXiong", "YJXIONG_KEYS", "CUDNN_MIN_EPS"]

YJXIONG_KEYS = frozenset({"slope_filler", "bias_filler", "frozen", "momentum", "eps", "engine"})
CUDNN_MIN_EPS = float32(1e-5)  # CUDNN_BN_MIN_EPSILON, the fork's cuDNN builds


@flavour
class YjXiong(Flavour):
    """PSPNet/yjxiong BN: 4 blobs, or PSPNet's ``bn_param`` fields without blobs."""

    id = "yjxiong"
    title = "PSPNet/yjxiong BN"
    layer_type = "BN"
    running_average = "fixed-factor"

    def claims(self, layer: Layer) -> bool:
        keys = bn_params(layer).fields
        if layer.blobs is not None:
            return len(layer.blobs) == 4 and not keys & SEGNET_KEYS
        return bool(keys & YJXIONG_KEYS) and not keys & SEGNET_KEYS

    def fused_affine(self, layer: Layer) -> bool:
        return True

    def layout(self, layer: Layer) -> BlobLayout:

        return BlobLayout(4, "slope, bias, moving mean, moving variance",
                          ((0, "slope (blob 0)"), (1, "bias (blob 1)"), (2, "mean (blob 2)"),
                           (3, "variance (blob 3)")), variance=3)

    def eps(self, layer: Layer) -> float:
        eps = bn_params(layer).eps
        return float32(1e-5) if eps is None else eps

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """The fork's factor ``1 − bn_param.momentum`` (0.9 unset): exact with the CUDNN engine;
        the CAFFE engine (PSPNet's only one) and an unwritten engine are approximate."""
        from dataclasses import replace

        from ..fold.momentum_forks import continue_pspnet, continue_yjxiong

        params = bn_params(layer)
        momentum = 0.9 if params.momentum is None else params.momentum
        if params.engine == "CUDNN":
            return continue_yjxiong(momentum, params.frozen, "CUDNN", where)
        if params.engine == "CAFFE":
            return continue_yjxiong(momentum, params.frozen, "CAFFE", where)
        plan = continue_pspnet(momentum, params.frozen, where)
        if plan.exact != "approximate":
            return plan
        return replace(plan, note=plan.note + "; exact at every step if the fork ran the CUDNN "
                       "engine (yjxiong/caffe's default with cuDNN >= 5; the prototxt does not "
                       "say: write bn_param.engine to tell)")

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """Stored statistics and slope/bias as they are; eps from ``bn_param``."""
        from ..fold import batch_norm as fb

        bn = chain.batch_norm
        blobs = fb.expect_blobs(net, bn, 4, "slope, bias, moving mean, moving variance")
        stats = fb.stored_statistics(net, chain, options, self, blobs[2], blobs[3])
        return fb.make_record(chain, stats, fb.vector(blobs[0]), fb.vector(blobs[1]), self)

    def read_reference(self, net: Net, chain: BatchNormChain) -> ForkChain:
        """Blobs slope, bias, moving mean, moving variance; eps from ``bn_param``, not clamped."""
        import numpy as np

        from ..verify.reference import blob_vector, layer_blobs
        from ..verify.reference_forks import ForkChain, common_fields

        bn = chain.batch_norm
        blobs = layer_blobs(net, bn, 4, "slope, bias, moving mean, moving variance")
        slope = blob_vector(net, bn, blobs[0], "blob 0 (slope)", None)
        bias, mean, var = (blob_vector(net, bn, blob, what, slope.size) for blob, what in zip(
            blobs[1:], ("blob 1 (bias)", "blob 2 (moving mean)", "blob 3 (moving variance)"),
            strict=True))
        return ForkChain(formula="inv-std", mean=mean, var=var, eps=np.float32(self.eps(bn)),
                         gamma=slope, beta=bias, bias=None, use_global_stats=True,
                         **common_fields(net, chain, self.id))
