"""Layers of common Caffe forks as PyTorch modules (imports only torch and the standard library).

Sources: ShuffleChannel (ShuffleNet ports), Axpy (SENet), Interp (PSPNet / DeepLab:
bilinear with corners aligned after cropping by ``pad_beg``/``pad_end``), Upsample (SegNet:
scatter to a MAX pooling's mask). ReLU6 is ``nn.ReLU6``; ConvolutionDepthwise is a grouped
``nn.Conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Axpy", "Interp", "ShuffleChannel", "Upsample"]


class ShuffleChannel(nn.Module):
    """View channels as (group, C / group), swap the two, view back."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.group, -1)).transpose(1, 2).flatten(1, 2)


class Axpy(nn.Module):
    """SENet's Axpy: bottoms (a of shape (N, C, 1, 1), x, y) -> ``a * x + y``."""

    def forward(self, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return a * x + y


class Interp(nn.Module):
    """PSPNet's Interp: crop by ``pad_beg``/``pad_end`` (<= 0), then bilinear, corners aligned.

    Output size as the fork's Reshape, first match wins: ``shrink_factor`` alone
    ``(h - 1) // shrink + 1``; ``zoom_factor`` alone ``h + (h - 1) * (zoom - 1)``;
    ``height`` and ``width``; both factors (shrink, then zoom).
    """

    def __init__(self, height: int | None = None, width: int | None = None,
                 zoom_factor: int | None = None, shrink_factor: int | None = None,
                 pad_beg: int = 0, pad_end: int = 0) -> None:
        super().__init__()
        if pad_beg > 0 or pad_end > 0:
            raise ValueError("Interp only supports non-positive padding (cropping)")
        if (zoom_factor or 1) < 1 or (shrink_factor or 1) < 1:
            raise ValueError("Interp zoom and shrink factors must be positive")
        has_size = height is not None and width is not None
        one_factor = (zoom_factor is None) != (shrink_factor is None)
        both_factors = zoom_factor is not None and shrink_factor is not None
        if not (one_factor or has_size or both_factors):
            raise ValueError("Interp needs zoom_factor, shrink_factor or height and width")
        use_size = has_size and not one_factor
        self.size = (int(height), int(width)) if use_size and height and width else None
        self.zoom, self.shrink = zoom_factor or 1, shrink_factor or 1
        self.pad_beg, self.pad_end = pad_beg, pad_end

    def _out(self, size: int) -> int:
        size = (size - 1) // self.shrink + 1
        return size + (size - 1) * (self.zoom - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_beg or self.pad_end:
            h = x.shape[-2] + self.pad_beg + self.pad_end
            w = x.shape[-1] + self.pad_beg + self.pad_end
            x = x[..., -self.pad_beg:h - self.pad_beg, -self.pad_beg:w - self.pad_beg]
        size = self.size or (self._out(x.shape[-2]), self._out(x.shape[-1]))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class Upsample(nn.Module):
    """SegNet's Upsample: zeros of size (``upsample_h``, ``upsample_w``), or ``scale`` times
    the input minus ``pad_out``, with each input value written at its mask position.
    """

    def __init__(self, scale_h: int = 2, scale_w: int = 2, upsample_h: int | None = None,
                 upsample_w: int | None = None, pad_out_h: bool = False,
                 pad_out_w: bool = False) -> None:
        super().__init__()
        self.size = None if upsample_h is None or upsample_w is None else (upsample_h, upsample_w)
        self.scale = (scale_h, scale_w)
        self.pad_out = (int(pad_out_h), int(pad_out_w))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.size is None:
            oh = x.shape[-2] * self.scale[0] - self.pad_out[0]
            ow = x.shape[-1] * self.scale[1] - self.pad_out[1]
        else:
            oh, ow = self.size
        out = x.new_zeros((x.shape[0], x.shape[1], oh * ow))
        out = out.scatter(2, mask.flatten(2).long(), x.flatten(2))
        return out.unflatten(2, (oh, ow))
