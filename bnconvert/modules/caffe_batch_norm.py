"""BatchNorm modules that continue Caffe's running averages exactly, step after step.

Self-contained (imports only torch): bnconvert copies this source into generated model files.

BVLC Caffe's BatchNorm (``src/caffe/layers/batch_norm_layer.cpp``, BVLC/caffe 9b89154) keeps
the sums ``blob0``, ``blob1`` and the scale factor ``s = blob2``, and in TRAIN (batch
statistics) updates them in float32 as::

    blob2 <- maf·blob2 + 1
    blob0 <- maf·blob0 + mean_b
    blob1 <- maf·blob1 + m/(m−1)·var_b           (m = values per channel)

Its effective statistics are ``blob/s``. These modules hold the effective statistics in
``running_mean``/``running_var`` (eval mode is ``torch.nn.BatchNorm*d``'s, unchanged) and ``s``
and ``maf`` as buffers ``scale_factor`` and ``moving_average_fraction``; each train-mode
forward uses ``momentum = 1/(maf·s + 1)`` (1 when ``s == 0``) in PyTorch's update
``running = (1 − momentum)·running + momentum·batch`` (PyTorch's running_var takes the unbiased
variance too) and then sets ``s <- maf·s + 1`` (float32 or wider, bit-exact with Caffe's blob2
in float32), which equals Caffe's ``blob_new/s_new``. The output in train mode uses the batch
mean and biased variance, as Caffe's.

Caveats: ``momentum`` is unused (None); a Caffe layer with ``s == 0`` but non-zero sums mixes
those ignored sums into its next step, which no effective-statistics module can reproduce;
``SyncBatchNorm.convert_sync_batchnorm`` replaces these modules by plain ones.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["CaffeBatchNorm1d", "CaffeBatchNorm2d", "CaffeBatchNorm3d"]

_CAFFE_BUFFERS = ("moving_average_fraction", "scale_factor")


class _CaffeRunningAverage(_BatchNorm):
    """Caffe's running-average update on top of ``torch.nn.BatchNorm*d`` (see module doc).

    Args:
        num_features: channels C.
        eps: Caffe's eps.
        moving_average_fraction: Caffe's ``batch_norm_param.moving_average_fraction``.
        scale_factor: Caffe's blob 2 (``s``); 0 for a layer that never ran in TRAIN.
        affine, device, dtype: as ``torch.nn.BatchNorm*d``. The two Caffe buffers are float32
            unless ``dtype`` is wider (a float16 module rounds ``s`` to float16).
    """

    _version = 3  # 3: added moving_average_fraction and scale_factor
    moving_average_fraction: Tensor
    scale_factor: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5,
                 moving_average_fraction: float = 0.999, scale_factor: float = 0.0,
                 affine: bool = True, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(num_features, eps=eps, momentum=None, affine=affine,
                         track_running_stats=True, device=device, dtype=dtype)
        wide = torch.promote_types(dtype or torch.float32, torch.float32)
        for name, value in zip(_CAFFE_BUFFERS, (moving_average_fraction, scale_factor),
                               strict=True):
            caffe_value = torch.tensor(value, dtype=torch.float32)  # Caffe's float32
            self.register_buffer(name, caffe_value.to(device=device, dtype=wide))

    def caffe_momentum(self) -> float:
        """PyTorch's momentum for the next train-mode step: ``1/(maf·s + 1)``."""
        return 1.0 / (float(self._decayed_scale_factor()) + 1.0)

    def _decayed_scale_factor(self) -> Tensor:
        work = torch.promote_types(self.scale_factor.dtype, torch.float32)
        return self.scale_factor.to(work) * self.moving_average_fraction.to(work)

    def forward(self, input: Tensor) -> Tensor:
        """Caffe's TRAIN step in train mode, ``torch.nn.BatchNorm*d``'s eval in eval mode."""
        if not self.training:
            return super().forward(input)
        self._check_input_dim(input)
        decayed = self._decayed_scale_factor()
        output = torch.nn.functional.batch_norm(
            input, self.running_mean, self.running_var, self.weight, self.bias, True,
            1.0 / (float(decayed) + 1.0), self.eps)
        with torch.no_grad():
            self.scale_factor.copy_(decayed + 1)
            assert self.num_batches_tracked is not None
            self.num_batches_tracked.add_(1)
        return output

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str,
                              local_metadata: dict[str, int], strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """A state_dict saved before version 3 (a plain ``BatchNorm*d``'s, or one without
        metadata such as bnconvert's ``.pt``) keeps the constructor's Caffe buffers."""
        version = local_metadata.get("version")
        if version is None or version < 3:
            for name in _CAFFE_BUFFERS:
                state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, moving_average_fraction="
                f"{float(self.moving_average_fraction):.8g}, "
                f"scale_factor={float(self.scale_factor):.8g}")


class CaffeBatchNorm1d(_CaffeRunningAverage, torch.nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` ((N, C) or (N, C, L)) continuing Caffe's running averages."""


class CaffeBatchNorm2d(_CaffeRunningAverage, torch.nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` ((N, C, H, W)) continuing Caffe's running averages.

    Example:
        >>> bn = CaffeBatchNorm2d(3, moving_average_fraction=0.9, scale_factor=0.0).train()
        >>> _ = bn(torch.ones(2, 3, 2, 2))
        >>> float(bn.scale_factor), round(bn.caffe_momentum(), 6)
        (1.0, 0.526316)
    """


class CaffeBatchNorm3d(_CaffeRunningAverage, torch.nn.BatchNorm3d):
    """``torch.nn.BatchNorm3d`` ((N, C, D, H, W)) continuing Caffe's running averages."""
