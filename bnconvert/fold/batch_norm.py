"""Turn one ``BatchNormChain`` into a ``FoldedBatchNorm``: the checks and the shared steps the
flavours' ``fold`` methods compose (pick the blobs by name and count, check them, apply the pure
formulas of ``numeric``). Each flavour's own rules live in ``bnconvert.flavours``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import BlobError, MissingLayerError, NumericError, UnsupportedLayerError
from ..flavours import Flavour, flavour_by_id
from ..layers.learned import ConvolutionParams, InnerProductParams, ScaleParams
from ..read.blob import BlobRef
from ..read.net import Layer, Net
from ..records import ChainLayers, FoldedBatchNorm
from .chains import BatchNormChain
from .continuation import attach_continuation
from .numeric import clamp_eps, fold_affine, fold_running_stats, identity_affine
from .options import FoldOptions

__all__ = ["fold_batch_norm_chain", "expect_blobs", "per_channel", "check_stats", "Statistics",
           "scaled_statistics", "stored_statistics", "flavour_warnings", "chain_affine",
           "make_record", "where"]


def where(net: Net, layer: Layer) -> str:
    """``file: layer 'name' (Type)`` for messages."""
    return f"{net.caffemodel or net.describe()}: layer {layer.name!r} ({layer.type})"


def expect_blobs(net: Net, layer: Layer, count: int, meaning: str) -> tuple[BlobRef, ...]:
    """The layer's blobs, which must number exactly ``count``.

    Raises:
        MissingLayerError: the caffemodel has no weights for the layer.
        BlobError: it has a different number of blobs.
    """
    if layer.blobs is None:
        raise MissingLayerError(
            f"{where(net, layer)} has no weights in the caffemodel; its {meaning} are needed "
            "(is the caffemodel from the same net as the prototxt?)")
    if len(layer.blobs) != count:
        raise BlobError(f"{where(net, layer)} has {len(layer.blobs)} blobs, expected {count} "
                        f"({meaning})")
    return layer.blobs


def per_channel(net: Net, layer: Layer, blob: BlobRef, what: str,
                channels: int | None) -> np.ndarray:
    """A blob as a checked (C,) float32 vector: per-channel shape, channel count, finite."""
    values = blob.values()
    shape = blob.shape
    squeezed = tuple(d for d in shape if d != 1) or ((1,) if shape else ())
    if len(squeezed) > 1:
        raise BlobError(f"{where(net, layer)}: {what} blob has shape {list(shape)}, "
                        "expected a per-channel vector")
    if channels is not None and values.size != channels:
        raise BlobError(f"{where(net, layer)}: {what} has {values.size} channels, "
                        f"expected {channels} (as the BatchNorm)")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        kind = "NaN" if np.isnan(values[bad[0]]) else "Inf"
        raise NumericError(f"{where(net, layer)}: {what} holds {kind} at channel {bad[0]} "
                           f"({bad.size} non-finite values); the model is corrupt or diverged")
    return values


def check_stats(net: Net, bn: Layer, var: np.ndarray, eps: float) -> None:
    """Variance must be >= 0 and eps > 0 (PyTorch adds eps to the variance)."""
    negative = np.flatnonzero(var < 0)
    if negative.size:
        raise NumericError(f"{where(net, bn)}: variance is negative at channel {negative[0]} "
                           f"({var[negative[0]]:.6g}); a variance must be >= 0, the model is "
                           "corrupt")
    if not eps > 0:
        raise NumericError(f"{where(net, bn)}: eps is {eps:g}; PyTorch's BatchNorm needs "
                           "eps > 0 (it is added to the variance before the square root)")


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
    mean_acc = per_channel(net, bn, blobs[0], "mean (blob 0)", None)
    channels = mean_acc.size
    var_acc = per_channel(net, bn, blobs[1], "variance (blob 1)", channels)
    factor = float(per_channel(net, bn, blobs[2], "scale factor (blob 2)", 1)[0])
    mean, var = fold_running_stats(mean_acc, var_acc, factor)
    eps = flavour.eps(bn)
    assert eps is not None
    check_stats(net, bn, var, eps)
    stats = Statistics(channels, mean, var, eps, factor,
                       flavour_warnings(net, chain, options, flavour))
    if factor == 0:
        stats = stats.warn(f"{bn.name}: scale factor is 0, so Caffe ignores the stored "
                           "statistics (mean 0, variance 0); converted the same way")
    return stats


def stored_statistics(net: Net, chain: BatchNormChain, options: FoldOptions, flavour: Flavour,
                      mean_blob: BlobRef, var_blob: BlobRef, channels: int | None = None,
                      names: tuple[str, str] = ("mean", "variance")) -> Statistics:
    """Running statistics stored as they are used (forks without a scale factor); eps by the
    flavour, raised to 1e-5 with ``options.clamp_eps`` (yjxiong's cuDNN builds)."""
    bn = chain.batch_norm
    mean = per_channel(net, bn, mean_blob, names[0], channels)
    var = per_channel(net, bn, var_blob, names[1], mean.size)
    eps = flavour.eps(bn)
    assert eps is not None
    if options.clamp_eps and flavour.id == "yjxiong":
        eps = clamp_eps(eps)
    check_stats(net, bn, var, eps)
    return Statistics(mean.size, mean, var, eps, None,
                      flavour_warnings(net, chain, options, flavour))


def chain_affine(net: Net, chain: BatchNormChain, channels: int,
                 options: FoldOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Weight and bias from the chain's Scale (and Bias) layers; without them, none (or weight
    1 / bias 0 with ``options.affine``)."""
    gamma = beta = extra = None
    if chain.scale is not None:
        scale = chain.scale
        params = scale.params if isinstance(scale.params, ScaleParams) else ScaleParams()
        blobs = expect_blobs(net, scale, 2 if params.bias_term else 1,
                             "gamma, beta" if params.bias_term else "gamma (bias_term: false)")
        gamma = per_channel(net, scale, blobs[0], "gamma (blob 0)", channels)
        if params.bias_term:
            beta = per_channel(net, scale, blobs[1], "beta (blob 1)", channels)
    if chain.bias is not None:
        (bias_blob,) = expect_blobs(net, chain.bias, 1, "bias")
        extra = per_channel(net, chain.bias, bias_blob, "bias (blob 0)", channels)
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
        MissingLayerError, BlobError: missing weights, wrong blob count or shapes.
        NumericError: NaN/Inf, negative variance, eps <= 0, or (strict) batch statistics.
        UnsupportedLayerError: a flavour bnconvert cannot convert.
    """
    flavour = flavour_by_id(chain.flavour)
    if flavour is None or flavour.id == "bn-unknown":
        raise UnsupportedLayerError(f"{where(net, chain.batch_norm)}: cannot convert a "
                                    f"{chain.flavour} BN layer")
    record = flavour.fold(net, chain, options)
    _check_producer_channels(net, chain, record.channels)
    return attach_continuation(record, chain.batch_norm, flavour, options.momentum)


def _check_producer_channels(net: Net, chain: BatchNormChain, channels: int) -> None:
    """The blobs must fit the net the prototxt defines, or Caffe itself refuses to load them
    (``Cannot copy param ... shape mismatch``): a caffemodel of another net is caught here."""
    producer = chain.producer
    if producer is None or net.prototxt is None:
        return
    params = producer.params
    if not isinstance(params, ConvolutionParams | InnerProductParams) or params.axis != 1 \
            or not params.num_output or producer.type not in (
                "Convolution", "Deconvolution", "InnerProduct"):
        return
    if params.num_output != channels:
        raise BlobError(
            f"{where(net, chain.batch_norm)} has {channels} channels in the caffemodel, but the "
            f"prototxt's {producer.name!r} ({producer.type}) produces "
            f"{params.num_output} (num_output): the caffemodel is not from this net")


def _frozen_optional(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else _frozen(array)


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out
