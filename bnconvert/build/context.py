"""What a layer handler works with while the net is assembled into a ``torch.fx`` graph.

A handler asks the ``BuildContext`` for its bottoms' shapes (Caffe's shape inference) and adds
its module with ``call``: the module becomes an attribute named by the layer's state_dict key
(``naming.key_for_layer_name``) and one ``call_module`` node; ``Made`` remembers how the module
was constructed so that ``source`` can write the same constructor into a model file.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from ..fold.chains import BatchNormChain
from ..graph.blobs import Version
from ..graph.shapes import Shape
from ..naming import key_for_layer_name
from ..read.net import Layer, Net
from ..records import FoldedBatchNorm
from .weights_first import construct_on_meta

__all__ = ["BuildContext", "Made", "Node"]

Node = fx.Node


@dataclass(frozen=True)
class Made:
    """A module's constructor call: ``factory(*args, **kwargs)`` (a torch.nn class, or a class
    or factory of ``bnconvert.modules``)."""

    factory: Callable[..., nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """Run the constructor."""
        return self.factory(*self.args, **self.kwargs)


@dataclass
class BuildContext:
    """The graph under construction and what handlers may ask about the net.

    Attributes:
        net: the typed net.
        graph: the ``torch.fx.Graph`` being built.
        root: the module holding every layer's module as an attribute.
        shapes: Caffe's shape of every blob version (``graph.shapes.infer_shapes``).
        inputs: the blob versions each layer reads (``BlobGraph.inputs``).
        chains: BatchNorm chains by BN layer index.
        records: folded BN records by BN layer name (when a caffemodel was given).
        made: how each module attribute was constructed, by attribute name.
        fused: indices of the layers a BN chain is fused into (they get a bias).
        bn_train: ``"caffe"``: BatchNorms that keep training as Caffe does
            (``CaffeBatchNorm*d``), None for ``torch.nn.BatchNorm*d``.
        on_meta: modules are constructed on the meta device without random initialisation
            (``weights_first``): the caller assigns every tensor from the caffemodel.
    """

    net: Net
    graph: fx.Graph
    root: nn.Module
    shapes: dict[Version, Shape | None]
    inputs: dict[int, list[Version]]
    chains: dict[int, BatchNormChain]
    records: dict[str, FoldedBatchNorm]
    made: dict[str, Made] = field(default_factory=dict)
    bn_train: str | None = None
    fused: frozenset[int] = frozenset()
    on_meta: bool = False

    def bottom_shapes(self, layer: Layer) -> list[Shape]:
        """The shapes of the layer's bottoms (every one is known when a handler runs)."""
        found = [self.shapes.get(v) for v in self.inputs[layer.index]]
        missing = [name for name, s in zip(layer.bottoms, found, strict=True) if s is None]
        if missing:
            raise ValueError(f"the shape of {', '.join(missing)} is unknown")
        return [s for s in found if s is not None]

    def call(self, layer: Layer, made: Made, args: Sequence[Node]) -> Node:
        """Add the layer's module (named by its key) and a node calling it on ``args``."""
        name = key_for_layer_name(layer.name)
        module = construct_on_meta(made.factory, made.args, made.kwargs) if self.on_meta \
            else made.build()
        self.root.add_module(name, module)
        self.made[name] = made
        return self.graph.call_module(name, tuple(args))

    def method(self, node: Node, name: str, *args: Any) -> Node:
        """A tensor method call node (``x.flatten(1)``)."""
        return self.graph.call_method(name, (node, *args))

    def function(self, fn: Callable[..., Any], *args: Any) -> Node:
        """A function call node (``torch.relu(x)``)."""
        return self.graph.call_function(fn, tuple(args))

    def unpack(self, node: Node, count: int) -> list[Node]:
        """``node[0]``, ..., ``node[count - 1]`` for a module returning a tuple."""
        return [self.graph.call_function(operator.getitem, (node, i)) for i in range(count)]

