"""Every blob's value in one forward of a built net (for verify and tests): the graph is
interpreted node by node and the nodes that hold a blob's final value are kept."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from .network import BuiltNet

__all__ = ["blob_values"]


class _Recorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, wanted: set[str]) -> None:
        super().__init__(module)
        self.wanted, self.values = wanted, dict[str, Any]()

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.name in self.wanted:
            self.values[n.name] = result
        return result


def blob_values(built: BuiltNet, *inputs: torch.Tensor,
                partial: bool = False) -> dict[str, torch.Tensor]:
    """The value of every blob after the forward, by blob name (in-place blobs: the last
    writer's value, as pycaffe's ``net.blobs`` after ``net.forward()``).

    Args:
        partial: when a layer fails (e.g. shapes that no longer fit after a diverging blob),
            return the blobs computed before it instead of raising.

    Example:
        >>> from bnconvert.build.api import build_model
        >>> values = blob_values(build_model(EXAMPLE_NET), torch.randn(2, 8, 8, 8))
        >>> tuple(values["res2a_branch1"].shape)
        (2, 16, 8, 8)
    """
    recorder = _Recorder(built.module, set(built.blob_nodes.values()))
    with torch.no_grad():
        try:
            recorder.run(*inputs)
        except RuntimeError:
            if not partial:
                raise
    return {blob: recorder.values[node] for blob, node in built.blob_nodes.items()
            if node in recorder.values}
