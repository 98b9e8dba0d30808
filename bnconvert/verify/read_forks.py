"""Read each BN flavour's raw caffemodel blobs for the reference, the way that implementation
loads them (registered by flavour id, see ``bnconvert.fold.flavours``). BVLC's layers are read by
``reference.read_caffe_chain``; Intel's merged BatchNorm is BVLC's BatchNorm and Scale in one
layer and is read into a ``CaffeChain``; the other forks into a ``ForkChain``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..errors import UnsupportedLayerError
from ..fold.chains import BatchNormChain
from ..fold.flavours import fork_param
from ..read.net import Net
from ..registry import Registry
from .reference import (
    CaffeChain,
    blob_vector,
    layer_blobs,
    read_caffe_chain,
    read_scale_bias,
    reads_net_input,
)
from .reference_forks import NVIDIA_MIN_EPS, SEGNET_EPS, ForkChain, ReferenceChain

__all__ = ["READERS", "read_reference_chain", "read_segnet", "read_yjxiong", "read_nvcaffe",
           "read_intel"]

_F32 = np.float32

Reader = Callable[[Net, BatchNormChain], ReferenceChain]
#: flavour id -> the function that reads its raw blobs for the reference
READERS: Registry[Reader] = Registry("reference reader")
_reads = READERS.register
_reads("bvlc")(read_caffe_chain)


def read_reference_chain(net: Net, chain: BatchNormChain) -> ReferenceChain:
    """The raw parameters of ``chain`` as its own implementation (BVLC or a fork) uses them.

    Raises:
        UnsupportedLayerError: no reference for the chain's flavour (e.g. unrecognized blobs).
        MissingLayerError, BlobError: missing weights, wrong blob count or shapes.

    Example:
        >>> read_reference_chain(net, chain).flavour  # doctest: +SKIP
        'yjxiong'
    """
    reader = READERS.get(chain.flavour)
    if reader is None:
        raise UnsupportedLayerError(
            f"the reference implements {', '.join(sorted(READERS))}; layer "
            f"{chain.batch_norm.name!r} ({chain.batch_norm.type}) is of flavour "
            f"{chain.flavour!r}")
    return reader(net, chain)


def _common(net: Net, chain: BatchNormChain) -> dict[str, object]:
    layers = chain.layers()
    return {"layers": tuple(x.name for x in layers), "flavour": chain.flavour,
            "rank": chain.rank, "reads_net_input": reads_net_input(net, chain.batch_norm),
            "blob_storage": frozenset(b.source for x in layers for b in x.blobs or ())}


@_reads("segnet")
def read_segnet(net: Net, chain: BatchNormChain) -> ForkChain:
    """SegNet/ENet ``BN``: blobs scale, shift (1,C,1,1); ``bn_mode`` LEARN (default) or
    INFERENCE (written by name or by number, 0 / 1)."""
    bn = chain.batch_norm
    scale_blob, shift_blob = layer_blobs(net, bn, 2, "scale, shift")
    scale = blob_vector(net, bn, scale_blob, "blob 0 (scale)", None)
    shift = blob_vector(net, bn, shift_blob, "blob 1 (shift)", scale.size)
    mode = str(fork_param(bn, "bn_param", "bn_mode", "LEARN")).strip().upper()
    inference = mode in ("INFERENCE", "1")
    notes = ("SegNet's BN outputs (N, C, 1, 1) for a 2-D input; values compared as (N, C)",) \
        if chain.rank == 2 else ()
    return ForkChain(formula="scale-shift" if inference else "batch", mean=None, var=None,
                     eps=None if inference else SEGNET_EPS, gamma=scale, beta=shift, bias=None,
                     use_global_stats=inference, notes=notes,
                     **_common(net, chain))  # type: ignore[arg-type]


@_reads("yjxiong")
def read_yjxiong(net: Net, chain: BatchNormChain) -> ForkChain:
    """PSPNet/yjxiong ``BN``: blobs slope, bias, moving mean, moving variance; eps from
    ``bn_param`` (default 1e-5) as float32, not clamped."""
    bn = chain.batch_norm
    blobs = layer_blobs(net, bn, 4, "slope, bias, moving mean, moving variance")
    slope = blob_vector(net, bn, blobs[0], "blob 0 (slope)", None)
    bias, mean, var = (blob_vector(net, bn, blob, what, slope.size) for blob, what in zip(
        blobs[1:], ("blob 1 (bias)", "blob 2 (moving mean)", "blob 3 (moving variance)"),
        strict=True))
    eps = _F32(float(fork_param(bn, "bn_param", "eps", 1e-5)))
    return ForkChain(formula="inv-std", mean=mean, var=var, eps=eps, gamma=slope, beta=bias,
                     bias=None, use_global_stats=True,
                     **_common(net, chain))  # type: ignore[arg-type]


@_reads("nvcaffe", "nvcaffe-digits")
def read_nvcaffe(net: Net, chain: BatchNormChain) -> ForkChain:
    """NVIDIA Caffe 0.17 ``BatchNorm``, as ``Net::CopyTrainedLayersFrom`` loads it."""
    bn = chain.batch_norm
    count = len(bn.blobs or ())
    blobs = layer_blobs(net, bn, 5 if count == 5 else 3,
                        "mean, variance, correction[, scale, bias]")
    if chain.flavour == "nvcaffe-digits":  # legacy order: scale, bias, mean, var, reserved
        blobs = (blobs[2], blobs[3], blobs[4], blobs[0], blobs[1])
    mean = blob_vector(net, bn, blobs[0], "mean", None)
    var = blob_vector(net, bn, blobs[1], "variance", mean.size)
    gamma = beta = bias = None
    if count == 5:
        gamma = blob_vector(net, bn, blobs[3], "scale", mean.size)
        beta = blob_vector(net, bn, blobs[4], "bias", mean.size)
    else:  # BVLC format: blobs 0 and 1 times 1.f / blob 2 (0 if blob 2 is 0)
        s = _F32(blob_vector(net, bn, blobs[2], "blob 2 (scale factor)", 1)[0])
        factor = _F32(0) if s == 0 else _F32(1) / s
        mean, var = mean * factor, var * factor
        gamma, beta, bias = read_scale_bias(net, chain, mean.size)
    param = bn.param_or_default("batch_norm_param")
    eps = max(_F32(param.eps if param is not None else 1e-5),  # type: ignore[attr-defined]
              NVIDIA_MIN_EPS)
    notes: tuple[str, ...] = ()
    explicit = bn.param("batch_norm_param")
    if explicit is not None and explicit.HasField("use_global_stats") \
            and not explicit.use_global_stats:  # type: ignore[attr-defined]
        notes = ("NVIDIA Caffe uses the stored statistics in TEST whatever use_global_stats "
                 "says",)
    return ForkChain(formula="inv-std", mean=mean, var=var, eps=eps, gamma=gamma, beta=beta,
                     bias=bias, use_global_stats=True, notes=notes,
                     **_common(net, chain))  # type: ignore[arg-type]


@_reads("intel")
def read_intel(net: Net, chain: BatchNormChain) -> CaffeChain:
    """Intel Caffe's merged ``BatchNorm``: mean·s, var·s, s, gamma[, beta] — BVLC's BatchNorm
    followed by a Scale, in one layer."""
    bn = chain.batch_norm
    count = len(bn.blobs or ())
    blobs = layer_blobs(net, bn, 5 if count == 5 else 4, "mean·s, variance·s, s, gamma[, beta]")
    bvlc = read_caffe_chain(net, replace(chain, batch_norm=replace(bn, blobs=blobs[:3])))
    gamma = blob_vector(net, bn, blobs[3], "blob 3 (gamma)", bvlc.channels)
    beta = blob_vector(net, bn, blobs[4], "blob 4 (beta)", bvlc.channels) if count == 5 else None
    storage = frozenset(b.source for b in blobs)
    return replace(bvlc, gamma=gamma, beta=beta, blob_storage=storage, flavour="intel")


