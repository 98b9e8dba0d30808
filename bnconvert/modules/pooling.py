"""Caffe's Pooling and SPP as PyTorch modules (imports only torch and the standard library).

Caffe's output size rounds up by default, ``out = ceil((in + 2p - k) / s) + 1``, and then,
only when ``p > 0``, drops a last window that would start at or past ``in + p``. PyTorch's
``ceil_mode=True`` applies that clip rule always and refuses ``p > k // 2``. The two agree
exactly when ``p <= k // 2`` and not (ceil rounding, ``p == 0`` and ``s > k``): only then can
a Caffe window start past the input (Caffe then gives -FLT_MAX for MAX and NaN or -0.0 for
AVE). :func:`caffe_pooling` checks that once, at construction, and returns the native
``nn.MaxPool2d`` / ``nn.AvgPool2d`` when they compute what Caffe computes; otherwise a
:class:`CaffePool2d`, which pads explicitly and follows Caffe's formulas.

AVE divides by the window clipped to ``[-p, in + p)`` (padding counts, the ceil overhang does
not), which is ``avg_pool2d(count_include_pad=True)``'s divisor. MAX never lets a padded cell
win. The MAX mask (Caffe's second top) is returned as int64 flat indices into H*W per channel,
the first maximum in scan order; -1 where a window holds no input cell. Caffe stores it as a
float blob; cast when comparing with Caffe's blob.

Known differences (inputs Caffe nets do not produce): Caffe's MAX ignores NaN inputs and never
returns less than -FLT_MAX; PyTorch propagates NaN and can return -inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FLT_MAX", "CaffePool2d", "GlobalPool2d", "SPP", "caffe_pool_size", "caffe_pooling"]

FLT_MAX = 3.4028234663852886e38  # float32's largest value: Caffe's MAX start value


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True) -> int:
    """Caffe's pooled length of one spatial axis.

    Written without branches on ``size`` so that it also works on traced sizes
    (``torch.fx`` proxies): the clip rule ``if (out - 1) * s >= size + p: out -= 1`` becomes
    an integer indicator, since ``x = (out - 1) * s - size - p`` lies in ``(p - k - s, p - k + s)``.

    Args:
        size: input length (an int, or a traced int).
        kernel, stride, pad: Caffe's pooling parameters along this axis (``pad < kernel``).
        ceil_mode: Caffe's default CEIL rounding; False for ``round_mode: FLOOR``.

    Returns:
        The output length, of the same kind as ``size``.

    >>> caffe_pool_size(11, 3, 3, 1), caffe_pool_size(6, 2, 3, 0), caffe_pool_size(66, 3, 2, 0)
    (4, 3, 33)
    """
    # Every floor division has a non-negative numerator (for inputs Caffe accepts, in + 2p >= k):
    # exporters may turn // into a truncating division.
    out = (size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if pad > 0:
        m = kernel + stride
        out = out - ((out - 1) * stride - size - pad + m) // m
    return out


def _check(kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> None:
    if min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
        raise ValueError(f"pooling needs kernel >= 1, stride >= 1, pad >= 0; got {kernel}, "
                         f"{stride}, {pad}")
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        raise ValueError(f"Caffe refuses pad {pad} >= kernel {kernel}")


class CaffePool2d(nn.Module):
    """Caffe MAX or AVE pooling for any parameters Caffe accepts (``pad < kernel``).

    Pads the input explicitly (-FLT_MAX for MAX, 0 for AVE) by ``pad`` plus a fixed overhang,
    pools without padding and keeps Caffe's output size; AVE divides by Caffe's divisor.
    """

    def __init__(self, kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 pad: int | tuple[int, int] = 0, max_pool: bool = True, ceil_mode: bool = True,
                 return_mask: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.pad = _pair(kernel), _pair(stride), _pair(pad)
        _check(self.kernel, self.stride, self.pad)
        if return_mask and not max_pool:
            raise ValueError("only MAX pooling has a mask top")
        self.max_pool, self.ceil_mode, self.return_mask = max_pool, ceil_mode, return_mask
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        # The overhang a ceil-rounded last window can need is < pad + stride.
        self._padding = (pw, pw + sw, ph, ph + sh)
        self._area = float(kh * kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        h, w = x.shape[-2], x.shape[-1]
        oh = caffe_pool_size(h, kh, sh, ph, self.ceil_mode)
        ow = caffe_pool_size(w, kw, sw, pw, self.ceil_mode)
        if not self.max_pool:
            summed = F.avg_pool2d(F.pad(x, self._padding), self.kernel, self.stride)
            return summed[..., :oh, :ow] * (self._area / self._divisor(x, h, w, oh, ow))
        padded = F.pad(x, self._padding, value=-FLT_MAX)
        if not self.return_mask:
            return F.max_pool2d(padded, self.kernel, self.stride)[..., :oh, :ow]
        y, idx = F.max_pool2d(padded, self.kernel, self.stride, return_indices=True)
        y, idx = y[..., :oh, :ow], idx[..., :oh, :ow]
        wp = w + 2 * pw + sw
        mask = (idx // wp - ph) * w + idx % wp - pw
        return y, torch.where(y > -FLT_MAX, mask, torch.full_like(mask, -1))

    def _divisor(self, x: torch.Tensor, h: int, w: int, oh: int, ow: int) -> torch.Tensor:
        """Caffe's AVE divisor (hend - hstart) * (wend - wstart), before clipping to the image."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        hs = torch.arange(oh, device=x.device, dtype=x.dtype) * sh - ph
        ws = torch.arange(ow, device=x.device, dtype=x.dtype) * sw - pw
        dh = (hs + kh).clamp(max=h + ph) - hs
        dw = (ws + kw).clamp(max=w + pw) - ws
        return dh[:, None] * dw[None, :]


class GlobalPool2d(nn.Module):
    """Caffe's ``global_pooling: true``: kernel = H x W, output (N, C, 1, 1)."""

    def __init__(self, max_pool: bool = True, return_mask: bool = False) -> None:
        super().__init__()
        if return_mask and not max_pool:
            raise ValueError("only MAX pooling has a mask top")
        self.max_pool, self.return_mask = max_pool, return_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.max_pool:
            return x.mean(dim=(-2, -1), keepdim=True)
        if not self.return_mask:
            return x.amax(dim=(-2, -1), keepdim=True)
        y, idx = x.flatten(-2).max(dim=-1, keepdim=True)
        return y.unsqueeze(-1), idx.unsqueeze(-1)


def _native_ok(kernel: int, stride: int, pad: int, ceil_mode: bool) -> bool:
    return pad <= kernel // 2 and not (ceil_mode and pad == 0 and stride > kernel)


def caffe_pooling(kernel: int | tuple[int, int] = 1, stride: int | tuple[int, int] = 1,
                  pad: int | tuple[int, int] = 0, max_pool: bool = True,
                  ceil_mode: bool = True, global_pooling: bool = False,
                  return_mask: bool = False) -> nn.Module:
    """The cheapest module that computes Caffe's Pooling with these parameters.

    Args:
        kernel, stride, pad: ints or (h, w) pairs (Caffe's ``kernel_size``/``kernel_h``...).
        max_pool: True for MAX, False for AVE (STOCHASTIC is the caller's refusal).
        ceil_mode: False for ``round_mode: FLOOR`` (or a fork's ``ceil_mode: false``).
        global_pooling: kernel = the input's H x W (kernel, stride and pad are then ignored).
        return_mask: MAX only: also return Caffe's argmax mask (second top).

    Returns:
        ``nn.MaxPool2d``/``nn.AvgPool2d`` where they equal Caffe, else a Caffe module.

    Raises:
        ValueError: parameters Caffe refuses (pad >= kernel, a mask for AVE).

    >>> caffe_pooling(3, 2, 1)
    MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=1, ceil_mode=True)
    >>> type(caffe_pooling(3, 3, 2, max_pool=False)).__name__
    'CaffePool2d'
    """
    if global_pooling:
        return GlobalPool2d(max_pool, return_mask)
    k, s, p = _pair(kernel), _pair(stride), _pair(pad)
    _check(k, s, p)
    if not all(_native_ok(k[i], s[i], p[i], ceil_mode) for i in (0, 1)):
        return CaffePool2d(k, s, p, max_pool, ceil_mode, return_mask)
    if max_pool:
        return nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode, return_indices=return_mask)
    if return_mask:
        raise ValueError("only MAX pooling has a mask top")
    return nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=True)


class SPP(nn.Module):
    """Caffe's spatial pyramid pooling for a fixed input size (Caffe derives it from H x W).

    Level n pools into 2^n x 2^n bins: kernel = stride = ceil(H / 2^n), pad =
    (kernel * 2^n - H + 1) // 2, by Caffe's pooling rules; each level is flattened and the
    levels concatenated. With ``pyramid_height == 1`` Caffe returns the 4-D pooled blob.
    """

    def __init__(self, pyramid_height: int, height: int, width: int,
                 max_pool: bool = True) -> None:
        super().__init__()
        if pyramid_height < 1:
            raise ValueError(f"pyramid_height must be >= 1, got {pyramid_height}")
        self.height, self.width = height, width
        self.levels = nn.ModuleList(
            caffe_pooling(*_spp_level(n, height, width), max_pool=max_pool)
            for n in range(pyramid_height))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.shape[-2] == self.height, "SPP was built for another input height")
        torch._assert(x.shape[-1] == self.width, "SPP was built for another input width")
        if len(self.levels) == 1:
            return self.levels[0](x)
        return torch.cat([level(x).flatten(1) for level in self.levels], dim=1)


def _spp_level(level: int, height: int,
               width: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, pad) of one SPP level, as Caffe's SPPLayer::GetPoolingParam."""
    bins = 2 ** level
    kh, kw = -(-height // bins), -(-width // bins)
    pad = ((kh * bins - height + 1) // 2, (kw * bins - width + 1) // 2)
    return (kh, kw), (kh, kw), pad
