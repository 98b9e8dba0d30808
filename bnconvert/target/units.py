"""What the matcher compares: one learned unit of either side (a Caffe layer or BN chain, a
target model's parametric module), with its kind, its tensors' shapes in PyTorch's layout, and
which earlier units feed it. Pure data: no torch, no numpy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Unit", "KINDS", "NET_INPUT", "Shape", "shape_text", "shapes_compatible"]

#: the unit kinds both sides know
KINDS = ("conv", "deconv", "linear", "batch_norm", "prelu", "scale", "bias", "embed")
#: the pseudo unit index of the net's (model's) input in ``Unit.inputs``
NET_INPUT = -1

Shape = tuple[int | None, ...]  #: None: a size the prototxt alone does not tell


@dataclass(frozen=True)
class Unit:
    """One learned unit.

    Attributes:
        index: position in its side's order (Caffe layer order; the target's run order).
        name: Caffe layer name (a BN chain: the BatchNorm's) or the target module's name.
        kind: one of ``KINDS``, or ``"other:<Class>"`` for a target module of another kind.
        shapes: tensor name -> shape in PyTorch's layout (``weight``, ``bias``,
            ``running_mean``, ``running_var``).
        inputs: indices of the nearest units whose outputs reach this one's input through
            parameter-free layers only (``NET_INPUT`` for the net's input).
        feeds: index of the batch_norm unit that directly and solely reads this unit's output
            (nothing in between), else None: where a convolution's bias can be absorbed.
        eps: a batch_norm unit's eps.
        kernel, stride: a convolution's geometry (empty for other kinds).
        layers: the Caffe layers of the unit (a BN chain has up to three); the module's name on
            the target side.
    """

    index: int
    name: str
    kind: str
    shapes: Mapping[str, Shape]
    inputs: frozenset[int] = frozenset()
    feeds: int | None = None
    eps: float | None = None
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    layers: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """``name (kind weight 64x3x7x7)`` for messages."""
        parts = " ".join(f"{k} {shape_text(v)}" for k, v in self.shapes.items())
        return f"{self.name} ({self.kind}{' ' + parts if parts else ''})"


def shape_text(shape: Shape) -> str:
    """``64x3x7x7``, ``?`` for an unknown size.

    Example:
        >>> shape_text((64, None, 1, 1))
        '64x?x1x1'
    """
    return "x".join("?" if s is None else str(s) for s in shape) or "scalar"


def _squeezed(shape: Shape) -> Shape:
    end = len(shape)
    while end > 2 and shape[end - 1] == 1:
        end -= 1
    return shape[:end]


def shapes_compatible(caffe: Shape, target: Shape, reshape: bool = False) -> bool:
    """True when the Caffe tensor fits the target's (None fits any size; with ``reshape``,
    trailing 1-sized kernel axes are dropped: a 1×1 convolution's weight onto a Linear's).

    Example:
        >>> shapes_compatible((1000, 1024, 1, 1), (1000, 1024), reshape=True)
        True
        >>> shapes_compatible((64, None, 3, 3), (64, 3, 3, 3)), shapes_compatible((2,), (3,))
        (True, False)
    """
    if reshape:
        caffe, target = _squeezed(caffe), _squeezed(target)
    return len(caffe) == len(target) and all(
        c is None or t is None or c == t for c, t in zip(caffe, target, strict=True))

