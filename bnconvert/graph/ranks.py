"""Blob ranks (number of axes) through the net, so each BN knows whether it is a
``BatchNorm1d``, ``2d`` or ``3d``. Shapes are not needed, only ranks; unknown layers keep the
rank of their first bottom, which is right for the element-wise layers that fill real nets."""

from __future__ import annotations

from collections.abc import Callable

from ..layers.learned import InnerProductParams
from ..layers.structure import DummyDataParams, FlattenParams, InputParams, ReshapeParams
from ..read.net import Layer, Net
from ..registry import Registry

__all__ = ["infer_blob_ranks"]

_RankRule = Callable[[Layer, list[int | None]], list[int | None]]
_RULES: Registry[_RankRule] = Registry("rank rule")
_rule = _RULES.register


def _tops(layer: Layer, rank: int | None) -> list[int | None]:
    return [rank] * len(layer.tops)


@_rule("Input", "DummyData")
def _declared(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    assert isinstance(layer.params, InputParams | DummyDataParams)
    shapes = layer.params.shape
    if not shapes:
        return _tops(layer, None if layer.type == "Input" else 4)
    ranks: list[int | None] = [len(shapes[min(i, len(shapes) - 1)])
                               for i in range(len(layer.tops))]
    return ranks


@_rule("Data", "ImageData", "MemoryData", "WindowData", "Python", "VideoData")
def _data(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    # Image-like first top; labels are (N,) or (N,1,1,1): their rank never feeds a BN.
    ranks: list[int | None] = [4, *([1] * (len(layer.tops) - 1))]
    return ranks if not bottoms else _same(layer, bottoms)


@_rule("Convolution", "Deconvolution")
def _convolution(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    """Rank of the input; when the net does not tell (a caffemodel alone), the rank of the
    weights, which is that of the data: (out, in, k1, ..., kn)."""
    rank = bottoms[0] if bottoms else None
    if rank is None and layer.blobs:
        rank = len(layer.blobs[0].shape)
    return _tops(layer, rank)


@_rule("InnerProduct")
def _inner_product(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    assert isinstance(layer.params, InnerProductParams)
    axis = layer.params.axis
    rank = bottoms[0] if bottoms else None
    if axis < 0:
        return _tops(layer, None if rank is None else rank + axis + 1)
    return _tops(layer, axis + 1)


@_rule("Flatten")
def _flatten(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    param = layer.params
    assert isinstance(param, FlattenParams)
    rank = bottoms[0] if bottoms else None
    if rank is None:
        return _tops(layer, 2 if param.axis == 1 and param.end_axis == -1 else None)
    axis = param.axis % rank
    end = param.end_axis % rank
    return _tops(layer, rank - (end - axis))


@_rule("Reshape")
def _reshape(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    param = layer.params
    assert isinstance(param, ReshapeParams)
    rank = bottoms[0] if bottoms else None
    if param.axis == 0 and param.num_axes == -1:
        return _tops(layer, len(param.shape))
    if rank is None:
        return _tops(layer, None)
    replaced = rank - (param.axis % rank) if param.num_axes == -1 else param.num_axes
    return _tops(layer, rank - replaced + len(param.shape))


def _same(layer: Layer, bottoms: list[int | None]) -> list[int | None]:
    return _tops(layer, bottoms[0] if bottoms else None)


def infer_blob_ranks(net: Net) -> dict[tuple[str, int], int | None]:
    """The rank of every blob version: ``(blob name, index of the layer that wrote it)``.

    Index -1 is a net input from the legacy header. Returns ranks per version because in-place
    layers reuse blob names (an InnerProduct may overwrite a 4-D name with a 2-D blob).
    """
    ranks: dict[tuple[str, int], int | None] = {}
    current: dict[str, int | None] = {name: len(shape) for name, shape in net.input_shapes.items()}
    for name, rank in current.items():
        ranks[(name, -1)] = rank
    for layer in net.layers:
        bottoms = [current.get(name) for name in layer.bottoms]
        out = _RULES.get(layer.type, _same)(layer, bottoms)
        for name, rank in zip(layer.tops, out, strict=True):
            current[name] = rank
            ranks[(name, layer.index)] = rank
    return ranks
