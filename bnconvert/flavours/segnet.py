"""SegNet/ENet's ``BN`` layer (alexgkendall/caffe-segnet ``bn_layer.cpp``): blobs scale, shift
(1, C, 1, 1); ``bn_param { bn_mode scale_filler shift_filler }``. ``INFERENCE``:
``y = scale·x + shift``. ``LEARN`` (the default) normalizes with each batch's statistics in
every phase, ``var = E[x²] − E[x]²``, eps 1e-9 (hard-coded). It keeps no running averages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fold.checks import BlobLayout
from ..layers.normalization import BNParams
from ..read.net import Layer
from .base import Flavour, flavour

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference_forks import ForkChain

__all__ = ["SegNet", "SEGNET_KEYS", "SEGNET_EPS", "MODULE_EPS", "bn_params"]

SEGNET_KEYS = frozenset({"bn_mode", "scale_filler", "shift_filler"})
SEGNET_EPS = 1e-9  # bn_layer.cpp: var_eps_ = 1e-9, hard-coded (a float32 in the fork)
#: INFERENCE has no eps: the converted module runs with 1e-5 and running_var = 1 − eps exactly
MODULE_EPS = 1e-5


def bn_params(layer: Layer) -> BNParams:
    """The fork ``bn_param`` of a ``BN`` layer (empty when unreadable: reported on its own)."""
    params = layer.params
    return params if isinstance(params, BNParams) else BNParams()


def inference(layer: Layer) -> bool:
    """``bn_mode: INFERENCE`` (by name or number); LEARN is the default."""
    return bn_params(layer).bn_mode == "INFERENCE"


@flavour
class SegNet(Flavour):
    """SegNet/ENet BN: 2 blobs, or SegNet's ``bn_param`` fields without blobs."""

    id = "segnet"
    title = "SegNet/ENet BN"
    layer_type = "BN"

    def claims(self, layer: Layer) -> bool:
        from .yjxiong import YJXIONG_KEYS

        keys = bn_params(layer).fields
        if layer.blobs is not None:
            return len(layer.blobs) == 2 and not keys & YJXIONG_KEYS
        return bool(keys & SEGNET_KEYS)

    def fused_affine(self, layer: Layer) -> bool:
        return True

    def layout(self, layer: Layer) -> BlobLayout:

        return BlobLayout(2, "scale, shift", ((0, "scale (blob 0)"), (1, "shift (blob 1)")))

    def eps(self, layer: Layer) -> float | None:
        return None if inference(layer) else SEGNET_EPS

    def batch_statistics(self, layer: Layer) -> str | None:
        return None if inference(layer) else "bn_mode is LEARN (SegNet's default)"

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """No running averages: nothing to continue (``continue_segnet``)."""
        from ..fold.momentum_forks import continue_segnet

        return continue_segnet()

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """Mean 0 and a variance with ``float32(var + eps) == 1``: the BN computes
        ``scale·x + shift`` (INFERENCE); LEARN is converted the same way with eps 1e-9, warned."""
        import numpy as np

        from ..fold import batch_norm as fb
        from ..fold.numeric import unit_variance_for

        bn = chain.batch_norm
        scale_blob, shift_blob = fb.expect_blobs(net, bn, 2, "scale, shift")
        scale, shift = fb.vector(scale_blob), fb.vector(shift_blob)
        channels = scale.size
        eps = MODULE_EPS if inference(bn) else SEGNET_EPS
        var = np.full(channels, unit_variance_for(eps), np.float32)
        stats = fb.Statistics(channels, np.zeros(channels, np.float32), var, eps, None,
                              fb.flavour_warnings(net, chain, options, self))
        if chain.rank == 2:
            stats = stats.warn(f"{bn.name}: SegNet's BN reshapes a 2-D (N,C) input to (N,C,1,1)")
        return fb.make_record(chain, stats, scale, shift, self)

    def read_reference(self, net: Net, chain: BatchNormChain) -> ForkChain:
        """Blobs scale, shift; the formula by ``bn_mode``."""
        import numpy as np

        from ..verify.reference import blob_vector, layer_blobs
        from ..verify.reference_forks import ForkChain, common_fields

        bn = chain.batch_norm
        scale_blob, shift_blob = layer_blobs(net, bn, 2, "scale, shift")
        scale = blob_vector(net, bn, scale_blob, "blob 0 (scale)", None)
        shift = blob_vector(net, bn, shift_blob, "blob 1 (shift)", scale.size)
        is_inference = inference(bn)
        notes = ("SegNet's BN outputs (N, C, 1, 1) for a 2-D input; values compared as (N, C)",) \
            if chain.rank == 2 else ()
        return ForkChain(formula="scale-shift" if is_inference else "batch", mean=None,
                         var=None, eps=None if is_inference else np.float32(SEGNET_EPS),
                         gamma=scale, beta=shift, bias=None, use_global_stats=is_inference,
                         notes=notes, **common_fields(net, chain, self.id))


@flavour
class UndecidedBN(Flavour):
    """A ``BN`` layer with neither blobs nor a ``bn_param`` field that tells SegNet from
    PSPNet/yjxiong (a prototxt alone): the caffemodel's blob count decides."""

    id = "bn-unknown"
    title = "BN (SegNet or PSPNet style: the caffemodel's blobs tell)"
    layer_type = "BN"
    selectable = False

    def claims(self, layer: Layer) -> bool:
        from .yjxiong import YJXIONG_KEYS

        return layer.blobs is None and not bn_params(layer).fields & (SEGNET_KEYS | YJXIONG_KEYS)

    def fused_affine(self, layer: Layer) -> bool:
        return True

    def eps(self, layer: Layer) -> float | None:
        return None

    def notes(self, layer: Layer) -> tuple[str, ...]:
        return ("BN layer with no bn_param field that tells SegNet from PSPNet/yjxiong: the "
                "caffemodel's blob count decides (2: SegNet, 4: PSPNet)",)
