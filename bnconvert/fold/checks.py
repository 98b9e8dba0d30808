"""Everything ``convert`` refuses in a BN chain's weights, checked without numpy so that
``inspect`` runs the very same checks (one verdict): blob counts by the flavour's layout, each
blob a per-channel vector of the BatchNorm's channel count, finite values, a variance >= 0, an
eps > 0, the Scale/Bias blobs, and the channels the producing layer gives in the prototxt.

The flavour says what its blobs are (``Flavour.layout``); folding (``fold.batch_norm``) runs
after these checks and trusts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import BlobError, MissingLayerError, NumericError
from ..layers.base import float32
from ..layers.learned import ConvolutionParams, InnerProductParams, ScaleParams
from ..read.blob import BlobRef
from ..read.net import Layer, Net

__all__ = ["BlobLayout", "where", "expect_blobs", "check_vector", "check_chain",
           "effective_eps", "clamped"]


@dataclass(frozen=True)
class BlobLayout:
    """What a BN layer's blobs are, as its flavour stores them.

    Attributes:
        count: how many blobs the layer must have.
        meaning: the blobs in words, for messages (``"mean, variance, scale factor"``).
        vectors: ``(blob index, name in messages)`` of every per-channel blob, in check order.
        variance: the index of the variance blob (checked >= 0), None for none.
        factor: the index of the scale-factor blob (one value; the variance is scaled by its
            reciprocal), None for none.
    """

    count: int
    meaning: str
    vectors: tuple[tuple[int, str], ...]
    variance: int | None = None
    factor: int | None = None
    factor_name: str = "scale factor (blob 2)"


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


def check_vector(net: Net, layer: Layer, blob: BlobRef, what: str,
                 channels: int | None) -> list[float]:
    """A blob that must be a per-channel vector of ``channels`` finite values; its values.

    Raises:
        BlobError: another shape or channel count. NumericError: NaN or Inf.
    """
    shape = blob.shape
    if sum(d != 1 for d in shape) > 1:
        raise BlobError(f"{where(net, layer)}: {what} blob has shape {list(shape)}, "
                        "expected a per-channel vector")
    values = blob.floats()
    if channels is not None and len(values) != channels:
        raise BlobError(f"{where(net, layer)}: {what} has {len(values)} channels, "
                        f"expected {channels} (as the BatchNorm)")
    # The sum of float32-range values is finite exactly when every value is (it cannot
    # overflow a double), and costs one C loop instead of a Python test per channel.
    if not math.isfinite(sum(values)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        kind = "NaN" if math.isnan(values[bad[0]]) else "Inf"
        raise NumericError(f"{where(net, layer)}: {what} holds {kind} at channel {bad[0]} "
                           f"({len(bad)} non-finite values); the model is corrupt or diverged")
    return values


def clamped(eps: float, floor: float = 1e-5) -> float:
    """``max(eps, floor)`` in float32, as cuDNN-backed forks do (CUDNN_BN_MIN_EPSILON).

    Example:
        >>> clamped(1e-6) == clamped(1e-5)
        True
    """
    return max(float32(eps), float32(floor))


def effective_eps(flavour_eps: float | None, flavour_id: str, clamp: bool) -> float | None:
    """The eps the converted module runs with: the flavour's, raised to 1e-5 for
    PSPNet/yjxiong under ``--clamp-eps``."""
    if clamp and flavour_id == "yjxiong" and flavour_eps is not None:
        return clamped(flavour_eps)
    return flavour_eps


def _check_batch_norm(net: Net, bn: Layer, layout: BlobLayout, eps: float | None) -> int:
    """The BN layer's own blobs by its layout; returns the channel count."""
    blobs = expect_blobs(net, bn, layout.count, layout.meaning)
    channels: int | None = None
    found: dict[int, list[float]] = {}
    for index, name in layout.vectors:
        found[index] = check_vector(net, bn, blobs[index], name, channels)
        channels = len(found[index]) if channels is None else channels
        if index == layout.variance and layout.factor is not None:
            found[layout.factor] = check_vector(net, bn, blobs[layout.factor],
                                                layout.factor_name, 1)
    assert channels is not None
    if layout.variance is not None:
        _check_variance(net, bn, layout, found)
    if eps is not None and not eps > 0:
        raise NumericError(f"{where(net, bn)}: eps is {eps:g}; PyTorch's BatchNorm needs "
                           "eps > 0 (it is added to the variance before the square root)")
    return channels


def _check_variance(net: Net, bn: Layer, layout: BlobLayout,
                    found: dict[int, list[float]]) -> None:
    """The variance as folding computes it, ``float32(stored · float32(1/s))``, is >= 0."""
    assert layout.variance is not None
    s = float32(found[layout.factor][0]) if layout.factor is not None else 1.0
    f = 0.0 if s == 0 else float32(1.0 / s)
    stored = found[layout.variance]
    if f >= 0 and (not stored or min(stored) >= 0):  # no product can be negative
        return
    var = [float32(v * f) for v in stored]
    negative = next((i for i, v in enumerate(var) if v < 0), None)
    if negative is not None:
        raise NumericError(f"{where(net, bn)}: variance is negative at channel {negative} "
                           f"({var[negative]:.6g}); a variance must be >= 0, the model is "
                           "corrupt")


def _check_affine(net: Net, scale: Layer | None, bias: Layer | None, channels: int) -> None:
    """The chain's Scale (gamma[, beta]) and Bias (b) blobs."""
    if scale is not None:
        params = scale.params if isinstance(scale.params, ScaleParams) else ScaleParams()
        blobs = expect_blobs(net, scale, 2 if params.bias_term else 1,
                             "gamma, beta" if params.bias_term else "gamma (bias_term: false)")
        check_vector(net, scale, blobs[0], "gamma (blob 0)", channels)
        if params.bias_term:
            check_vector(net, scale, blobs[1], "beta (blob 1)", channels)
    if bias is not None:
        (bias_blob,) = expect_blobs(net, bias, 1, "bias")
        check_vector(net, bias, bias_blob, "bias (blob 0)", channels)


def _check_producer(net: Net, bn: Layer, producer: Layer | None, channels: int) -> None:
    """The blobs must fit the net the prototxt defines, or Caffe itself refuses to load them
    (``Cannot copy param ... shape mismatch``): a caffemodel of another net is caught here."""
    if producer is None or net.prototxt is None:
        return
    params = producer.params
    if not isinstance(params, ConvolutionParams | InnerProductParams) or params.axis != 1 \
            or not params.num_output or producer.type not in (
                "Convolution", "Deconvolution", "InnerProduct"):
        return
    if params.num_output != channels:
        raise BlobError(
            f"{where(net, bn)} has {channels} channels in the caffemodel, but the prototxt's "
            f"{producer.name!r} ({producer.type}) produces {params.num_output} (num_output): "
            "the caffemodel is not from this net")


def check_chain(net: Net, bn: Layer, scale: Layer | None, bias: Layer | None,
                producer: Layer | None, layout: BlobLayout, eps: float | None) -> int:
    """Every check ``convert`` runs on one chain's weights, in its order; the channel count.

    Args:
        bn, scale, bias, producer: the chain's layers and the layer writing the BN's input.
        layout: the BN layer's blobs (its flavour's ``layout``).
        eps: the eps the converted module runs with (``effective_eps``), None for none.

    Raises:
        MissingLayerError, BlobError, NumericError: what ``convert`` would refuse.
    """
    channels = _check_batch_norm(net, bn, layout, eps)
    _check_affine(net, scale, bias, channels)
    _check_producer(net, bn, producer, channels)
    return channels
