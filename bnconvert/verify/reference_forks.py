"""The numpy reference for the BN layers of Caffe forks: each fork's TEST-phase forward, from the
raw caffemodel blobs, in float32 in the order the fork's CPU code computes it. It shares no
arithmetic with the flavours' ``fold`` (semantics: ``tests/data/forks/README.md``).

- SegNet/ENet ``BN`` (``bn_layer.cpp``), blobs scale, shift. ``INFERENCE``:
  ``y = x·scale + shift``. ``LEARN`` (default): batch statistics in every phase,
  ``var = E[x²] − E[x]²`` (biased), ``y = (x − mean)/sqrt(var + 1e-9)·scale + shift``.
- PSPNet/yjxiong ``BN``, blobs slope, bias, mean, var; NVIDIA Caffe 0.17 ``BatchNorm`` TEST
  (``batch_norm_layer.cpp``): ``y = ((x − mean)·(var + eps)^−½)·scale + bias``. yjxiong: eps from
  ``bn_param`` as float32, not clamped. NVIDIA: ``eps = max(eps, 1e-5)``, stored statistics
  whatever ``use_global_stats`` says; 5 blobs mean, var, correction, scale, bias; DIGITS order
  scale, bias, mean, var, reserved; 3 blobs (BVLC format) divided by blob 2 on load, then the
  following Scale/Bias layers.
- Intel merged ``BatchNorm`` (mean·s, var·s, s, gamma[, beta]): BVLC's BatchNorm and Scale, so it
  is read into a ``CaffeChain`` and run by ``reference``.

The blobs are read by each flavour's ``read_reference`` (``bnconvert.flavours``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BlobError
from .reference import CaffeChain, ChainForward, caffe_chain_forward, reads_net_input

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..read.net import Net

__all__ = ["ForkChain", "ReferenceChain", "reference_forward", "with_recorded_eps",
           "batch_statistics_reason", "common_fields"]

_F32 = np.float32


def common_fields(net: Net, chain: BatchNormChain, flavour: str) -> dict[str, Any]:
    """The ``ForkChain`` fields every fork reading fills the same way."""
    layers = chain.layers()
    return {"layers": tuple(x.name for x in layers), "flavour": flavour,
            "rank": chain.rank, "reads_net_input": reads_net_input(net, chain.batch_norm),
            "blob_storage": frozenset(b.source for x in layers for b in x.blobs or ())}


@dataclass(frozen=True, eq=False)
class ForkChain:
    """One fork BN layer (and, for NVIDIA's 3-blob form, its Scale/Bias) as the fork runs it.

    Attributes:
        layers: the Caffe layer names in graph order.
        flavour: ``segnet``, ``yjxiong``, ``nvcaffe``, ``nvcaffe-digits``.
        formula: ``scale-shift`` (SegNet INFERENCE), ``batch`` (SegNet LEARN) or ``inv-std``.
        mean, var: the stored statistics as the fork uses them (None for SegNet).
        eps: what the fork adds to the variance, float32 (None for SegNet INFERENCE).
        gamma, beta: the multiplier and shift (scale/slope/Scale gamma, shift/bias/Scale beta).
        bias: a following Bias layer's blob (NVIDIA 3-blob form), else None.
        use_global_stats: False for SegNet LEARN (batch statistics in TEST).
        rank, reads_net_input, blob_storage: as ``CaffeChain``.
        notes: facts about the fork's semantics worth a line in the report.
    """

    layers: tuple[str, ...]
    flavour: str
    formula: str
    mean: np.ndarray | None
    var: np.ndarray | None
    eps: np.float32 | None
    gamma: np.ndarray | None
    beta: np.ndarray | None
    bias: np.ndarray | None
    use_global_stats: bool
    rank: int | None
    reads_net_input: bool
    blob_storage: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    @property
    def batch_norm(self) -> str:
        """The BN layer's name."""
        return self.layers[0]

    @property
    def channels(self) -> int:
        """Number of channels C."""
        vector = self.mean if self.mean is not None else self.gamma
        assert vector is not None
        return int(vector.size)

    @property
    def module_eps(self) -> float:
        """The eps a converted module runs with when nothing in the file records one."""
        from ..flavours.segnet import MODULE_EPS

        return MODULE_EPS if self.eps is None else float(self.eps)


ReferenceChain = CaffeChain | ForkChain
def _per_channel(vector: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(vector, _F32).reshape((1, -1) + (1,) * (ndim - 2))


def _inv_sqrt(values: np.ndarray) -> np.ndarray:
    """``caffe_powx(v, -0.5)``: powf, taken as the correctly rounded float32 of v^-½."""
    return (1.0 / np.sqrt(values.astype(np.float64))).astype(_F32)


def _batch_mean(values: np.ndarray) -> np.ndarray:
    """SegNet's two gemv: mean over spatial (α = 1/HW), then over the batch (α = 1/N)."""
    spatial = values.reshape(values.shape[0], values.shape[1], -1).astype(np.float64)
    per_item = (spatial.sum(axis=2) * float(_F32(1.0 / spatial.shape[2]))).astype(_F32)
    return (per_item.astype(np.float64).sum(axis=0) * float(_F32(1.0 / values.shape[0]))
            ).astype(_F32)


def _scale_shift(chain: ForkChain, x: np.ndarray) -> ChainForward:
    """SegNet INFERENCE (bn_layer.cpp): ``caffe_mul`` by scale, ``caffe_add`` of shift."""
    assert chain.gamma is not None and chain.beta is not None
    out = x * _per_channel(chain.gamma, x.ndim) + _per_channel(chain.beta, x.ndim)
    ones = np.ones(chain.channels, _F32)
    return ChainForward(out, x, np.zeros(chain.channels, _F32), ones)


def _segnet_batch(chain: ForkChain, x: np.ndarray) -> ChainForward:
    """SegNet LEARN (bn_layer.cpp): batch statistics even in TEST, ``var = E[x²] − E[x]²``."""
    assert chain.gamma is not None and chain.beta is not None and chain.eps is not None
    mean = _batch_mean(x)
    var = _batch_mean(x * x) - mean * mean
    std = np.sqrt(var + chain.eps)
    normalized = (x - _per_channel(mean, x.ndim)) / _per_channel(std, x.ndim)
    out = normalized * _per_channel(chain.gamma, x.ndim) + _per_channel(chain.beta, x.ndim)
    return ChainForward(out, normalized, mean, std)


def _inv_std(chain: ForkChain, x: np.ndarray) -> ChainForward:
    """yjxiong ``BN`` / NVIDIA ``BatchNorm`` TEST: subtract the mean, multiply by
    ``(var + eps)^−½`` (``caffe_add_scalar``, ``caffe_powx``), then scale and bias."""
    assert chain.mean is not None and chain.var is not None and chain.eps is not None
    summed = chain.var + chain.eps
    normalized = (x - _per_channel(chain.mean, x.ndim)) * _per_channel(_inv_sqrt(summed), x.ndim)
    out = normalized
    if chain.gamma is not None:
        out = out * _per_channel(chain.gamma, x.ndim)
    for shift in (chain.beta, chain.bias):
        if shift is not None:
            out = out + _per_channel(shift, x.ndim)
    return ChainForward(out, normalized, chain.mean, np.sqrt(summed))


_FORWARDS: dict[str, Callable[[ForkChain, np.ndarray], ChainForward]] = {
    "scale-shift": _scale_shift, "batch": _segnet_batch, "inv-std": _inv_std}


def reference_forward(chain: ReferenceChain, x: np.ndarray) -> ChainForward:
    """The chain's TEST-phase forward by its own implementation's formula.

    Raises:
        BlobError: ``x`` does not have the chain's channel count on axis 1.

    Example:
        >>> x = np.zeros((1, EXAMPLE_CHAIN.channels, 2, 2), np.float32)
        >>> reference_forward(EXAMPLE_CHAIN, x).output.shape
        (1, 16, 2, 2)
    """
    if isinstance(chain, CaffeChain):
        return caffe_chain_forward(chain, x)
    x = np.asarray(x, _F32)
    if x.ndim < 2 or x.shape[1] != chain.channels:
        raise BlobError(f"layer {chain.batch_norm!r} has {chain.channels} channels; an input "
                        f"of shape {list(x.shape)} has not")
    return _FORWARDS[chain.formula](chain, x)


def with_recorded_eps(chain: ReferenceChain, recorded: float) -> tuple[ReferenceChain, str | None]:
    """Accept a PSPNet/yjxiong eps raised to 1e-5 (``convert --clamp-eps``) when the file records
    exactly that eps: the reference then computes what yjxiong's cuDNN builds compute, and says
    so. Any other eps is judged against the fork's own (the CPU code's, unclamped)."""
    if not isinstance(chain, ForkChain) or chain.flavour != "yjxiong" or chain.eps is None:
        return chain, None
    from ..flavours.yjxiong import CUDNN_MIN_EPS

    clamped = max(chain.eps, _F32(CUDNN_MIN_EPS))
    if clamped == chain.eps or _F32(recorded) != clamped:
        return chain, None
    return replace(chain, eps=clamped), (
        f"eps {float(chain.eps):g} of bn_param raised to {float(clamped):g} as recorded in the "
        "converted file (convert --clamp-eps): checked against yjxiong's cuDNN builds, not the "
        "fork's CPU code")


def batch_statistics_reason(chain: ReferenceChain) -> str | None:
    """Why no eval-mode module can match a chain that normalizes with batch statistics in TEST
    (None when it uses stored statistics)."""
    if chain.use_global_stats:
        return None
    if isinstance(chain, ForkChain):
        return ("SegNet's BN in bn_mode LEARN (its default) normalizes with each batch's own "
                "mean and variance even in TEST, while an eval-mode BatchNorm uses the stored "
                "running statistics: no converted module reproduces the fork's output here "
                "(set bn_mode: INFERENCE after SegNet's compute_bn_statistics.py)")
    return ("Caffe normalizes this layer with each batch's own mean and variance "
            "(use_global_stats: false), while an eval-mode BatchNorm uses the stored running "
            "statistics: no converted module reproduces Caffe's output here")
