"""Which batch-normalization implementation a BN-like layer comes from.

Told apart by layer type, parameters (fork fields included) and, when the caffemodel is loaded,
the blob count and shapes. Never guessed silently: an unrecognized layout is an error naming
the layer, its blob count and shapes; a file that is ambiguous can be settled with ``--flavor``.

- ``bvlc``: ``BatchNorm``; blobs mean·s, var·s, s.
- ``nvcaffe``: ``BatchNorm`` with ``scale_bias`` (or scale/bias fillers); blobs mean, var,
  correction (1)[, scale, bias].
- ``nvcaffe-digits``: ``BatchNorm``, 5 blobs, the last of 1 element; scale, bias, mean, var,
  reserved.
- ``intel``: ``BatchNorm``, 4-5 blobs (MKL engines, merged Scale); mean·s, var·s, s, gamma[,
  beta].
- ``segnet``: ``BN`` with ``bn_param {bn_mode, scale_filler, shift_filler}``; scale, shift.
- ``yjxiong``: ``BN`` with ``bn_param {slope_filler, bias_filler, frozen, ...}``; slope, bias,
  mean, var.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedLayerError
from ..read.fork_params import truthy
from ..read.net import Layer
from .params import as_float32, batch_norm_eps

__all__ = ["BN_LIKE_TYPES", "FLAVOUR_TITLES", "FLAVOUR_IDS", "detect_flavour", "has_fused_affine",
           "declared_eps", "fork_param", "FORK_AFFINE"]

BN_LIKE_TYPES = frozenset({"BatchNorm", "BN"})
FLAVOUR_TITLES = {
    "bvlc": "BVLC BatchNorm",
    "nvcaffe": "NVIDIA Caffe BatchNorm",
    "nvcaffe-digits": "NVIDIA Caffe BatchNorm (legacy DIGITS blob order)",
    "intel": "Intel Caffe BatchNorm (merged Scale)",
    "segnet": "SegNet/ENet BN",
    "yjxiong": "PSPNet/yjxiong BN",
    "bn-unknown": "BN (SegNet or PSPNet style: the caffemodel's blobs tell)",
}
FLAVOUR_IDS = ("bvlc", "nvcaffe", "intel", "segnet", "yjxiong")
#: Fork layers that apply a learned affine after a BatchNorm, and why bnconvert does not fold
#: them. The BatchNorm before one is converted on its own (non-affine); the fork layer's
#: weights are not in the output.
FORK_AFFINE = {
    "EltwiseAffine": (
        "a layer of an unmerged Caffe pull request (BVLC/caffe#2996, y = slope * x + bias, "
        "replaced upstream by Scale with bias_term) whose blob layout and channel sharing "
        "bnconvert has no reference output for; it is not folded into the BatchNorm, port its "
        "slope and bias separately (or rewrite it as a Scale layer with bias_term: true)"),
}
_SEGNET_KEYS = {"bn_mode", "scale_filler", "shift_filler"}
_YJXIONG_KEYS = {"slope_filler", "bias_filler", "frozen", "momentum", "eps", "engine"}


def _nvidia_hint(layer: Layer) -> bool:
    fork = layer.extras.get("batch_norm_param", {})
    return truthy(fork.get("scale_bias", "false")) or "scale_filler" in fork \
        or "bias_filler" in fork


def _blob_layout(layer: Layer) -> str:
    blobs = layer.blobs or ()
    shapes = ", ".join(str(list(b.shape)) for b in blobs)
    return f"{len(blobs)} blobs ({shapes})" if blobs else "0 blobs"


def _unrecognized(layer: Layer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r} ({layer.type}) has {_blob_layout(layer)}: {why}; "
        f"if you know its origin, pass --flavor {'|'.join(FLAVOUR_IDS)}")


def _batch_norm_flavour(layer: Layer) -> str:
    hint = _nvidia_hint(layer)
    if layer.blobs is None:
        return "nvcaffe" if hint else "bvlc"
    count = len(layer.blobs)
    if count == 3:
        return "nvcaffe" if hint else "bvlc"
    if count == 5 and layer.blobs[4].shape_count == 1:
        return "nvcaffe-digits"
    if count == 5:
        return "nvcaffe" if hint else "intel"
    if count == 4 and not hint:
        return "intel"
    raise _unrecognized(
        layer, "no known BatchNorm layout (BVLC: 3 blobs; NVIDIA: 3 or 5; Intel: 4 or 5)")


def _bn_flavour(layer: Layer) -> str:
    keys = set(layer.extras.get("bn_param", {}))
    if layer.blobs is not None:
        count = len(layer.blobs)
        if count == 2 and not keys & _YJXIONG_KEYS:
            return "segnet"
        if count == 4 and not keys & _SEGNET_KEYS:
            return "yjxiong"
        raise _unrecognized(layer, "a BN layer needs 2 blobs (SegNet: scale, shift) or 4 "
                                   "(PSPNet/yjxiong: slope, bias, mean, variance)")
    if keys & _SEGNET_KEYS:
        return "segnet"
    if keys & _YJXIONG_KEYS:
        return "yjxiong"
    return "bn-unknown"


def detect_flavour(layer: Layer, override: str | None = None) -> str:
    """The flavour id of a BN-like layer (see the module table).

    Args:
        override: a flavour id from ``--flavor``; it wins where the layer type allows it.

    Raises:
        UnsupportedLayerError: the blobs fit no known layout, or the override does not fit the
            layer type.
    """
    if override is not None:
        allowed = {"BatchNorm": {"bvlc", "nvcaffe", "intel"}, "BN": {"segnet", "yjxiong"}}
        if override not in allowed.get(layer.type, set()):
            raise UnsupportedLayerError(
                f"--flavor {override} does not apply to layer {layer.name!r} ({layer.type}); "
                f"for {layer.type} use one of {', '.join(sorted(allowed.get(layer.type, ())))}")
        if override == "nvcaffe" and layer.blobs and len(layer.blobs) == 5 \
                and layer.blobs[4].shape_count == 1:
            return "nvcaffe-digits"
        return override
    if layer.type == "BatchNorm":
        return _batch_norm_flavour(layer)
    return _bn_flavour(layer)


def has_fused_affine(layer: Layer, flavour: str) -> bool:
    """True when the layer carries its own scale and shift (no Scale layer is paired then)."""
    if flavour in ("segnet", "yjxiong", "nvcaffe-digits"):
        return True
    if flavour == "nvcaffe":
        return _nvidia_hint(layer) if layer.blobs is None else len(layer.blobs) == 5
    if flavour == "intel":
        return layer.blobs is not None and len(layer.blobs) > 3
    return flavour == "bn-unknown"


def declared_eps(layer: Layer, flavour: str) -> float | None:
    """The eps the layer's own implementation uses in TEST (float32 widened), None when it
    uses none (SegNet INFERENCE: a pure scale and shift)."""
    if flavour == "segnet":
        mode = str(fork_param(layer, "bn_param", "bn_mode", "LEARN")).upper()
        return None if mode in ("INFERENCE", "1") else 1e-9
    if flavour == "yjxiong":
        return as_float32(float(fork_param(layer, "bn_param", "eps", 1e-5)))
    eps = batch_norm_eps(layer)
    return max(eps, as_float32(1e-5)) if flavour.startswith("nvcaffe") else eps


def fork_param(layer: Layer, block: str, name: str, default: Any = None) -> Any:
    """A fork field's value as written, e.g. ``fork_param(layer, "bn_param", "eps")``."""
    return layer.extras.get(block, {}).get(name, default)
