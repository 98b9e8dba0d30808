"""The registry of whole-model layer handlers: one named function per Caffe type string, turning
a typed ``Layer`` (its blobs checked against the prototxt) into a ``LearnedLayer`` record, or None
for a layer of that type that has no learned blobs (a two-bottom Bias). Handlers live in
``convolution.py`` and ``elementwise.py``; importing this package registers them all."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnsupportedLayerError
from ..fold.batch_norm import where
from ..read.net import Layer
from ..registry import Registry
from .checks import NetContext
from .records import LearnedLayer

__all__ = ["Handler", "HANDLERS", "handles", "params_of"]

Handler = Callable[[NetContext, Layer], LearnedLayer | None]
#: Caffe type string -> the handler that converts its layers
HANDLERS: Registry[Handler] = Registry("whole-model layer handler")


def handles(*types: str) -> Callable[[Handler], Handler]:
    """Decorator: register a handler for the Caffe ``types`` (a second registration fails)."""
    return HANDLERS.register(*types)


def params_of(ctx: NetContext, layer: Layer, cls: type) -> object:
    """The layer's typed parameters, which must be of ``cls``.

    Raises:
        UnsupportedLayerError: the parameters could not be read (the reader's problem).
    """
    if not isinstance(layer.params, cls):
        raise UnsupportedLayerError(f"{where(ctx.net, layer)}: cannot read its parameters: "
                                    f"{layer.problem or 'unreadable'}")
    return layer.params
