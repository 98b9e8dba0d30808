"""Caffe's shape inference: the shape of every blob version, by Caffe's own rules.

Net inputs come from ``Input`` layers, the legacy ``input:`` header and ``DummyData``; each
layer type's rule (``shape_rules``) gives its tops from its bottoms as Caffe's ``Reshape``
does (convolution floors, pooling rounds up and clips, InnerProduct keeps the axes before
``axis``...). A layer Caffe would refuse to set up raises ``RefusedByCaffeError`` with Caffe's
reason; a type without a rule, a layer whose parameters could not be read, or a bottom of
unknown shape, gives None for its tops.

Example:
    >>> shapes = infer_shapes(EXAMPLE_NET)
    >>> shapes[("res2a_branch1", 1)]
    (2, 16, 8, 8)
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import RefusedByCaffeError
from ..layers import UnreadableParams
from ..read.net import Layer, Net
from . import shape_rules_structure  # noqa: F401  (registers the routing rules)
from .blobs import Version
from .shape_rules import RULES, Refused, Shape

__all__ = ["infer_shapes", "infer_shapes_lenient", "Shape", "declared_inputs"]


def declared_inputs(net: Net) -> dict[str, Shape | None]:
    """The net's inputs in declaration order: the legacy header's, then each ``Input`` layer's
    tops (``DummyData`` tops too: a deploy file's input placeholder), with their shapes.

    Example:
        >>> declared_inputs(EXAMPLE_NET)
        {'data': (2, 8, 8, 8)}
    """
    found: dict[str, Shape | None] = dict(net.input_shapes)
    for layer in net.layers:
        if layer.type in ("Input", "DummyData"):
            found.update(zip(layer.tops, declared_inputs_of(layer), strict=True))
    return found


def infer_shapes(net: Net,
                 inputs: Mapping[str, Shape] | None = None) -> dict[Version, Shape | None]:
    """The shape of every blob version ``(blob name, writing layer index)`` (-1: header input).

    Args:
        net: the typed net.
        inputs: shapes overriding the declared ones, by input blob name (another batch size).

    Returns:
        Per version a tuple of ints, or None where Caffe's shape cannot be derived (a type
        without a rule, an input without a declared shape).

    Raises:
        RefusedByCaffeError: a layer Caffe refuses to set up, naming the layer and the reason.
    """
    return _walk(net, dict(inputs or {}), None)


def infer_shapes_lenient(net: Net) -> tuple[dict[Version, Shape | None], dict[int, str]]:
    """``infer_shapes`` at the declared input shapes that goes on past a layer Caffe refuses:
    the refused layer's tops get no shape, and Caffe's reason is kept by layer index (for the
    checks that say what they could not check instead of stopping).

    Returns:
        The shapes as ``infer_shapes`` gives them, and the refusals.
    """
    refused: dict[int, str] = {}
    return _walk(net, {}, refused), refused


def _walk(net: Net, given: Mapping[str, Shape],
          refused: dict[int, str] | None) -> dict[Version, Shape | None]:
    shapes: dict[Version, Shape | None] = {}
    current: dict[str, Shape | None] = {}
    for name, shape in net.input_shapes.items():
        current[name] = given.get(name, shape)
        shapes[(name, -1)] = current[name]
    for layer in net.layers:
        bottoms = [current.get(name) for name in layer.bottoms]
        try:
            tops = _layer_shapes(net, layer, bottoms, given)
        except RefusedByCaffeError as exc:
            if refused is None:
                raise
            refused[layer.index] = str(exc)
            tops = [None] * len(layer.tops)
        for name, top in zip(layer.tops, tops, strict=True):
            current[name] = top
            shapes[(name, layer.index)] = top
    return shapes


def _layer_shapes(net: Net, layer: Layer, bottoms: list[Shape | None],
                  given: Mapping[str, Shape]) -> list[Shape | None]:
    if layer.type in ("Input", "DummyData"):
        declared = declared_inputs_of(layer)
        return [given.get(top, shape) for top, shape in zip(layer.tops, declared, strict=True)]
    rule = RULES.get(layer.type)
    if rule is None or isinstance(layer.params, UnreadableParams) \
            or any(b is None for b in bottoms):
        return [None] * len(layer.tops)
    try:
        tops = rule(layer, [b for b in bottoms if b is not None])
    except Refused as exc:
        raise RefusedByCaffeError(
            f"{net.prototxt or net.describe()}: layer {layer.name!r} ({layer.type}): Caffe "
            f"refuses it: {exc}") from None
    found: list[Shape | None] = list(tops)
    if len(found) == 1 and len(layer.tops) > 1:
        return found * len(layer.tops)
    return [*found, *[None] * (len(layer.tops) - len(found))][: len(layer.tops)]


def declared_inputs_of(layer: Layer) -> list[Shape | None]:
    """The shapes an ``Input``/``DummyData`` layer declares, one per top (one for all)."""
    shapes = getattr(layer.params, "shape", ())
    return [tuple(shapes[min(i, len(shapes) - 1)]) if shapes else None
            for i in range(len(layer.tops))]
