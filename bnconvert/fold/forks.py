"""Fold the BN layers of Caffe forks into canonical records, each by its fork's own formula
(``../shared`` fixtures' README and each fork's source):

- SegNet/ENet ``BN``: ``INFERENCE``: ``y = scale·x + shift``; ``LEARN`` (default): batch stats.
- PSPNet/yjxiong ``BN``: ``y = slope·(x − mean)/sqrt(var + eps) + bias``, eps from ``bn_param``.
- NVIDIA Caffe ``BatchNorm``: eps = max(eps, 1e-5); stored statistics in TEST whatever
  ``use_global_stats`` says; 5 blobs = mean, var, correction, scale, bias; a 3-blob BVLC file is
  divided by blob 2 on load; legacy DIGITS order (scale, bias, mean, var, reserved) reordered.
- Intel Caffe merged ``BatchNorm``: mean·s, var·s, s, gamma[, beta].
"""

from __future__ import annotations

import numpy as np

from ..read.net import Net
from ..records import FoldedBatchNorm
from .batch_norm import (
    batch_norm_eps,
    batch_statistics_warning,
    chain_affine,
    check_stats,
    expect_blobs,
    folds,
    make_record,
    per_channel,
    uses_global_stats,
)
from .chains import BatchNormChain
from .flavours import declared_eps, fork_param
from .numeric import clamp_eps, fold_affine, fold_running_stats, unit_variance_for
from .options import FoldOptions

__all__ = ["fold_segnet", "fold_yjxiong", "fold_nvcaffe", "fold_intel"]

SEGNET_EPS = 1e-9  # bn_layer.cpp: var_eps_ = 1e-9, hard-coded


@folds("segnet")
def fold_segnet(net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
    """SegNet/ENet ``BN``: blobs scale, shift (1,C,1,1); no running statistics."""
    bn = chain.batch_norm
    scale_blob, shift_blob = expect_blobs(net, bn, 2, "scale, shift")
    scale = per_channel(net, bn, scale_blob, "scale (blob 0)", None)
    channels = scale.size
    shift = per_channel(net, bn, shift_blob, "shift (blob 1)", channels)
    warnings = list(chain.notes)
    if chain.rank == 2:
        warnings.append(f"{bn.name}: SegNet's BN reshapes a 2-D (N,C) input to (N,C,1,1)")
    mode = str(fork_param(bn, "bn_param", "bn_mode", "LEARN")).upper()
    if mode in ("INFERENCE", "1"):  # text format may give an enum by number
        eps = 1e-5  # any eps works: the variance below makes var + eps exactly 1
        var = np.full(channels, unit_variance_for(eps), np.float32)
        return make_record(chain, channels, eps, np.zeros(channels, np.float32), var, scale,
                           shift, "segnet", warnings)
    warnings.append(batch_statistics_warning(
        net, bn, options, "bn_mode is LEARN (SegNet's default)"))
    var = np.full(channels, unit_variance_for(SEGNET_EPS), np.float32)
    return make_record(chain, channels, SEGNET_EPS, np.zeros(channels, np.float32), var, scale,
                       shift, "segnet", warnings, use_global_stats=False)


@folds("yjxiong")
def fold_yjxiong(net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
    """PSPNet/yjxiong ``BN``: blobs slope, bias, moving mean, moving variance; no scale factor."""
    bn = chain.batch_norm
    blobs = expect_blobs(net, bn, 4, "slope, bias, moving mean, moving variance")
    slope = per_channel(net, bn, blobs[0], "slope (blob 0)", None)
    channels = slope.size
    bias, mean, var = (per_channel(net, bn, blob, what, channels) for blob, what in zip(
        blobs[1:], ("bias (blob 1)", "mean (blob 2)", "variance (blob 3)"), strict=True))
    eps = declared_eps(bn, "yjxiong")
    assert eps is not None
    warnings = list(chain.notes)
    if options.clamp_eps:
        eps = clamp_eps(eps)
    check_stats(net, bn, var, eps)
    return make_record(chain, channels, eps, mean, var, slope, bias, "yjxiong", warnings)


@folds("nvcaffe", "nvcaffe-digits")
def fold_nvcaffe(net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
    """NVIDIA Caffe 0.17 ``BatchNorm`` (3 or 5 blobs, or the legacy DIGITS order)."""
    bn = chain.batch_norm
    count = len(bn.blobs or ())
    expect_blobs(net, bn, 5 if count == 5 else 3, "mean, variance, correction[, scale, bias]")
    assert bn.blobs is not None
    order = (2, 3, 4, 0, 1) if chain.flavour == "nvcaffe-digits" else range(count)
    names = ("mean", "variance", "correction", "scale", "bias")
    blobs = {names[i]: bn.blobs[j] for i, j in enumerate(order)}
    mean = per_channel(net, bn, blobs["mean"], "mean", None)
    channels = mean.size
    var = per_channel(net, bn, blobs["variance"], "variance", channels)
    factor = None
    if count == 3:  # BVLC format: Net::CopyTrainedLayersFrom divides by blob 2 on load
        factor = float(per_channel(net, bn, blobs["correction"], "scale factor (blob 2)", 1)[0])
        mean, var = fold_running_stats(mean, var, factor)
    eps = declared_eps(bn, "nvcaffe")
    assert eps is not None
    check_stats(net, bn, var, eps)
    weight: np.ndarray | None
    bias: np.ndarray | None
    if count == 5:
        weight = per_channel(net, bn, blobs["scale"], "scale", channels)
        bias = per_channel(net, bn, blobs["bias"], "bias", channels)
    else:  # NVIDIA's 3-blob BatchNorm is followed by a Scale like BVLC's
        weight, bias = chain_affine(net, chain, channels, options)
    return make_record(chain, channels, eps, mean, var, weight, bias, chain.flavour,
                       list(chain.notes), scale_factor=factor)


@folds("intel")
def fold_intel(net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
    """Intel Caffe ``BatchNorm`` with the Scale merged in: mean·s, var·s, s, gamma[, beta]."""
    bn = chain.batch_norm
    count = len(bn.blobs or ())
    blobs = expect_blobs(net, bn, 5 if count == 5 else 4,
                         "mean·s, variance·s, s, gamma[, beta]")
    mean_acc = per_channel(net, bn, blobs[0], "mean (blob 0)", None)
    channels = mean_acc.size
    var_acc = per_channel(net, bn, blobs[1], "variance (blob 1)", channels)
    factor = float(per_channel(net, bn, blobs[2], "scale factor (blob 2)", 1)[0])
    mean, var = fold_running_stats(mean_acc, var_acc, factor)
    eps = batch_norm_eps(bn)
    check_stats(net, bn, var, eps)
    gamma = per_channel(net, bn, blobs[3], "gamma (blob 3)", channels)
    beta = per_channel(net, bn, blobs[4], "beta (blob 4)", channels) if count == 5 else None
    weight, bias = fold_affine(gamma, beta, None, channels)
    warnings = list(chain.notes)
    if factor == 0:
        warnings.append(f"{bn.name}: scale factor is 0: the stored statistics are ignored")
    global_stats = uses_global_stats(bn)  # MKL/MKLDNN engines: as BVLC's
    if not global_stats:
        warnings.append(batch_statistics_warning(net, bn, options, "use_global_stats is false"))
    return make_record(chain, channels, eps, mean, var, weight, bias, "intel", warnings,
                       scale_factor=factor, use_global_stats=global_stats)
