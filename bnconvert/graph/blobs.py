"""Blob versions through the net in layer order: who wrote each version and who reads it.

In-place layers (top == bottom) make a new version of the same blob name, so a version is
``(blob name, index of the writing layer)``, -1 for a net input. Pairing, fusing and module
building ask this graph; nothing in it looks at layer names or types.
"""

from __future__ import annotations

from collections import defaultdict

from ..read.net import Layer, Net

__all__ = ["BlobGraph", "Version"]

Version = tuple[str, int]  #: (blob name, index of the writing layer; -1 = net input)


class BlobGraph:
    """Blob versions in layer order (so in-place layers are followed): who wrote each one, and
    who reads it.

    Example:
        >>> graph = BlobGraph(EXAMPLE_NET)
        >>> [r.name for r in graph.readers_of(EXAMPLE_NET.layers[0])]
        ['res2a_branch1', 'res2a_branch2a']
    """

    def __init__(self, net: Net) -> None:
        self.layers = net.layers
        self.readers: dict[Version, list[Layer]] = defaultdict(list)
        self.inputs: dict[int, list[Version]] = {}
        self.outputs: dict[int, list[Version]] = {}
        writer: dict[str, int] = {}
        for layer in net.layers:
            versions = [(name, writer.get(name, -1)) for name in layer.bottoms]
            self.inputs[layer.index] = versions
            for version in versions:
                self.readers[version].append(layer)
            for name in layer.tops:
                writer[name] = layer.index
            self.outputs[layer.index] = [(name, layer.index) for name in layer.tops]

    def readers_of(self, layer: Layer) -> list[Layer]:
        """The layers that read ``layer``'s first top."""
        outputs = self.outputs[layer.index]
        return self.readers.get(outputs[0], []) if outputs else []

    def sole_reader(self, layer: Layer) -> tuple[Layer | None, list[Layer]]:
        """The only reader of ``layer``'s first top, and the full reader list."""
        readers = self.readers_of(layer)
        return (readers[0] if len(readers) == 1 else None), readers

    def producer_of(self, layer: Layer) -> Layer | None:
        """The layer that wrote ``layer``'s first bottom (None for a net input)."""
        inputs = self.inputs[layer.index]
        writer = inputs[0][1] if inputs else -1
        return self.layers[writer] if writer >= 0 else None
