"""The layer handlers' registry: one named function per Caffe type string.

A handler gets the build context, the typed layer and the graph nodes of its bottoms, adds what
the layer computes to the graph, and returns one node per top. Pass-through layers (Split,
Dropout in TEST, a Scale folded into its BatchNorm) return their bottoms.
"""

from __future__ import annotations

from collections.abc import Callable

from ..read.net import Layer
from ..registry import Registry
from .context import BuildContext, Node

__all__ = ["HANDLERS", "handles", "Handler", "LEFT_OUT", "DATA_SOURCES"]

Handler = Callable[[BuildContext, Layer, list[Node]], list[Node]]
#: Caffe type string -> handler
HANDLERS: Registry[Handler] = Registry("layer builder")
handles = HANDLERS.register

#: train/test-only layer types the built module leaves out (with a note)
LEFT_OUT = frozenset({
    "Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss", "HDF5Output"})
#: layer types that read a dataset: a deploy net declares its inputs instead
DATA_SOURCES = frozenset({"Data", "ImageData", "MemoryData", "WindowData", "HDF5Data",
                          "Python", "VideoData", "AnnotatedData"})


def load_handlers() -> None:
    """Import the modules that register handlers."""
    from . import handlers_learned, handlers_simple, handlers_structure  # noqa: F401
