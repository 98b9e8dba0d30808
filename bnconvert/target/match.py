"""Match the Caffe net's learned units onto the target model's parametric modules by structure:
kind, tensor shapes, and which already-matched units feed each one. Names are never compared,
and the order of parallel branches may differ (torchvision's ResNet runs ``downsample`` after
the main branch; Caffe's prototxt lists ``branch1`` first). A unit with no candidate or more
than one is left unmatched, and an incomplete match is refused with both sides listed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import BnConvertError
from .units import NET_INPUT, Unit, shapes_compatible

__all__ = ["Match", "Matching", "MatchError", "compatible", "match_units"]

#: tensors a target module may have that the Caffe unit need not supply (filled exactly)
_FILLABLE = {"batch_norm": {"weight", "bias"}, "conv": {"bias"}, "deconv": {"bias"},
             "linear": {"bias"}}


class MatchError(BnConvertError):
    """The Caffe net and the target model do not match unit for unit (or a ``--map`` entry is
    wrong); the message lists what is unmatched on both sides."""


@dataclass(frozen=True)
class Match:
    """One Caffe unit mapped onto one target module.

    Attributes:
        reshape: the weight changes rank (a 1×1 convolution onto a Linear, or back).
        by_map: the pair came from a ``--map`` entry, not from the structure.
    """

    caffe: Unit
    target: Unit
    reshape: bool = False
    by_map: bool = False


@dataclass(frozen=True)
class Matching:
    """The result: matches in Caffe order, and what was left on each side.

    Attributes:
        ambiguous: Caffe unit name -> the target modules that fit it equally well.
    """

    matches: tuple[Match, ...]
    unmatched_caffe: tuple[Unit, ...]
    unmatched_target: tuple[Unit, ...]
    ambiguous: Mapping[str, tuple[str, ...]]

    @property
    def complete(self) -> bool:
        """True when every unit of both sides is matched."""
        return not self.unmatched_caffe and not self.unmatched_target

    def require_complete(self) -> Matching:
        """This matching, or MatchError listing the unmatched units of both sides."""
        if self.complete:
            return self
        raise MatchError(refusal_text(self))


def refusal_text(matching: Matching) -> str:
    """The one-line refusal: unmatched Caffe layers (with candidates where ambiguous) and
    unmatched target modules."""
    def side(units: Sequence[Unit]) -> str:
        shown = [u.describe() + (f" [ambiguous: {' | '.join(matching.ambiguous[u.name])}]"
                                 if u.name in matching.ambiguous else "") for u in units[:8]]
        more = f", and {len(units) - 8} more" if len(units) > 8 else ""
        return ", ".join(shown) + more if units else "none"

    return (f"the Caffe net does not match the target model: {len(matching.matches)} units "
            f"matched; unmatched Caffe layers: {side(matching.unmatched_caffe)}; unmatched "
            f"target modules: {side(matching.unmatched_target)}; give --map entries "
            "(Caffe layer -> target module) for them")


def _is_kernel_1x1(unit: Unit) -> bool:
    weight = unit.shapes.get("weight", ())
    return len(weight) > 2 and all(k == 1 for k in weight[2:])


def compatible(caffe: Unit, target: Unit) -> bool | None:
    """Whether ``caffe``'s tensors fit ``target``: None when not, else whether the weight is
    reshaped (a 1×1 convolution onto a Linear or a Linear onto a 1×1 convolution)."""
    reshape = {caffe.kind, target.kind} == {"conv", "linear"} and (
        _is_kernel_1x1(caffe) or _is_kernel_1x1(target))
    if caffe.kind != target.kind and not reshape:
        return None
    fillable = _FILLABLE.get(caffe.kind, set())
    for name, shape in target.shapes.items():
        theirs = caffe.shapes.get(name)
        if theirs is None and name not in fillable:
            return None
        if theirs is not None and not shapes_compatible(theirs, shape, reshape):
            return None
    extra = set(caffe.shapes) - set(target.shapes)
    if extra - {"bias"} or ("bias" in extra and caffe.kind not in ("conv", "deconv")):
        return None
    return reshape


def _candidates(unit: Unit, free: Sequence[Unit], matched: Mapping[int, int]) -> list[Unit]:
    wanted = {NET_INPUT if i == NET_INPUT else matched.get(i, -2) for i in unit.inputs}
    if -2 in wanted:
        return []
    return [t for t in free if t.inputs == wanted and compatible(unit, t) is not None]


def _token(unit: Unit) -> tuple[str, int, tuple[int, ...]]:
    """A unit's kind (a convolution and a Linear alike), output width (-1: unknown) and kernel
    (empty for 1x1 and Linear), for signatures."""
    kind = "dense" if unit.kind in ("conv", "linear") else unit.kind
    first = next(iter(unit.shapes.values()), ())
    width = first[0] if unit.kind != "deconv" or len(first) < 2 else first[1]
    kernel = tuple(-1 if k is None else k for k in first[2:]) if len(first) > 2 else ()
    return (kind, width if first and width is not None else -1,
            () if all(k == 1 for k in kernel) else kernel)


class _Signatures:
    """What each unit's output flows into, ``depth`` units deep: parallel branches that look
    alike at their first layer (Inception's 1x1s) differ in what follows them."""

    def __init__(self, units: Sequence[Unit], depth: int = 3) -> None:
        self.units, self.depth = {u.index: u for u in units}, depth
        self.readers: dict[int, list[int]] = {}
        for unit in units:
            for source in unit.inputs:
                self.readers.setdefault(source, []).append(unit.index)

    def of(self, index: int, depth: int | None = None) -> tuple[object, ...]:
        depth = self.depth if depth is None else depth
        if depth == 0:
            return ()
        return tuple(sorted((_token(self.units[r]), self.of(r, depth - 1))
                            for r in self.readers.get(index, ())))


def _narrowed(unit: Unit, found: list[Unit], caffe: _Signatures,
              target: _Signatures) -> list[Unit]:
    """The candidates whose downstream structure is the Caffe unit's (all when none is)."""
    wanted = caffe.of(unit.index)
    same = [t for t in found if target.of(t.index) == wanted]
    return same or found


def match_units(caffe: Sequence[Unit], target: Sequence[Unit],
                fixed: Mapping[int, int] | None = None) -> Matching:
    """Match ``caffe`` units onto ``target`` units by structure.

    Each Caffe unit, in layer order, goes to the one free target unit of a compatible kind and
    shapes whose feeding units are exactly the images of its own feeding units; where several
    fit, to the one whose output flows into the same kinds and widths of units (3 deep).

    Args:
        caffe, target: the units of both sides (``caffe_units``, ``target_units``).
        fixed: Caffe unit index -> target unit index pairs settled beforehand (``--map``).

    Returns:
        The ``Matching``; call ``require_complete()`` to refuse an incomplete one.
    """
    fixed = dict(fixed or {})
    matched: dict[int, int] = dict(fixed)
    ambiguous: dict[str, tuple[str, ...]] = {}
    taken = set(fixed.values())
    signatures = _Signatures(caffe), _Signatures(target)
    for unit in caffe:
        if unit.index in matched:
            continue
        found = _candidates(unit, [t for t in target if t.index not in taken], matched)
        if len(found) > 1:
            found = _narrowed(unit, found, *signatures)
        if len(found) == 1:
            matched[unit.index] = found[0].index
            taken.add(found[0].index)
        elif found:
            ambiguous[unit.name] = tuple(t.name for t in found)
    by_index = {t.index: t for t in target}
    matches = tuple(Match(u, by_index[matched[u.index]],
                          bool(compatible(u, by_index[matched[u.index]])), u.index in fixed)
                    for u in caffe if u.index in matched)
    return Matching(matches, tuple(u for u in caffe if u.index not in matched),
                    tuple(t for t in target if t.index not in taken), ambiguous)
