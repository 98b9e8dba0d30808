"""BN flavours, one module each (``bvlc``, ``nvcaffe``, ``intel``, ``segnet``, ``yjxiong``),
and how a layer's flavour is detected. See ``base.Flavour`` for what a flavour knows.

Adding a fork: one module with a ``Flavour`` subclass decorated with ``@flavour``, imported
below, and its test.
"""

from __future__ import annotations

from ..errors import UnsupportedLayerError
from ..read.net import Layer

# Each module registers its flavours; their claims exclude each other, so the order below is
# only the order in which ``--flavor`` lists them.
from . import bvlc  # noqa: E402, F401

# isort: split
from . import nvcaffe  # noqa: E402, F401

# isort: split
from . import intel  # noqa: E402, F401

# isort: split
from . import segnet  # noqa: E402, F401

# isort: split
from . import yjxiong  # noqa: E402, F401
from .base import FLAVOURS, Flavour, flavour

__all__ = ["Flavour", "FLAVOURS", "flavour", "detect_flavour", "flavour_by_id",
           "selectable_ids", "bn_like_types"]



def bn_like_types() -> frozenset[str]:
    """The Caffe types of BN-like layers: those some registered flavour handles."""
    return frozenset(f.layer_type for f in FLAVOURS.values())

#: what layouts each BN-like type has, for the error on a layer that fits none
_LAYOUTS = {
    "BatchNorm": "no known BatchNorm layout (BVLC: 3 blobs; NVIDIA: 3 or 5; Intel: 4 or 5)",
    "BN": "a BN layer needs 2 blobs (SegNet: scale, shift) or 4 (PSPNet/yjxiong: slope, bias, "
          "mean, variance)",
}


def selectable_ids() -> tuple[str, ...]:
    """The ids ``--flavor`` accepts."""
    return tuple(f.id for f in FLAVOURS.values() if f.selectable)


def flavour_by_id(flavour_id: str) -> Flavour | None:
    """The registered flavour of an id, or None."""
    return FLAVOURS.get(flavour_id)


def _blob_layout(layer: Layer) -> str:
    blobs = layer.blobs or ()
    shapes = ", ".join(str(list(b.shape)) for b in blobs)
    return f"{len(blobs)} blobs ({shapes})" if blobs else "0 blobs"


def detect_flavour(layer: Layer, override: str | None = None) -> Flavour:
    """The flavour of a BN-like layer.

    Args:
        override: a flavour id from ``--flavor``; it wins where the layer type allows it.

    Raises:
        UnsupportedLayerError: the blobs fit no known layout, or the override does not fit the
            layer type.
    """
    if override is not None:
        allowed = [f.id for f in FLAVOURS.values() if f.selectable and f.layer_type == layer.type]
        chosen = FLAVOURS.get(override)
        if chosen is None or override not in allowed:
            raise UnsupportedLayerError(
                f"--flavor {override} does not apply to layer {layer.name!r} ({layer.type}); "
                f"for {layer.type} use one of {', '.join(sorted(allowed))}")
        return chosen.refine(layer)
    for candidate in FLAVOURS.values():
        if candidate.layer_type == layer.type and candidate.claims(layer):
            return candidate
    raise UnsupportedLayerError(
        f"layer {layer.name!r} ({layer.type}) has {_blob_layout(layer)}: "
        f"{_LAYOUTS.get(layer.type, 'no known layout')}; if you know its origin, pass "
        f"--flavor {'|'.join(selectable_ids())}")
