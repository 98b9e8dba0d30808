"""Caffe's shapes for the stages that check or describe learned layers (whole-model checks,
the Caffe side of a target mapping): ``infer_shapes`` run once, and where it cannot give a
blob's shape, why not, in words a note can carry.

Shape inference gives no shape downstream of an input without a declared shape (a caffemodel
of a train net: its ``Data`` layers read the shape from the data), of a layer type without a
shape rule, or of a layer Caffe refuses at the declared shapes (whose reason is kept: the
layers before it are still checked). Callers check what the known shapes allow and say
what they could not check; they never guess a shape.

Example:
    >>> known = known_shapes(EXAMPLE_NET)
    >>> known.input_shape(EXAMPLE_NET.layers[1])  # res2a_branch1 reads data
    (2, 8, 8, 8)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..layers import UnreadableParams
from ..read.net import Layer, Net
from .blobs import BlobGraph, Version
from .shape_rules import RULES, Shape
from .shapes import infer_shapes_lenient

__all__ = ["KnownShapes", "known_shapes"]


@dataclass(frozen=True, eq=False)
class KnownShapes:
    """The shape of every blob version where Caffe's shape inference gives it.

    Attributes:
        net: the typed net.
        graph: its blob graph.
        shapes: per blob version, its shape, or None where it is unknown.
        refused: Caffe's reason, by layer index, for each layer it refuses at these shapes.
    """

    net: Net
    graph: BlobGraph
    shapes: Mapping[Version, Shape | None]
    refused: Mapping[int, str]

    def input_shape(self, layer: Layer, bottom: int = 0) -> Shape | None:
        """The shape of the layer's ``bottom``-th input, None where it is unknown."""
        inputs = self.graph.inputs[layer.index]
        return self.shapes.get(inputs[bottom]) if len(inputs) > bottom else None

    def why_unknown(self, layer: Layer, bottom: int = 0) -> str:
        """Why the layer's ``bottom``-th input shape is unknown: the first blob upstream whose
        shape shape inference cannot give, and the reason."""
        inputs = self.graph.inputs[layer.index]
        if len(inputs) <= bottom:
            return f"the layer has no bottom {bottom}"
        return self._origin(inputs[bottom])

    def _origin(self, version: Version) -> str:
        seen: set[Version] = set()
        while version not in seen:
            seen.add(version)
            name, writer = version
            if writer < 0:
                return f"the net declares no shape for its input {name!r}"
            layer = self.net.layers[writer]
            unknown = [v for v in self.graph.inputs[writer] if self.shapes.get(v) is None]
            if unknown:
                version = unknown[0]
                continue
            if writer in self.refused:
                return self.refused[writer]
            if not self.graph.inputs[writer]:  # Input without a shape, Data, ImageData...
                return (f"the net declares no shape for blob {name!r} (top of layer "
                        f"{layer.name!r}, {layer.type})")
            if isinstance(layer.params, UnreadableParams):
                return (f"the parameters of layer {layer.name!r} ({layer.type}) upstream could "
                        f"not be read: {layer.params.problem}")
            if layer.type not in RULES:
                return (f"blob {name!r} comes from layer {layer.name!r} ({layer.type}), whose "
                        "output shape bnconvert cannot infer")
            return f"blob {name!r} of layer {layer.name!r} ({layer.type}) has no known shape"
        return f"blob {version[0]!r} has no known shape"


def known_shapes(net: Net, graph: BlobGraph | None = None) -> KnownShapes:
    """Run Caffe's shape inference on ``net`` once at its declared input shapes, going on past
    a layer Caffe refuses (its tops unknown, its reason kept) instead of raising.

    Args:
        net: the typed net.
        graph: its blob graph, if already built.

    Returns:
        The known shapes.
    """
    shapes, refused = infer_shapes_lenient(net)
    return KnownShapes(net, graph or BlobGraph(net), shapes, refused)
