"""Run the mapped target and Caffe's forward on the same input and name the first target module
whose output differs from its Caffe unit's, with the reason where it can be named: a stride on
another convolution, pooling rounding or padding, a BN eps, an operation between two modules.

Both forwards come in as callables returning every unit's output by name (the target: its
modules'; Caffe's: each unit's top, a BN chain's after its Scale/Bias), so this module needs
neither torch nor Caffe. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .adapt import same_eps
from .match import Match, Matching
from .units import shape_text

__all__ = ["Divergence", "Forward", "first_divergence"]

Forward = Callable[[np.ndarray], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Divergence:
    """The first target module whose output is not Caffe's.

    Attributes:
        max_abs_error: largest absolute difference, None when the shapes differ.
        reasons: what differs, as far as the structure tells.
    """

    target: str
    caffe: str
    target_shape: tuple[int, ...]
    caffe_shape: tuple[int, ...]
    max_abs_error: float | None
    reasons: tuple[str, ...]

    def message(self) -> str:
        """One line: where, by how much, why."""
        if self.max_abs_error is None:
            size = (f"output shape {shape_text(self.target_shape)} where Caffe's "
                    f"{self.caffe!r} has {shape_text(self.caffe_shape)}")
        else:
            size = f"output differs from Caffe's {self.caffe!r} by up to {self.max_abs_error:.3g}"
        return f"target module {self.target!r}: {size}; " + "; ".join(self.reasons)


def _comparable(match: Match) -> bool:
    """False for a convolution whose Caffe bias moved into the next BN (outputs differ by it)."""
    return not ("bias" in match.caffe.shapes and "bias" not in match.target.shapes)


def _strides(matches: Sequence[Match]) -> list[str]:
    moved = [m for m in matches if m.caffe.stride and m.target.stride
             and tuple(m.caffe.stride) != tuple(m.target.stride)]

    def geometry(stride: tuple[int, ...], kernel: tuple[int, ...]) -> str:
        return f"stride {'x'.join(map(str, stride))} ({'x'.join(map(str, kernel))} kernel)"

    return [f"stride placement: Caffe's {m.caffe.name!r} has "
            f"{geometry(m.caffe.stride, m.caffe.kernel)}, the target's {m.target.name!r} has "
            f"{geometry(m.target.stride, m.target.kernel)}" for m in moved]


def _reasons(ordered: Sequence[Match], position: int, shapes_differ: bool) -> tuple[str, ...]:
    match, before = ordered[position], ordered[:position]
    previous = next((m.target.name for m in reversed(before) if _comparable(m)), None)
    between = f"between {previous!r} and {match.target.name!r}" if previous else \
        f"before {match.target.name!r}"
    if shapes_differ:
        moved = _strides(ordered[:position + 1])
        if moved:  # where the stride went: the next convolution whose stride differs too
            moved += _strides(ordered[position + 1:])[:1]
        return tuple(moved) or (f"pooling rounding or padding {between}: the same strides give "
                                "a different spatial size (Caffe's pooling rounds up, "
                                "PyTorch's rounds down unless ceil_mode=True)",)
    eps = (match.caffe.eps, match.target.eps)
    if eps[0] is not None and eps[1] is not None and not same_eps(eps[0], eps[1]):
        return (f"BN eps: Caffe {eps[0]:g}, target {eps[1]:g}",)
    return (f"the operations {between} differ (a missing or moved ReLU, a different pooling "
            "or padding): its input agreed with Caffe's",)


def first_divergence(run_target: Forward, run_caffe: Forward, matching: Matching,
                     x: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5) -> Divergence | None:
    """The first target module (in run order) whose output is not Caffe's, or None.

    Args:
        run_target, run_caffe: forwards returning outputs by target module name and by Caffe
            unit name (a BN chain's under its BatchNorm's name).
        matching: the complete matching the target's weights came from.
        x: the input both run on.
        rtol, atol: tolerance relative to the output's largest magnitude, and absolute.

    Returns:
        The ``Divergence``, or None when every compared output agrees.
    """
    target_out, caffe_out = run_target(x), run_caffe(x)
    ordered = sorted(matching.matches, key=lambda m: m.target.index)
    for position, match in enumerate(ordered):
        if not _comparable(match):
            continue
        ours = np.asarray(target_out[match.target.name], dtype=np.float64)
        theirs = np.asarray(caffe_out[match.caffe.name], dtype=np.float64)
        if ours.size != theirs.size or (ours.shape != theirs.shape and not match.reshape):
            return Divergence(match.target.name, match.caffe.name, ours.shape, theirs.shape,
                              None, _reasons(ordered, position, True))
        error = float(np.max(np.abs(ours.reshape(theirs.shape) - theirs), initial=0.0))
        if error > atol + rtol * float(np.max(np.abs(theirs), initial=0.0)):
            return Divergence(match.target.name, match.caffe.name, ours.shape, theirs.shape,
                              error, _reasons(ordered, position, False))
    return None
