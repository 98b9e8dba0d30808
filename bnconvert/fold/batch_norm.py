"""Turn one ``BatchNormChain`` into a ``FoldedBatchNorm``: ``checks.check_chain`` first (the
same checks ``inspect`` runs), then the flavour's ``fold``, composed from the shared steps here
(pick the blobs by name and count, apply the pure formulas of ``numeric``). Each flavour's own
rules live in ``bnconvert.flavours``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import NumericError, UnsupportedLayerError
from ..flavours import Flavour, flavour_by_id
from ..layers.learned import ScaleParams
from ..read.blob import BlobRef
from ..read.net import Net
from ..records import ChainLayers, FoldedBatchNorm
from .chains import BatchNormChain
from .checks import check_chain, effective_eps, expect_blobs, where
from .continuation import attach_continuation
from .numeric import fold_affine, fold_running_stats, identity_affine
from .options import FoldOptions

__all__ = ["fold_batch_norm_chain", "expect_blobs", "vector", "Statistics", "scaled_statistics",
           "stored_statistics", "flavour_warnings", "chain_affine", "make_record", "chain_eps"]


def vector(blob: BlobRef) -> np.ndarray:
    """A checked per-channel blob (``checks.check_chain`` ran first) as a float32 (C,) array."""
    return blob.values().reshape(-1)


@dataclass(frozen=True)
class Statistics:
    """A chain's normalization: channels, running stats, eps, scale factor and the warnings
    collected so far."""

    channels: int
    mean: np.ndarray
    var: np.ndarray
    eps: float
    scale_factor: float | None
    warnings: tuple[str, ...]

    def warn(self, message: str) -> Statistics:
        """The same statistics with one more warning."""
        return replace(self, warnings=(*self.warnings, message))


def flavour_warnings(net: Net, chain: BatchNormChain, options: FoldOptions,
                     flavour: Flavour) -> tuple[str, ...]:
    """The chain's pairing notes, the flavour's notes about the layer, and the batch-statistics
    warning when the layer normalizes with batch statistics in TEST.

    Raises:
        NumericError: batch statistics under ``options.strict``.
    """
    bn = chain.batch_norm
    warnings = [*chain.notes, *(f"{bn.name}: {note}" for note in flavour.notes(bn))]
    why = flavour.batch_statistics(bn)
    if why is not None:
        caffe = f"{why}, so Caffe normalizes with each batch's own statistics even in TEST"
        if options.strict:
            raise NumericError(f"{where(net, bn)}: {caffe}, which no eval-mode PyTorch or Torch7 "
                               "module reproduces; nothing was written (--strict)")
        warnings.append(f"{bn.name}: {caffe}; the stored parameters were converted, and "
                        "eval-mode PyTorch will not match Caffe")
    return tuple(warnings)


def scaled_statistics(net: Net, chain: BatchNormChain, options: FoldOptions, flavour: Flavour,
                      blobs: tuple[BlobRef, ...]) -> Statistics:
    """BVLC's layout: mean·s, var·s, s → ``blob0·f``, ``blob1·f`` with ``f = 0 if s == 0 else
    1/s``; eps by the flavour."""
    bn = chain.batch_norm
    mean_acc, var_acc = vector(blobs[0]), vector(blobs[1])
    factor = float(vector(blobs[2])[0])
    mean, var = fold_running_stats(mean_acc, var_acc, factor)
    eps = chain_eps(chain, options, flavour)
    stats = Statistics(mean_acc.size, mean, var, eps, factor,
                       flavour_warnings(net, chain, options, flavour))
    if factor == 0:
        stats = stats.warn(f"{bn.name}: scale factor is 0, so Caffe ignores the stored "
                           "statistics (mean 0, variance 0); converted the same way")
    return stats


def stored_statistics(net: Net, chain: BatchNormChain, options: FoldOptions, flavour: Flavour,
                      mean_blob: BlobRef, var_blob: BlobRef) -> Statistics:
    """Running statistics stored as they are used (forks without a scale factor); eps by the
    flavour, raised to 1e-5 with ``options.clamp_eps`` (yjxiong's cuDNN builds)."""
    mean, var = vector(mean_blob), vector(var_blob)
    return Statistics(mean.size, mean, var, chain_eps(chain, options, flavour), None,
                      flavour_warnings(net, chain, options, flavour))


def chain_eps(chain: BatchNormChain, options: FoldOptions, flavour: Flavour) -> float:
    """The eps the converted module runs with (``checks.effective_eps``)."""
    eps = effective_eps(flavour.eps(chain.batch_norm), flavour.id, options.clamp_eps)
    assert eps is not None
    return eps


def chain_affine(net: Net, chain: BatchNormChain, channels: int,
                 options: FoldOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Weight and bias from the chain's Scale (and Bias) layers; without them, none (or weight
    1 / bias 0 with ``options.affine``)."""
    gamma = beta = extra = None
    if chain.scale is not None:
        scale = chain.scale
        params = scale.params if isinstance(scale.params, ScaleParams) else ScaleParams()
        blobs = expect_blobs(net, scale, 2 if params.bias_term else 1, "gamma, beta")
        gamma = vector(blobs[0])
        beta = vector(blobs[1]) if params.bias_term else None
    if chain.bias is not None:
        (bias_blob,) = expect_blobs(net, chain.bias, 1, "bias")
        extra = vector(bias_blob)
    if chain.scale is None and chain.bias is None:
        return identity_affine(channels) if options.affine else (None, None)
    return fold_affine(gamma, beta, extra, channels)


def make_record(chain: BatchNormChain, stats: Statistics, weight: np.ndarray | None,
                bias: np.ndarray | None, flavour: Flavour) -> FoldedBatchNorm:
    """The frozen canonical record of one chain (arrays copied to read-only float32)."""
    bn = chain.batch_norm
    return FoldedBatchNorm(
        layers=ChainLayers(bn.name, chain.scale.name if chain.scale else None,
                           chain.bias.name if chain.bias else None, bn.type),
        channels=stats.channels, rank=chain.rank, eps=stats.eps, running_mean=_frozen(stats.mean),
        running_var=_frozen(stats.var), weight=_frozen_optional(weight),
        bias=_frozen_optional(bias), scale_factor=stats.scale_factor,
        use_global_stats=flavour.batch_statistics(bn) is None, flavour=flavour.id,
        warnings=stats.warnings)


def fold_batch_norm_chain(net: Net, chain: BatchNormChain,
                          options: FoldOptions = FoldOptions()) -> FoldedBatchNorm:
    """Caffe's (or the fork's) effective TEST-phase parameters of one BN chain.

    Raises:
        MissingLayerError, BlobError, NumericError: what ``checks.check_chain`` refuses, or
            (strict) batch statistics.
        UnsupportedLayerError: a flavour bnconvert cannot convert.
    """
    flavour = flavour_by_id(chain.flavour)
    if flavour is None or flavour.id == "bn-unknown":
        raise UnsupportedLayerError(f"{where(net, chain.batch_norm)}: cannot convert a "
                                    f"{chain.flavour} BN layer")
    bn = chain.batch_norm
    check_chain(net, bn, chain.scale, chain.bias, chain.producer, flavour.layout(bn),
                effective_eps(flavour.eps(bn), flavour.id, options.clamp_eps))
    record = flavour.fold(net, chain, options)
    return attach_continuation(record, bn, flavour, options.momentum)


def _frozen_optional(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else _frozen(array)


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out
