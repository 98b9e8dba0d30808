"""Caffe's structural layers as PyTorch modules (imports only torch and the standard library).

Exact native equivalents are not repeated here: Flatten(axis, end_axis) -> ``nn.Flatten``,
Softmax(axis) -> ``nn.Softmax(dim=axis)``, Split -> the same tensor, Silence -> nothing.
Axes may be negative (counted from the end, as Caffe's canonical axes).
"""

from __future__ import annotations

from types import EllipsisType

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArgMax", "Concat", "Crop", "Embed", "EltwiseMax", "EltwiseProd", "EltwiseSum",
           "Reduction", "Reshape", "Slice", "Tile"]


class EltwiseSum(nn.Module):
    """Caffe Eltwise SUM: ``sum_i coeff_i * x_i`` (no coeffs: a plain sum)."""

    def __init__(self, coeffs: tuple[float, ...] | None = None) -> None:
        super().__init__()
        plain = coeffs is None or all(c == 1.0 for c in coeffs)
        self.coeffs = None if plain or coeffs is None else tuple(float(c) for c in coeffs)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.coeffs is None:
            y = xs[0]
            for x in xs[1:]:
                y = y + x
            return y
        y = xs[0] * self.coeffs[0]
        for c, x in zip(self.coeffs[1:], xs[1:], strict=True):
            y = y + x * c
        return y


class EltwiseProd(nn.Module):
    """Caffe Eltwise PROD: the product of the bottoms."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y


class EltwiseMax(nn.Module):
    """Caffe Eltwise MAX: the element-wise maximum of the bottoms."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = torch.maximum(y, x)
        return y


class Concat(nn.Module):
    """Caffe Concat along ``axis`` (default 1)."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)


def _axis_index(axis: int, piece: slice) -> tuple[slice | EllipsisType, ...]:
    if axis >= 0:
        return (slice(None),) * axis + (piece,)
    return (Ellipsis, piece) + (slice(None),) * (-axis - 1)


class Slice(nn.Module):
    """Caffe Slice along ``axis``: at ``slice_points``, or into ``parts`` equal parts."""

    def __init__(self, axis: int = 1, slice_points: tuple[int, ...] = (),
                 parts: int = 2) -> None:
        super().__init__()
        self.axis, self.parts = axis, parts
        bounds = (0, *slice_points, None)
        self._pieces = tuple(_axis_index(axis, slice(a, b))
                             for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        self._split = not slice_points

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._split:
            size = x.shape[self.axis] // self.parts
            return tuple(x.narrow(self.axis, i * size, size) for i in range(self.parts))
        return tuple(x[index] for index in self._pieces)


class Reshape(nn.Module):
    """Caffe Reshape: ``dims`` replace axes [axis, axis + num_axes) (num_axes -1: to the end).

    A 0 copies the bottom's dim at that position, one -1 is inferred.
    """

    def __init__(self, dims: tuple[int, ...], axis: int = 0, num_axes: int = -1) -> None:
        super().__init__()
        if sum(d == -1 for d in dims) > 1 or any(d < -1 for d in dims):
            raise ValueError(f"Reshape dims {dims}: at most one -1 and no other negative dim")
        self.dims = tuple(dims)
        self._copy = tuple(i for i, d in enumerate(dims) if d == 0)
        # Caffe's start axis for a negative axis is rank + axis + 1: torch index axis + 1.
        self._at_end = axis == -1
        self._start = axis + 1 if axis < -1 else axis
        self._insert = num_axes == 0 or self._at_end
        end = -1 if num_axes == -1 else self._start + num_axes - 1
        if end == -1 or (self._start < 0) == (end < 0):
            self._end = end
        else:
            raise ValueError("Reshape: a negative axis with num_axes reaching the end")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(self.dims)
        for i in self._copy:
            dims[i] = x.shape[self._start + i]
        if self._insert:
            at = -1 if self._at_end else self._start
            return x.unsqueeze(at).unflatten(at, dims)
        return x.flatten(self._start, self._end).unflatten(self._start, dims)


class Crop(nn.Module):
    """Caffe Crop: bottom 0 cut to bottom 1's shape on axes ``axis``.. of an ``ndim`` bottom.

    One offset applies to every cropped axis, or one per axis; none means 0.
    """

    def __init__(self, axis: int = 2, offsets: tuple[int, ...] = (), ndim: int = 4) -> None:
        super().__init__()
        start = axis + ndim if axis < 0 else axis
        count = ndim - start
        if len(offsets) not in (0, 1, count):
            raise ValueError(f"Crop: {len(offsets)} offsets for {count} cropped axes")
        full = tuple(offsets) * count if len(offsets) == 1 else tuple(offsets) or (0,) * count
        self._axes = tuple(zip(range(start, ndim), full, strict=True))

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        for dim, offset in self._axes:
            x = x.narrow(dim, offset, reference.shape[dim])
        return x


class Tile(nn.Module):
    """Caffe Tile: the block from ``axis`` on repeated ``tiles`` times (``repeat`` order)."""

    def __init__(self, axis: int = 1, tiles: int = 1) -> None:
        super().__init__()
        self.axis, self.tiles = axis, tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] * self.tiles, dim=self.axis)


_REDUCTIONS = ("SUM", "ASUM", "SUMSQ", "MEAN")


class Reduction(nn.Module):
    """Caffe Reduction over all axes from ``axis`` to the end, times ``coeff``."""

    def __init__(self, operation: str = "SUM", axis: int = 0, coeff: float = 1.0) -> None:
        super().__init__()
        if operation not in _REDUCTIONS:
            raise ValueError(f"Reduction operation {operation!r}: expected one of {_REDUCTIONS}")
        self.operation, self.axis, self.coeff = operation, axis, float(coeff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(self.axis)
        if self.operation == "ASUM":
            flat = flat.abs()
        elif self.operation == "SUMSQ":
            flat = flat * flat
        y = flat.mean(dim=-1) if self.operation == "MEAN" else flat.sum(dim=-1)
        return y * self.coeff if self.coeff != 1.0 else y


class ArgMax(nn.Module):
    """Caffe ArgMax: the ``top_k`` indices (as floats) or, with ``out_max_val`` and an axis,
    the values; without an axis per sample over C*H*W, shape (N, 1 or 2, top_k, 1).

    Ties go to the larger index, as Caffe's sort of (value, index) pairs: the input is flipped
    and the first maximum taken (``argmax`` for top_k 1, which also exports to ONNX; a stable
    sort otherwise, which the TorchScript ONNX exporter does not support).
    """

    def __init__(self, top_k: int = 1, out_max_val: bool = False,
                 axis: int | None = None) -> None:
        super().__init__()
        self.top_k, self.out_max_val, self.axis = top_k, out_max_val, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = 1 if self.axis is None else self.axis
        data = (x.flatten(1) if self.axis is None else x).flip(dim)
        if self.top_k == 1:
            order = data.argmax(dim, keepdim=True)
            values = data.gather(dim, order)
        else:
            values, order = torch.sort(data, dim=dim, descending=True, stable=True)
            values, order = values.narrow(dim, 0, self.top_k), order.narrow(dim, 0, self.top_k)
        indices = (data.shape[dim] - 1 - order).to(x.dtype)
        if self.axis is not None:
            return values if self.out_max_val else indices
        if self.out_max_val:
            return torch.stack((indices, values), dim=1).unsqueeze(-1)
        return indices[:, None, :, None]


class Embed(nn.Module):
    """Caffe Embed: row ``int(x)`` (truncated toward zero) of weight (input_dim, num_output),
    plus bias; the output has the input's shape plus num_output.
    """

    def __init__(self, input_dim: int, num_output: int, bias_term: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(input_dim, num_output))
        self.bias = nn.Parameter(torch.zeros(num_output)) if bias_term else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.embedding(x.long(), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y
