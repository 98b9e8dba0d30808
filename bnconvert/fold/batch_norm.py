"""Turn one ``BatchNormChain`` into a ``FoldedBatchNorm``: pick the blobs by name and count,
check them, and apply the pure formulas of ``numeric``."""

from __future__ import annotations

import numpy as np

from ..errors import BlobError, MissingLayerError, NumericError
from ..naming import key_for_layer_name
from ..read.blob import BlobRef
from ..read.net import Layer, Net
from ..records import ChainLayers, FoldedBatchNorm
from .chains import BatchNormChain
from .numeric import fold_affine, fold_running_stats, identity_affine
from .options import FoldOptions

__all__ = ["fold_batch_norm_chain", "expect_blobs", "batch_norm_eps", "uses_global_stats"]


def _where(net: Net, layer: Layer) -> str:
    return f"{net.caffemodel or net.describe()}: layer {layer.name!r} ({layer.type})"


def expect_blobs(net: Net, layer: Layer, count: int, meaning: str) -> tuple[BlobRef, ...]:
    """The layer's blobs, which must number exactly ``count``.

    Raises:
        MissingLayerError: the caffemodel has no weights for the layer.
        BlobError: it has a different number of blobs.
    """
    if layer.blobs is None:
        raise MissingLayerError(
            f"{_where(net, layer)} has no weights in the caffemodel; its {meaning} are needed "
            "(is the caffemodel from the same net as the prototxt?)")
    if len(layer.blobs) != count:
        raise BlobError(f"{_where(net, layer)} has {len(layer.blobs)} blobs, expected {count} "
                        f"({meaning})")
    return layer.blobs


def _vector(net: Net, layer: Layer, blob: BlobRef, what: str, channels: int | None) -> np.ndarray:
    values = blob.values()
    shape = blob.shape
    squeezed = tuple(d for d in shape if d != 1) or ((1,) if shape else ())
    if len(squeezed) > 1:
        raise BlobError(f"{_where(net, layer)}: {what} blob has shape {list(shape)}, "
                        "expected a per-channel vector")
    if channels is not None and values.size != channels:
        raise BlobError(f"{_where(net, layer)}: {what} has {values.size} channels, "
                        f"expected {channels} (as the BatchNorm)")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        kind = "NaN" if np.isnan(values[bad[0]]) else "Inf"
        raise NumericError(f"{_where(net, layer)}: {what} holds {kind} at channel {bad[0]} "
                           f"({bad.size} non-finite values); the model is corrupt or diverged")
    return values


def batch_norm_eps(layer: Layer) -> float:
    """``batch_norm_param.eps`` as Caffe's float32 (default 1e-5)."""
    param = layer.param_or_default("batch_norm_param")
    return float(np.float32(param.eps if param is not None else 1e-5))  # type: ignore[attr-defined]


def uses_global_stats(layer: Layer) -> bool:
    """In TEST Caffe uses the stored statistics unless ``use_global_stats: false`` is set."""
    param = layer.param("batch_norm_param")
    if param is not None and param.HasField("use_global_stats"):
        return bool(param.use_global_stats)  # type: ignore[attr-defined]
    return True


def fold_batch_norm_chain(net: Net, chain: BatchNormChain,
                          options: FoldOptions = FoldOptions()) -> FoldedBatchNorm:
    """Caffe's effective TEST-phase parameters of one BatchNorm chain.

    Raises:
        MissingLayerError, BlobError: missing weights, wrong blob count or shapes.
        NumericError: NaN/Inf, negative variance, eps <= 0, or (strict) batch statistics.
    """
    bn = chain.batch_norm
    mean_blob, var_blob, factor_blob = expect_blobs(
        net, bn, 3, "mean accumulator, variance accumulator, scale factor")
    mean_acc = _vector(net, bn, mean_blob, "mean (blob 0)", None)
    channels = mean_acc.size
    var_acc = _vector(net, bn, var_blob, "variance (blob 1)", channels)
    factor = _vector(net, bn, factor_blob, "scale factor (blob 2)", 1)[0]
    mean, var = fold_running_stats(mean_acc, var_acc, float(factor))
    eps = batch_norm_eps(bn)
    warnings = list(chain.notes)
    _check_stats(net, bn, var, eps)
    if factor == 0:
        warnings.append(f"{bn.name}: scale factor is 0, so Caffe ignores the stored statistics "
                        "(mean 0, variance 0); converted the same way")
    global_stats = uses_global_stats(bn)
    if not global_stats:
        message = (f"{bn.name}: use_global_stats is false, so Caffe normalizes with each batch's "
                   "own statistics even in TEST; the stored running statistics were converted, "
                   "and eval-mode PyTorch will not match Caffe")
        if options.strict:
            raise NumericError(f"{_where(net, bn)}: {message.split(': ', 1)[1]} (--strict)")
        warnings.append(message)
    weight, bias = _affine(net, chain, channels, options)
    return FoldedBatchNorm(
        key=key_for_layer_name(bn.name),
        layers=ChainLayers(bn.name, chain.scale.name if chain.scale else None,
                           chain.bias.name if chain.bias else None, bn.type),
        channels=channels, rank=chain.rank, eps=eps, running_mean=_frozen(mean),
        running_var=_frozen(var), weight=_frozen_optional(weight), bias=_frozen_optional(bias),
        scale_factor=float(factor), use_global_stats=global_stats, flavour="bvlc",
        warnings=tuple(warnings))


def _check_stats(net: Net, bn: Layer, var: np.ndarray, eps: float) -> None:
    negative = np.flatnonzero(var < 0)
    if negative.size:
        raise NumericError(f"{_where(net, bn)}: variance is negative at channel {negative[0]} "
                           f"({var[negative[0]]:.6g}); a variance must be >= 0, the model is "
                           "corrupt")
    if not eps > 0:
        raise NumericError(f"{_where(net, bn)}: eps is {eps:g}; PyTorch's BatchNorm needs "
                           "eps > 0 (it is added to the variance before the square root)")


def _affine(net: Net, chain: BatchNormChain, channels: int,
            options: FoldOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    gamma = beta = extra = None
    if chain.scale is not None:
        scale = chain.scale
        with_bias = bool(scale.param_or_default("scale_param").bias_term)  # type: ignore[union-attr]
        blobs = expect_blobs(net, scale, 2 if with_bias else 1,
                             "gamma, beta" if with_bias else "gamma (bias_term: false)")
        gamma = _vector(net, scale, blobs[0], "gamma (blob 0)", channels)
        if with_bias:
            beta = _vector(net, scale, blobs[1], "beta (blob 1)", channels)
    if chain.bias is not None:
        (bias_blob,) = expect_blobs(net, chain.bias, 1, "bias")
        extra = _vector(net, chain.bias, bias_blob, "bias (blob 0)", channels)
    if chain.scale is None and chain.bias is None:
        return identity_affine(channels) if options.affine else (None, None)
    return fold_affine(gamma, beta, extra, channels)


def _frozen_optional(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else _frozen(array)


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out
