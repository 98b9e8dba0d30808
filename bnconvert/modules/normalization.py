"""Caffe's LRN and MVN as PyTorch modules (imports only torch and the standard library).

- LRN ACROSS_CHANNELS: ``y = x * (k + alpha / n * sum_window x^2) ** -beta`` over zero-padded
  channels, which is exactly ``nn.LocalResponseNorm(n, alpha, beta, k)``.
- LRN WITHIN_CHANNEL: ``y = x * (1 + alpha * avgpool_nxn(x^2)) ** -beta`` with padding
  (n - 1) / 2 and the divisor always n^2; **k is ignored** (Caffe builds it from a Power layer
  with shift 1).
- MVN: subtract the mean per sample (and per channel unless ``across_channels``); with
  ``normalize_variance`` divide by ``sqrt(var) + eps`` (population variance; eps is added to
  the standard deviation, not to the variance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LRNWithinChannel", "MVN", "caffe_lrn"]


def _check_local_size(local_size: int) -> None:
    if local_size < 1 or local_size % 2 == 0:
        raise ValueError(f"LRN only supports an odd local_size, got {local_size}")


class LRNWithinChannel(nn.Module):
    """Caffe LRN with ``norm_region: WITHIN_CHANNEL`` (Caffe ignores ``k`` here)."""

    def __init__(self, local_size: int = 5, alpha: float = 1.0, beta: float = 0.75) -> None:
        super().__init__()
        _check_local_size(local_size)
        self.local_size, self.alpha, self.beta = local_size, float(alpha), float(beta)
        self._pad = (local_size - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.local_size, 1, self._pad, count_include_pad=True)
        return x * (mean_sq * self.alpha + 1.0).pow(-self.beta)


def caffe_lrn(local_size: int = 5, alpha: float = 1.0, beta: float = 0.75, k: float = 1.0,
              within_channel: bool = False) -> nn.Module:
    """The module computing Caffe's LRN with these parameters.

    Args:
        local_size: odd window size n.
        alpha, beta, k: Caffe's ``lrn_param`` (k only matters across channels).
        within_channel: True for ``norm_region: WITHIN_CHANNEL``.

    Returns:
        ``nn.LocalResponseNorm`` (ACROSS_CHANNELS) or :class:`LRNWithinChannel`.

    Raises:
        ValueError: an even local_size (Caffe refuses it).

    >>> caffe_lrn(5, 1e-4, 0.75)
    LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)
    """
    _check_local_size(local_size)
    if within_channel:
        return LRNWithinChannel(local_size, alpha, beta)
    return nn.LocalResponseNorm(local_size, alpha, beta, k)


class MVN(nn.Module):
    """Caffe's mean-variance normalization (any rank >= 2; channels are axis 1)."""

    def __init__(self, normalize_variance: bool = True, across_channels: bool = False,
                 eps: float = 1e-9) -> None:
        super().__init__()
        self.normalize_variance, self.across_channels = normalize_variance, across_channels
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.across_channels:
            flat = x.reshape(x.shape[0], -1)
        else:
            flat = x.reshape(x.shape[0], x.shape[1], -1)
        centred = flat - flat.mean(dim=-1, keepdim=True)
        if self.normalize_variance:
            std = (centred * centred).mean(dim=-1, keepdim=True).sqrt()
            centred = centred / (std + self.eps)
        return centred.view_as(x)
