"""Continuing the running averages of Caffe forks' BN layers, each by its fork's own update.

Read from each fork's source (file:line at the commit named; the fixtures' fork builds use the
same commits):

- PSPNet ``BN`` (hszhao/PSPNet 798bdc907c8630e8c3997ebfdd0d7cae0c5ab03b,
  ``src/caffe/layers/bn_layer.cpp``:121-123 and :156-158, ``bn_layer.cu``:37-39 and :71-73)::

      blob2 <- (1 − μ)·mean_b + μ·blob2          μ = bn_param.momentum (default 0.9)
      blob3 <- (1 − μ)·var_b  + μ·blob3          var_b the BIASED batch variance

  Only when not ``frozen`` and in TRAIN; ``frozen`` (and TEST) normalizes with blobs 2 and 3.
  ``BN`` is always this layer: ``REGISTER_LAYER_CLASS(BN)`` (bn_layer.cpp:346); the fork's
  ``CuDNNBNLayer`` is compiled but never registered.
- yjxiong/caffe ``BN`` (9831a2b4d67e3f99418b6f2f99b6dde716853672): the same CAFFE-engine code
  (``bn_layer.cpp``:118-120, :152-154); but ``GetBNLayer`` (``layer_factory.cpp``:176-195)
  picks the CUDNN engine by default in cuDNN >= 5 builds, whose ``cudnn_bn_layer.cu``:43-53
  calls ``cudnnBatchNormalizationForwardTraining`` with factor ``1 − μ``; cuDNN accumulates
  the UNBIASED variance, as PyTorch does (cuDNN's documented behaviour, also observed in
  apache/mxnet#21111; not run here).
- NVIDIA Caffe ``BatchNorm`` (NVIDIA/caffe 87a25543a68e0e5e753923ac4a8b8be6392a41f7): CAFFE
  engine (``batch_norm_layer.cpp``:223-236, ``.cu``:63-76)::

      blob0 <- (1 − maf)·mean_b + maf·blob0
      blob1 <- (1 − maf)·v + maf·blob1     v = biased var_b, + eps on CPU (:211 adds eps first)

  but only once the layer object has run twice (``iter_ > 1``; before that the blobs are
  replaced by the batch's), and ``iter_`` is set to 0 only when the layer initializes fresh
  blobs (:86), not when weights are loaded. CUDNN engine, the default when built with cuDNN
  (``layer_factory.cpp``:74-92): ``cudnn_batch_norm_layer.cu``:63-72 uses factor ``1 − maf``
  (double), or 1 at solver iteration 0 (``LayerBase::iter()``, ``layer.cpp``:87-90, is 0
  without a solver too), with cuDNN's unbiased variance.
- SegNet ``BN`` (alexgkendall/caffe-segnet 344c113bf1832886f1cbe9f33ffe28a3beeaf412,
  ``bn_layer.cpp``:60-78): two blobs, scale and shift, and no running averages at all.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..errors import NumericError
from .momentum import TORCH_DEFAULT_MOMENTUM, Continuation

__all__ = ["continue_pspnet", "continue_yjxiong", "continue_nvcaffe", "continue_segnet"]

Engine = Literal["CAFFE", "CUDNN"]

_BIASED = ("the fork accumulates the biased batch variance where PyTorch accumulates the "
           "unbiased m/(m−1)·var_b, so running_var grows faster by momentum·var_b/(m−1) per "
           "step; no single momentum fits both (mean needs 1 − {name}, variance "
           "(1 − {name})·(m−1)/m)")


def _one_minus(fraction: float, what: str, where: str) -> float:
    if not math.isfinite(fraction) or not 0 <= fraction <= 1:
        prefix = f"{where}: " if where else ""
        raise NumericError(f"{prefix}{what} is {fraction}, expected a value in [0, 1]")
    return float(np.float32(1) - np.float32(fraction))  # Dtype(1) - fraction, in float32


def continue_pspnet(momentum: float = 0.9, frozen: bool = False,
                    where: str = "") -> Continuation:
    """PSPNet's ``BN``: PyTorch momentum ``1 − bn_param.momentum``; exact for the mean only.

    Args:
        momentum: ``bn_param.momentum`` μ (the fork's default 0.9).
        frozen: ``bn_param.frozen``.
        where: file and layer, to prefix error messages.

    Raises:
        NumericError: μ outside [0, 1].

    Example:
        >>> continue_pspnet(0.9).exact, round(continue_pspnet(0.9).momentum, 6)
        ('approximate', 0.1)
    """
    value = _one_minus(momentum, "bn_param.momentum", where)
    if frozen:
        return _frozen()
    return Continuation(value, 0, "approximate", _BIASED.format(name="bn_param.momentum"))


def continue_yjxiong(momentum: float = 0.9, frozen: bool = False, engine: Engine = "CAFFE",
                     where: str = "") -> Continuation:
    """yjxiong/caffe's ``BN``: ``1 − bn_param.momentum``; exact with the CUDNN engine.

    ``engine`` is the engine the fork ran: the prototxt's ``bn_param.engine``, or for
    ``DEFAULT`` CUDNN in a cuDNN >= 5 build and CAFFE otherwise (the file does not say which).

    Example:
        >>> continue_yjxiong(0.9, engine="CUDNN").exact
        'every step'
    """
    value = _one_minus(momentum, "bn_param.momentum", where)
    if frozen:
        return _frozen()
    if engine == "CUDNN":
        return Continuation(value, 0, "every step",
                            "cuDNN engine: factor 1 − bn_param.momentum with the unbiased "
                            "variance, as PyTorch")
    return Continuation(value, 0, "approximate", _BIASED.format(name="bn_param.momentum"))


def _frozen() -> Continuation:
    return Continuation(0.0, 0, "every step",
                        "frozen: the fork never updates its moving averages and normalizes "
                        "with them in TRAIN too; momentum 0 keeps them, keep the module in "
                        "eval mode to normalize as the fork does")


def continue_nvcaffe(maf: float = 0.999, engine: Engine = "CUDNN",
                     where: str = "") -> Continuation:
    """NVIDIA Caffe's ``BatchNorm``: PyTorch momentum ``1 − moving_average_fraction``.

    Exact at every step for the CUDNN engine (NVIDIA Caffe's default) when Caffe resumes at a
    solver iteration > 0; at iteration 0 (a fresh solver) NVIDIA Caffe itself replaces the
    stored statistics by the batch's. The CAFFE engine is approximate: biased variance, eps
    added to it on CPU, and its first two passes replace the statistics.

    Example:
        >>> round(continue_nvcaffe(0.999).momentum, 9), continue_nvcaffe(0.999).exact
        (0.000999987, 'every step')
    """
    if not math.isfinite(maf) or not 0 <= maf <= 1:
        prefix = f"{where}: " if where else ""
        raise NumericError(f"{prefix}moving_average_fraction is {maf}, expected a value in "
                           "[0, 1]")
    if engine == "CUDNN":
        value = 1.0 - float(np.float32(maf))  # double factor = 1. - moving_average_fraction_
        return Continuation(value, 0, "every step",
                            "cuDNN engine: factor 1 − moving_average_fraction with the "
                            "unbiased variance, as PyTorch (NVIDIA Caffe uses factor 1 at "
                            "solver iteration 0)")
    value = _one_minus(maf, "moving_average_fraction", where)
    return Continuation(value, 0, "approximate",
                        _BIASED.format(name="moving_average_fraction")
                        + "; on CPU eps is added to the accumulated variance, and the "
                        "layer's first two passes replace the statistics")


def continue_segnet() -> Continuation:
    """SegNet's ``BN`` has no running averages: nothing to continue.

    Example:
        >>> continue_segnet().exact
        'nothing to continue'
    """
    return Continuation(TORCH_DEFAULT_MOMENTUM, 0, "nothing to continue",
                        "SegNet's BN keeps no running averages (blobs: scale, shift); the "
                        "converted BN keeps PyTorch's default momentum")
