"""Checks of a learned layer's blobs against the prototxt, before anything is written: the blob
count and every shape, as Caffe's ``Net::CopyTrainedLayersFrom`` checks them (a legacy
num/channels/height/width blob matches when right-aligned), and finite values.

A blob's input dimensions (a convolution's input channels, an InnerProduct's K = C·H·W) come
from Caffe's shape inference (``bnconvert.graph.known_shapes``), the one source of a blob's
shape. Where it cannot give them (a net without a declared input shape, a layer type without a
shape rule upstream, a layer Caffe refuses), those dimensions are not checked and the record
says so (``unchecked``); everything else still is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BlobError, MissingLayerError, NumericError
from ..fold.batch_norm import where
from ..graph import BlobGraph, Version
from ..graph.known_shapes import KnownShapes
from ..graph.shape_rules import Shape
from ..read.blob import BlobRef
from ..read.net import Layer, Net
from ..read.pages import release_pages

__all__ = ["NetContext", "Expected", "checked_arrays", "check_finite", "input_channels",
           "input_rank", "input_shape", "unchecked"]

_CHUNK = 1 << 20  # values per finiteness check (keeps the temporary mask small)


@dataclass(frozen=True, eq=False)
class NetContext:
    """What a layer handler may ask of the net: the graph, the ranks of blob versions and
    Caffe's shapes where shape inference gives them."""

    net: Net
    graph: BlobGraph
    ranks: dict[Version, int | None]
    known: KnownShapes


@dataclass(frozen=True)
class Expected:
    """One blob as the prototxt defines it: its meaning and shape (None: any size)."""

    meaning: str
    shape: tuple[int | None, ...]


def _matches(blob: BlobRef, shape: tuple[int | None, ...]) -> bool:
    got = blob.shape
    if blob.legacy:  # Caffe's Blob::ShapeEquals: the legacy dims right-aligned, 1s before
        if len(shape) > 4:
            return False
        padded: tuple[int | None, ...] = (1,) * (4 - len(shape)) + shape
        return all(e is None or e == g for e, g in zip(padded, got, strict=True))
    return len(got) == len(shape) and all(e is None or e == g
                                          for e, g in zip(shape, got, strict=True))


def _resolved(blob: BlobRef, shape: tuple[int | None, ...]) -> tuple[int, ...]:
    """The blob's shape in the prototxt's rank (a legacy blob's leading 1s dropped)."""
    return blob.shape[len(blob.shape) - len(shape):] if shape else ()


def _show(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def checked_arrays(net: Net, layer: Layer, expected: list[Expected],
                   why: str) -> list[np.ndarray]:
    """The layer's blobs as read-only float32 arrays in the prototxt's shapes.

    Args:
        expected: every blob the prototxt implies, in Caffe's order.
        why: the prototxt facts the shapes come from, for messages (``num_output 64, ...``).

    Raises:
        MissingLayerError: the caffemodel has no weights for the layer.
        BlobError: a different number of blobs, or a blob of another shape.
        NumericError: a NaN or Inf value.
    """
    if layer.blobs is None:
        raise MissingLayerError(
            f"{where(net, layer)} has no weights in the caffemodel, so Caffe would run it "
            "with its initial (filler) values; is the caffemodel from this net?")
    if len(layer.blobs) != len(expected):
        wanted = ", ".join(e.meaning for e in expected) or "none"
        raise BlobError(f"{where(net, layer)} has {len(layer.blobs)} blobs in the caffemodel, "
                        f"the prototxt needs {len(expected)} ({wanted}; {why})")
    arrays = []
    for index, (blob, want) in enumerate(zip(layer.blobs, expected, strict=True)):
        if not _matches(blob, want.shape):
            raise BlobError(
                f"{where(net, layer)}: blob {index} ({want.meaning}) has shape "
                f"{list(blob.shape)} in the caffemodel, the prototxt needs {_show(want.shape)} "
                f"({why}); Caffe refuses this (shape mismatch): is the caffemodel from this net?")
        array = blob.values().reshape(_resolved(blob, want.shape))
        check_finite(net, layer, f"blob {index} ({want.meaning})", array)
        arrays.append(array)
    return arrays


def check_finite(net: Net, layer: Layer, what: str, array: np.ndarray) -> None:
    """Raise NumericError naming the first NaN/Inf of ``array`` (checked in chunks, whose
    memory-mapped pages are released once checked).

    Raises:
        NumericError: a value is NaN or infinite.
    """
    flat = array.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK]
        if np.isfinite(chunk).all():  # the common case: one pass, no index
            release_pages(chunk)  # read once: the pages need not stay resident
            continue
        bad = int(np.flatnonzero(~np.isfinite(chunk))[0])
        kind = "NaN" if np.isnan(chunk[bad]) else "Inf"
        raise NumericError(f"{where(net, layer)}: {what} holds {kind} at flat index "
                           f"{start + bad}; the model is corrupt or diverged")


def input_rank(ctx: NetContext, layer: Layer, bottom: int = 0) -> int | None:
    """The rank of the layer's ``bottom``-th input: from its inferred shape, else from the
    rank walk (which knows ranks where shapes are unknown, e.g. a caffemodel alone)."""
    shape = ctx.known.input_shape(layer, bottom)
    if shape is not None:
        return len(shape)
    inputs = ctx.graph.inputs[layer.index]
    return ctx.ranks.get(inputs[bottom]) if len(inputs) > bottom else None


def input_shape(ctx: NetContext, layer: Layer, bottom: int = 0) -> Shape | None:
    """The shape of the layer's ``bottom``-th input from Caffe's shape inference, or None."""
    return ctx.known.input_shape(layer, bottom)


def input_channels(ctx: NetContext, layer: Layer, axis: int = 1) -> int | None:
    """The size of axis ``axis`` (Caffe's ``axis`` field, negative from the end) of the layer's
    first input, from Caffe's shape inference; None where it is unknown."""
    shape = ctx.known.input_shape(layer)
    if shape is None or not -len(shape) <= axis < len(shape):
        return None
    return shape[axis]


def unchecked(ctx: NetContext, layer: Layer, what: str) -> str:
    """The note for a dimension that could not be checked: the layer, what, and why.

    Example: ``conv2: input channels not checked: the net declares no shape for its input
    'data'``.
    """
    return f"{layer.name}: {what} not checked: {ctx.known.why_unknown(layer)}"
