"""Caffe's element-wise layers and Scale/Bias as PyTorch modules (torch and stdlib only).

Caffe types with an exact native equivalent are not repeated here: ReLU -> ``nn.ReLU`` /
``nn.LeakyReLU(negative_slope)``, ReLU6 -> ``nn.ReLU6``, ELU -> ``nn.ELU(alpha)``,
Sigmoid -> ``nn.Sigmoid``, TanH -> ``nn.Tanh``, BNLL -> ``nn.Softplus()``,
Clip -> ``nn.Hardtanh(min, max)``, Dropout (TEST) -> ``nn.Identity``.

Scale and Bias keep their learned blobs in Caffe's shapes (state_dict = caffemodel blobs) and
broadcast them over the axes after ``axis + blob rank``; the rank of the bottom (``ndim``) is
fixed at construction, as it is in a Caffe net.
"""

from __future__ import annotations

import math
from types import EllipsisType

import torch
from torch import nn

__all__ = ["AbsVal", "Bias", "BiasBy", "Exp", "Log", "Power", "PReLU", "Scale", "ScaleBy",
           "Swish", "Threshold"]


class AbsVal(nn.Module):
    """Caffe AbsVal: ``|x|``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class Power(nn.Module):
    """Caffe Power: ``(shift + scale * x) ** power``."""

    def __init__(self, power: float = 1.0, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.power, self.scale, self.shift = float(power), float(scale), float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale + self.shift).pow(self.power)


class Exp(nn.Module):
    """Caffe Exp: ``base ** (shift + scale * x)``; base -1 means e.

    Computed as Caffe does: ``base**shift * exp(ln(base) * scale * x)``.
    """

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        if base != -1.0 and base <= 0:
            raise ValueError(f"Exp base must be strictly positive (or -1 for e), got {base}")
        log_base = 1.0 if base == -1.0 else math.log(base)
        self.inner_scale = log_base * float(scale)
        self.outer_scale = 1.0 if shift == 0 else math.exp(log_base * float(shift))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x * self.inner_scale) * self.outer_scale


class Log(nn.Module):
    """Caffe Log: ``log_base(shift + scale * x)``; base -1 means e."""

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        if base != -1.0 and base <= 0:
            raise ValueError(f"Log base must be strictly positive (or -1 for e), got {base}")
        self.base_scale = 1.0 if base == -1.0 else 1.0 / math.log(base)
        self.scale, self.shift = float(scale), float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x * self.scale + self.shift) * self.base_scale


class Threshold(nn.Module):
    """Caffe Threshold: 1 where ``x > threshold`` (strictly), else 0 (``nn.Threshold`` differs)."""

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Swish(nn.Module):
    """Caffe Swish: ``x * sigmoid(beta * x)``."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x * self.beta)


class PReLU(nn.Module):
    """Caffe PReLU: slopes (C,) over axis 1, or a 0-d blob with ``channel_shared: true``."""

    def __init__(self, channels: int, channel_shared: bool = False) -> None:
        super().__init__()
        shape: tuple[int, ...] = () if channel_shared else (channels,)
        self.weight = nn.Parameter(torch.full(shape, 0.25))
        self.channel_shared = channel_shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_shared:  # as (1,): the ONNX exporter refuses a 0-d slope
            return torch.nn.functional.prelu(x, self.weight.reshape(1))
        return torch.nn.functional.prelu(x, self.weight)


def _trailing(ndim: int, axis: int, blob_ndim: int) -> tuple[EllipsisType | None, ...]:
    """Index appending the broadcast axes after ``axis + blob_ndim`` of an ``ndim`` bottom."""
    if blob_ndim == 0:
        return (Ellipsis,)
    start = axis + ndim if axis < 0 else axis
    if not 0 <= start <= ndim - blob_ndim:
        raise ValueError(f"a {blob_ndim}-axis blob at axis {axis} does not fit a "
                         f"{ndim}-axis bottom")
    return (Ellipsis,) + (None,) * (ndim - start - blob_ndim)


class Scale(nn.Module):
    """Caffe Scale with a learned factor (one bottom): ``x * weight (+ bias)``.

    ``shape`` is the blob's shape (the bottom's dims from ``axis`` for ``num_axes`` axes).
    """

    def __init__(self, shape: tuple[int, ...], axis: int = 1, ndim: int = 4,
                 bias_term: bool = False) -> None:
        super().__init__()
        self._index = _trailing(ndim, axis, len(shape))
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias_term else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.weight[self._index]
        if self.bias is not None:
            y = y + self.bias[self._index]
        return y


class ScaleBy(nn.Module):
    """Caffe Scale with two bottoms: ``x * factor (+ learned bias of the factor's shape)``.

    The factor matches x's dims from ``axis`` for as many axes as it has (``num_axes`` is
    ignored); a 0-d factor multiplies everything.
    """

    def __init__(self, axis: int = 1, ndim: int = 4, factor_ndim: int = 1,
                 bias_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self._index = _trailing(ndim, axis, factor_ndim)
        self.bias = None if bias_shape is None else nn.Parameter(torch.zeros(bias_shape))

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        y = x * factor[self._index]
        if self.bias is not None:
            y = y + self.bias[self._index]
        return y


class Bias(nn.Module):
    """Caffe Bias with a learned blob (one bottom): ``x + bias``."""

    def __init__(self, shape: tuple[int, ...], axis: int = 1, ndim: int = 4) -> None:
        super().__init__()
        self._index = _trailing(ndim, axis, len(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias[self._index]


class BiasBy(nn.Module):
    """Caffe Bias with two bottoms: ``x + b``, b matching x's dims from ``axis``."""

    def __init__(self, axis: int = 1, ndim: int = 4, bias_ndim: int = 1) -> None:
        super().__init__()
        self._index = _trailing(ndim, axis, bias_ndim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + bias[self._index]
