"""Turn one ``BatchNormChain`` into a ``FoldedBatchNorm``: pick the blobs by name and count,
check them, and apply the pure formulas of ``numeric``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..errors import BlobError, MissingLayerError, NumericError, UnsupportedLayerError
from ..naming import key_for_layer_name
from ..read.blob import BlobRef
from ..read.fork_params import truthy
from ..read.net import Layer, Net
from ..records import ChainLayers, FoldedBatchNorm
from ..registry import Registry
from .chains import BatchNormChain
from .numeric import fold_affine, fold_running_stats, identity_affine
from .options import FoldOptions
from .params import batch_norm_eps, uses_global_stats

__all__ = ["fold_batch_norm_chain", "expect_blobs", "batch_norm_eps", "uses_global_stats",
           "per_channel", "check_stats", "make_record", "batch_statistics_warning", "folds",
           "chain_affine",
           "where", "FOLDERS"]


def where(net: Net, layer: Layer) -> str:
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


Folder = Callable[[Net, BatchNormChain, FoldOptions], FoldedBatchNorm]
#: flavour id -> fold function (forks register theirs in ``fold.forks``)
FOLDERS: Registry[Folder] = Registry("fold function")
folds = FOLDERS.register


def fold_batch_norm_chain(net: Net, chain: BatchNormChain,
                          options: FoldOptions = FoldOptions()) -> FoldedBatchNorm:
    """Caffe's (or the fork's) effective TEST-phase parameters of one BN chain.

    Raises:
        MissingLayerError, BlobError: missing weights, wrong blob count or shapes.
        NumericError: NaN/Inf, negative variance, eps <= 0, or (strict) batch statistics.
        UnsupportedLayerError: a flavour bnconvert cannot convert.
    """
    from . import forks  # noqa: F401  (registers the forks' fold functions)

    folder = FOLDERS.get(chain.flavour)
    if folder is None:
        raise UnsupportedLayerError(f"{where(net, chain.batch_norm)}: cannot convert a "
                                    f"{chain.flavour} BN layer")
    record = folder(net, chain, options)
    _check_producer_channels(net, chain, record.channels)
    if truthy(chain.batch_norm.extras.get("batch_norm_param", {}).get("relu", "false")):
        record = replace(record, warnings=(*record.warnings, (
            f"{chain.batch_norm.name}: batch_norm_param.relu is set (Intel Caffe fuses a ReLU "
            "into this BatchNorm): the converted BN does not include it; add a ReLU after it")))
    return record


@folds("bvlc")
def fold_bvlc(net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
    """BVLC BatchNorm (+ Scale + Bias): running stats divided by the scale factor."""
    bn = chain.batch_norm
    mean_blob, var_blob, factor_blob = expect_blobs(
        net, bn, 3, "mean accumulator, variance accumulator, scale factor")
    mean_acc = per_channel(net, bn, mean_blob, "mean (blob 0)", None)
    channels = mean_acc.size
    var_acc = per_channel(net, bn, var_blob, "variance (blob 1)", channels)
    factor = per_channel(net, bn, factor_blob, "scale factor (blob 2)", 1)[0]
    mean, var = fold_running_stats(mean_acc, var_acc, float(factor))
    eps = batch_norm_eps(bn)
    warnings = list(chain.notes)
    check_stats(net, bn, var, eps)
    if factor == 0:
        warnings.append(f"{bn.name}: scale factor is 0, so Caffe ignores the stored statistics "
                        "(mean 0, variance 0); converted the same way")
    global_stats = uses_global_stats(bn)
    if not global_stats:
        warnings.append(batch_statistics_warning(net, bn, options, "use_global_stats is false"))
    weight, bias = chain_affine(net, chain, channels, options)
    return make_record(chain, channels, eps, mean, var, weight, bias, "bvlc", warnings,
                       scale_factor=float(factor), use_global_stats=global_stats)


def batch_statistics_warning(net: Net, bn: Layer, options: FoldOptions, why: str) -> str:
    """The warning for a layer that normalizes with batch statistics in TEST (an error under
    ``strict``)."""
    caffe = f"{why}, so Caffe normalizes with each batch's own statistics even in TEST"
    if options.strict:
        raise NumericError(f"{where(net, bn)}: {caffe}, which no eval-mode PyTorch or Torch7 "
                           "module reproduces; nothing was written (--strict)")
    return (f"{bn.name}: {caffe}; the stored parameters were converted, and eval-mode PyTorch "
            "will not match Caffe")


def make_record(chain: BatchNormChain, channels: int, eps: float, mean: np.ndarray,
                var: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                flavour: str, warnings: list[str], scale_factor: float | None = None,
                use_global_stats: bool = True) -> FoldedBatchNorm:
    """The frozen canonical record of one chain (arrays copied to read-only float32)."""
    bn = chain.batch_norm
    return FoldedBatchNorm(
        key=key_for_layer_name(bn.name),
        layers=ChainLayers(bn.name, chain.scale.name if chain.scale else None,
                           chain.bias.name if chain.bias else None, bn.type),
        channels=channels, rank=chain.rank, eps=eps, running_mean=frozen(mean),
        running_var=frozen(var), weight=frozen_optional(weight), bias=frozen_optional(bias),
        scale_factor=scale_factor, use_global_stats=use_global_stats, flavour=flavour,
        warnings=tuple(warnings))


_CHANNEL_PRODUCERS = {"Convolution": "convolution_param", "Deconvolution": "convolution_param",
                      "InnerProduct": "inner_product_param"}


def _check_producer_channels(net: Net, chain: BatchNormChain, channels: int) -> None:
    """The blobs must fit the net the prototxt defines, or Caffe itself refuses to load them
    (``Cannot copy param ... shape mismatch``): a caffemodel of another net is caught here."""
    producer = chain.producer
    field = _CHANNEL_PRODUCERS.get(producer.type) if producer is not None else None
    if producer is None or field is None or net.prototxt is None:
        return
    param = producer.param(field)
    if param is None or not param.HasField("num_output") or getattr(param, "axis", 1) != 1:
        return
    if param.num_output != channels:  # type: ignore[attr-defined]
        raise BlobError(
            f"{where(net, chain.batch_norm)} has {channels} channels in the caffemodel, but the "
            f"prototxt's {producer.name!r} ({producer.type}) produces "
            f"{param.num_output} (num_output): the caffemodel is not from this net")  # type: ignore[attr-defined]


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


def chain_affine(net: Net, chain: BatchNormChain, channels: int,
                 options: FoldOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Weight and bias from the chain's Scale (and Bias) layers; without them, none (or weight
    1 / bias 0 with ``options.affine``)."""
    gamma = beta = extra = None
    if chain.scale is not None:
        scale = chain.scale
        # A V1 ``layers`` entry (type written as the string "Scale") has no scale_param:
        # Caffe's default, bias_term false, applies.
        with_bias = bool(getattr(scale.param_or_default("scale_param"), "bias_term", False))
        blobs = expect_blobs(net, scale, 2 if with_bias else 1,
                             "gamma, beta" if with_bias else "gamma (bias_term: false)")
        gamma = per_channel(net, scale, blobs[0], "gamma (blob 0)", channels)
        if with_bias:
            beta = per_channel(net, scale, blobs[1], "beta (blob 1)", channels)
    if chain.bias is not None:
        (bias_blob,) = expect_blobs(net, chain.bias, 1, "bias")
        extra = per_channel(net, chain.bias, bias_blob, "bias (blob 0)", channels)
    if chain.scale is None and chain.bias is None:
        return identity_affine(channels) if options.affine else (None, None)
    return fold_affine(gamma, beta, extra, channels)


def frozen_optional(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else frozen(array)


def frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out
