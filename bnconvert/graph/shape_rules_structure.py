"""Shape rules of the layers that route blobs (Concat, Slice, Crop, Tile, Reduction, ArgMax)
and of the fork layers that resize (Interp, Upsample); registered into ``shape_rules.RULES``."""

from __future__ import annotations

from ..layers.structure import (
    ArgMaxParams,
    ConcatParams,
    CropParams,
    ReductionParams,
    SliceParams,
    TileParams,
)
from ..read.net import Layer
from .shape_rules import RULES, Refused, Shape, canonical_axis, fork_int

__all__ = ["fork_flag"]

_rule = RULES.register


@_rule("Concat")
def _concat(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, ConcatParams)
    first = bottoms[0]
    axis = canonical_axis(params.axis, len(first))
    for other in bottoms[1:]:
        if len(other) != len(first) or any(a != b for i, (a, b) in
                                           enumerate(zip(first, other, strict=True)) if i != axis):
            raise Refused(f"all inputs must have the same shape except along axis {axis}: "
                          f"{list(first)} vs {list(other)}")
    return [(*first[:axis], sum(b[axis] for b in bottoms), *first[axis + 1:])]


@_rule("Slice")
def _slice(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, SliceParams)
    shape = bottoms[0]
    axis = canonical_axis(params.axis, len(shape))
    count = len(layer.tops)
    if params.slice_point:
        if len(params.slice_point) != count - 1:
            raise Refused(f"{len(params.slice_point)} slice points for {count} tops")
        bounds = (0, *params.slice_point, shape[axis])
        sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        if min(sizes) <= 0:
            raise Refused(f"slice points {list(params.slice_point)} must increase within "
                          f"{shape[axis]}")
    else:
        if shape[axis] % count:
            raise Refused(f"axis {axis} of size {shape[axis]} does not split into {count} "
                          "equal parts")
        sizes = [shape[axis] // count] * count
    return [(*shape[:axis], size, *shape[axis + 1:]) for size in sizes]


@_rule("Crop")
def _crop(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, CropParams)
    shape, reference = bottoms[0], bottoms[1]
    axis = canonical_axis(params.axis, len(shape))
    count = len(shape) - axis
    if len(params.offset) not in (0, 1, count):
        raise Refused(f"number of offsets ({len(params.offset)}) must be 0, 1 or {count}")
    offsets = params.offset * count if len(params.offset) == 1 else params.offset or (0,) * count
    out = (*shape[:axis], *reference[axis:])
    for i, offset in enumerate(offsets):
        if shape[axis + i] - offset < reference[axis + i]:
            raise Refused(f"crop of size {reference[axis + i]} at offset {offset} exceeds axis "
                          f"{axis + i} of size {shape[axis + i]}")
    return [out]


@_rule("Tile")
def _tile(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, TileParams)
    shape = bottoms[0]
    axis = canonical_axis(params.axis, len(shape))
    if params.tiles < 1:
        raise Refused("tiles must be positive")
    return [(*shape[:axis], shape[axis] * params.tiles, *shape[axis + 1:])]


@_rule("Reduction")
def _reduction(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, ReductionParams)
    axis = canonical_axis(params.axis, len(bottoms[0]))
    return [bottoms[0][:axis]]


@_rule("ArgMax")
def _argmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    params = layer.params
    assert isinstance(params, ArgMaxParams)
    shape = bottoms[0]
    if params.axis is None:
        if params.top_k > _count(shape[1:]):
            raise Refused("top_k must be less than or equal to the number of classes")
        return [(shape[0], 2 if params.out_max_val else 1, params.top_k, 1)]
    axis = canonical_axis(params.axis, len(shape))
    if params.top_k > shape[axis]:
        raise Refused("top_k must be less than or equal to the dimension of the axis")
    return [(*shape[:axis], params.top_k, *shape[axis + 1:])]


def _count(dims: Shape) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


@_rule("Interp")
def _interp(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    n, c, h, w = bottoms[0]
    beg = fork_int(layer, "interp_param", "pad_beg", 0) or 0
    end = fork_int(layer, "interp_param", "pad_end", 0) or 0
    h, w = h + beg + end, w + beg + end
    zoom = fork_int(layer, "interp_param", "zoom_factor")
    shrink = fork_int(layer, "interp_param", "shrink_factor")
    height = fork_int(layer, "interp_param", "height")
    width = fork_int(layer, "interp_param", "width")
    if (zoom is None) != (shrink is None) or (zoom is not None and shrink is not None):
        shrink, zoom = shrink or 1, zoom or 1
        h, w = (h - 1) // shrink + 1, (w - 1) // shrink + 1
        return [(n, c, h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1))]
    if height is None or width is None:
        raise Refused("Interp needs zoom_factor, shrink_factor or height and width")
    return [(n, c, height, width)]


@_rule("Upsample")
def _upsample(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    n, c, h, w = bottoms[0]
    scale = fork_int(layer, "upsample_param", "scale", 2) or 2
    height = fork_int(layer, "upsample_param", "upsample_h")
    width = fork_int(layer, "upsample_param", "upsample_w")
    if height is not None and width is not None:
        return [(n, c, height, width)]
    sh = fork_int(layer, "upsample_param", "scale_h", scale) or scale
    sw = fork_int(layer, "upsample_param", "scale_w", scale) or scale
    pad_h = fork_flag(layer, "pad_out_h")
    pad_w = fork_flag(layer, "pad_out_w")
    return [(n, c, h * sh - pad_h, w * sw - pad_w)]


def fork_flag(layer: Layer, name: str) -> int:
    """An Upsample boolean fork field (``pad_out_h``/``pad_out_w``) as 0 or 1."""
    section = layer.extras.get("upsample_param", {})
    value = str(section.get(name, "false")).lower() if isinstance(section, dict) else "false"
    return int(value in ("true", "1", "t"))
