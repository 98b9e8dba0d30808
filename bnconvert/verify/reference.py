"""An independent numpy implementation of Caffe's TEST-phase forward of BatchNorm, Scale and Bias.

Written from BVLC Caffe's ``batch_norm_layer.cpp``, ``scale_layer.cpp`` and ``bias_layer.cpp``
(CPU path), from the raw caffemodel blobs, in float32 step by step as Caffe does it. It shares no
arithmetic with ``bnconvert.fold``, so a bug in the folding cannot hide in the reference.

BatchNorm, with ``s = blob2[0]``::

    use_global_stats (TEST default):  f = (s == 0 ? 0 : 1/s)       # float32 reciprocal
                                      mean = blob0 * f ; var = blob1 * f
    use_global_stats: false:          mean = E[x] ; var = E[(x - mean)^2]  # biased, N*spatial
    y = (x - mean) / sqrt(var + eps)                                  # float32 add, sqrt, div

Scale: ``y * gamma[c] (+ beta[c] when bias_term)``; Bias: ``y + b[c]``; channels are axis 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BlobError, MissingLayerError, UnsupportedLayerError
from ..flavours import flavour_by_id
from ..layers.learned import ScaleParams
from ..layers.normalization import BatchNormParams
from ..read.blob import BlobRef
from ..read.net import Layer, Net

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from .reference_forks import ReferenceChain

__all__ = ["CaffeChain", "ChainForward", "read_caffe_chain", "caffe_batch_norm",
           "caffe_scale", "caffe_bias", "caffe_chain_forward", "read_scale_bias", "layer_blobs",
           "blob_vector", "reads_net_input", "read_reference_chain"]

_F32 = np.float32


@dataclass(frozen=True, eq=False)
class CaffeChain:
    """One BatchNorm chain's raw Caffe parameters, exactly as stored (float32 vectors).

    Attributes:
        layers: the chain's Caffe layer names in graph order (BatchNorm, Scale, Bias).
        mean_acc, var_acc: BatchNorm blobs 0 and 1 (accumulated, not yet divided by s).
        scale_factor: BatchNorm blob 2's value ``s``.
        eps: ``batch_norm_param.eps`` as Caffe's float32.
        use_global_stats: what Caffe uses in TEST (True unless set to false).
        gamma, beta: the Scale's blobs (None without a Scale / without ``bias_term``).
        bias: the Bias layer's blob (None without a Bias layer).
        rank: rank of the BatchNorm's input blob, None if the net does not tell.
        reads_net_input: True when the BatchNorm's input is the net's first input blob.
        blob_storage: how the chain's blobs are stored (``data``, ``double_data``, ...).
        flavour: ``bvlc``, or ``intel`` for Intel's merged BatchNorm (BVLC's layers in one).
    """

    layers: tuple[str, ...]
    mean_acc: np.ndarray
    var_acc: np.ndarray
    scale_factor: np.float32
    eps: np.float32
    use_global_stats: bool
    gamma: np.ndarray | None
    beta: np.ndarray | None
    bias: np.ndarray | None
    rank: int | None
    reads_net_input: bool
    blob_storage: frozenset[str] = frozenset()
    flavour: str = "bvlc"

    @property
    def batch_norm(self) -> str:
        """The BatchNorm layer's name."""
        return self.layers[0]

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return int(self.mean_acc.size)

    @property
    def module_eps(self) -> float:
        """The eps a converted module runs with when nothing in the file records one."""
        return float(self.eps)


@dataclass(frozen=True, eq=False)
class ChainForward:
    """Caffe's forward of one chain, with the intermediate terms the error measure needs.

    Attributes:
        output: the chain's output (the last layer's top), float32.
        normalized: BatchNorm's output ``x̂``, float32.
        mean, std: per channel, what Caffe subtracted and divided by (``sqrt(var + eps)``).
    """

    output: np.ndarray
    normalized: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _per_channel(vector: np.ndarray, ndim: int) -> np.ndarray:
    """A (C,) vector shaped to broadcast along axis 1 of an ``ndim``-D blob."""
    return vector.reshape((1, -1) + (1,) * (ndim - 2))


def caffe_batch_norm(x: np.ndarray, mean_acc: np.ndarray, var_acc: np.ndarray,
                     scale_factor: float, eps: float,
                     use_global_stats: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Caffe's BatchNorm forward (``BatchNormLayer<float>::Forward_cpu``).

    ``y = (x - mean) / sqrt(var + eps)`` in float32, with ``mean = blob0·f, var = blob1·f,
    f = (s == 0 ? 0 : 1/s)`` for global statistics, else the batch mean and the biased batch
    variance over N·spatial per channel.

    Args:
        x: the input blob, (N, C, ...) with channels on axis 1.
        mean_acc, var_acc: blobs 0 and 1; scale_factor: blob 2's value; eps: the layer's eps.
        use_global_stats: False for Caffe's batch-statistics mode.

    Returns:
        ``(y, mean, std)``: the output and the per-channel mean and ``sqrt(var + eps)`` used.

    Example:
        >>> y, mean, std = caffe_batch_norm(np.ones((1, 1), np.float32),
        ...     np.array([2.0], np.float32), np.array([4.0], np.float32), 2.0, 1e-5)
        >>> float(mean[0]), round(float(y[0, 0]), 4)
        (1.0, 0.0)
    """
    x = np.asarray(x, dtype=_F32)
    eps32 = _F32(eps)
    if use_global_stats:
        s = _F32(scale_factor)
        f = _F32(0) if s == 0 else _F32(1) / s
        mean = np.asarray(mean_acc, _F32) * f
        var = np.asarray(var_acc, _F32) * f
        centred = x - _per_channel(mean, x.ndim)
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.astype(np.float64).mean(axis=axes).astype(_F32)
        centred = x - _per_channel(mean, x.ndim)
        var = np.square(centred).astype(np.float64).mean(axis=axes).astype(_F32)
    std = np.sqrt(var + eps32)
    return centred / _per_channel(std, x.ndim), mean, std


def caffe_scale(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None) -> np.ndarray:
    """Caffe's per-channel Scale (axis 1, num_axes 1): ``x * gamma[c]``, then ``+ beta[c]``.

    Example:
        >>> caffe_scale(np.ones((1, 2), np.float32), np.array([2, 3], np.float32), None)
        array([[2., 3.]], dtype=float32)
    """
    out = np.asarray(x, _F32) * _per_channel(np.asarray(gamma, _F32), np.ndim(x))
    return out if beta is None else caffe_bias(out, beta)


def caffe_bias(x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Caffe's per-channel Bias (axis 1, num_axes 1): ``x + b[c]``.

    Example:
        >>> caffe_bias(np.zeros((1, 2), np.float32), np.array([1, -1], np.float32))
        array([[ 1., -1.]], dtype=float32)
    """
    return np.asarray(x, _F32) + _per_channel(np.asarray(bias, _F32), np.ndim(x))


def caffe_chain_forward(chain: CaffeChain, x: np.ndarray) -> ChainForward:
    """Run BatchNorm, then the Scale and Bias of ``chain``, the way Caffe does.

    Raises:
        BlobError: ``x`` does not have the chain's channel count on axis 1.
    """
    x = np.asarray(x, dtype=_F32)
    if x.ndim < 2 or x.shape[1] != chain.channels:
        raise BlobError(f"layer {chain.batch_norm!r} (BatchNorm) has {chain.channels} channels; "
                        f"an input of shape {list(x.shape)} has not")
    normalized, mean, std = caffe_batch_norm(x, chain.mean_acc, chain.var_acc,
                                             float(chain.scale_factor), float(chain.eps),
                                             chain.use_global_stats)
    out = normalized
    if chain.gamma is not None:
        out = caffe_scale(out, chain.gamma, chain.beta)
    if chain.bias is not None:
        out = caffe_bias(out, chain.bias)
    return ChainForward(out, normalized, mean, std)


def read_caffe_chain(net: Net, chain: BatchNormChain) -> CaffeChain:
    """The raw parameters of ``chain`` from the caffemodel, checked as Caffe checks them.

    Raises:
        MissingLayerError: a chain layer has no weights in the caffemodel.
        BlobError: wrong blob count, or a blob is not a (C,) vector (legacy 1x1x1xC accepted).
    """
    bn = chain.batch_norm
    mean_blob, var_blob, factor_blob = layer_blobs(net, bn, 3, "mean, variance, scale factor")
    mean_acc = blob_vector(net, bn, mean_blob, "blob 0 (mean)", None)
    channels = mean_acc.size
    var_acc = blob_vector(net, bn, var_blob, "blob 1 (variance)", channels)
    factor = blob_vector(net, bn, factor_blob, "blob 2 (scale factor)", 1)[0]
    params = bn.params if isinstance(bn.params, BatchNormParams) else BatchNormParams()
    eps = _F32(params.eps)
    global_stats = params.use_global_stats is not False
    gamma, beta, bias = read_scale_bias(net, chain, channels)
    names = tuple(layer.name for layer in chain.layers())
    storage = frozenset(blob.source for layer in chain.layers() for blob in layer.blobs or ())
    return CaffeChain(names, mean_acc, var_acc, _F32(factor), eps, global_stats, gamma, beta,
                      bias, chain.rank, reads_net_input(net, bn), storage)


def read_scale_bias(net: Net, chain: BatchNormChain, channels: int
                    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The chain's Scale ``gamma``, ``beta`` and Bias ``b`` blobs (None where absent)."""
    gamma = beta = bias = None
    if chain.scale is not None:
        params = chain.scale.params
        with_beta = isinstance(params, ScaleParams) and params.bias_term
        blobs = layer_blobs(net, chain.scale, 2 if with_beta else 1,
                            "gamma, beta" if with_beta else "gamma")
        gamma = blob_vector(net, chain.scale, blobs[0], "blob 0 (gamma)", channels)
        if with_beta:
            beta = blob_vector(net, chain.scale, blobs[1], "blob 1 (beta)", channels)
    if chain.bias is not None:
        (bias_blob,) = layer_blobs(net, chain.bias, 1, "bias")
        bias = blob_vector(net, chain.bias, bias_blob, "blob 0 (bias)", channels)
    return gamma, beta, bias


def where(net: Net, layer: Layer) -> str:
    """``file: layer 'name' (Type)`` for messages."""
    return f"{net.caffemodel or net.describe()}: layer {layer.name!r} ({layer.type})"


def layer_blobs(net: Net, layer: Layer, count: int, meaning: str) -> tuple[BlobRef, ...]:
    """The layer's blobs, exactly ``count`` of them (MissingLayerError / BlobError else)."""
    if layer.blobs is None:
        raise MissingLayerError(f"{where(net, layer)} has no weights in the caffemodel; "
                                f"verify needs its {meaning}")
    if len(layer.blobs) != count:
        raise BlobError(f"{where(net, layer)}: expected {count} blobs ({meaning}), "
                        f"found {len(layer.blobs)}")
    return layer.blobs


def blob_vector(net: Net, layer: Layer, blob: BlobRef, what: str, count: int | None) -> np.ndarray:
    """A blob as a float32 (C,) vector: one non-1 dimension at most, ``count`` values."""
    shape = blob.shape
    if sum(d != 1 for d in shape) > 1:
        raise BlobError(f"{where(net, layer)}: {what} has shape {list(shape)}, expected a "
                        "per-channel vector")
    values = np.asarray(blob.values(), dtype=_F32).reshape(-1)
    if count is not None and values.size != count:
        raise BlobError(f"{where(net, layer)}: {what} holds {values.size} values, expected "
                        f"{count}")
    return values


def reads_net_input(net: Net, bn: Layer) -> bool:
    """True when ``bn``'s bottom is the net's first input blob, unchanged by any layer."""
    first_input = next(iter(net.input_shapes), None)
    writer: dict[str, Layer | None] = {name: None for name in net.input_shapes}
    for layer in net.layers:
        if layer.index == bn.index:
            break
        if first_input is None and layer.type == "Input" and layer.tops:
            first_input = layer.tops[0]
        for top in layer.tops:
            writer[top] = layer
    if not bn.bottoms or bn.bottoms[0] != first_input:
        return False
    source = writer.get(first_input)
    return source is None or source.type == "Input"


def read_reference_chain(net: Net, chain: BatchNormChain) -> ReferenceChain:
    """The raw parameters of ``chain`` as its own implementation (BVLC or a fork) loads them
    (each flavour's ``read_reference``).

    Raises:
        UnsupportedLayerError: no reference for the chain's flavour (e.g. unrecognized blobs).
        MissingLayerError, BlobError: missing weights, wrong blob count or shapes.
    """
    flavour = flavour_by_id(chain.flavour)
    try:
        return flavour.read_reference(net, chain) if flavour is not None else _no_reference(
            chain)
    except NotImplementedError:
        return _no_reference(chain)


def _no_reference(chain: BatchNormChain) -> ReferenceChain:
    from ..flavours import FLAVOURS, Flavour

    readable = sorted(f.id for f in FLAVOURS.values()
                      if type(f).read_reference is not Flavour.read_reference)
    raise UnsupportedLayerError(
        f"the reference implements {', '.join(readable)}; layer {chain.batch_norm.name!r} "
        f"({chain.batch_norm.type}) is of flavour {chain.flavour!r}")
