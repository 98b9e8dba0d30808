"""The candidate: a converted file read back from disk, run as its framework would run it.

``.pt``/``.pth``/``.safetensors``: each BN's tensors are loaded with
``load_state_dict(strict=True)`` into a real ``torch.nn.BatchNorm1d/2d/3d`` in eval mode.
``.t7``: the modules are read with ``bnconvert.write.t7.read_t7_batch_norms`` and run with
Torch7's evaluate-mode formula (THNN ``BatchNormalization_updateOutput``)::

    invstd = float32(1 / sqrt(float64(running_var) + eps))
    y = ((x - mean) * invstd) * weight + bias
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..records import batch_norm_class
from ..write.detect import converted_format
from ..write.registry import EXTENSIONS, FORMATS, LoadedFile, loader_for

__all__ = ["ConvertedBatchNorm", "load_converted", "run_candidate", "format_of",
           "CandidateError"]

_TORCH_MODULES = frozenset(batch_norm_class(rank) for rank in (2, 4, 5))


class CandidateError(Exception):
    """A BN in the converted file cannot be run (a verification failure of that layer)."""


@dataclass(frozen=True, eq=False)
class ConvertedBatchNorm:
    """One BN module as the converted file holds it.

    Attributes:
        key: where it is in the file (state_dict key prefix, or the Torch7 module path).
        kind: ``"pytorch"`` (run through ``torch.nn``) or ``"torch7"`` (Torch7's formula).
        module: ``BatchNorm1d/2d/3d`` (PyTorch) or the Torch7 class name.
        tensors: PyTorch: the module's state_dict entries without the key prefix;
            Torch7: ``running_mean``, ``running_var``, ``weight``, ``bias`` as numpy (the last
            two absent when not affine).
        eps: the eps the module runs with; eps_source: where it came from.
    """

    key: str
    kind: str
    module: str
    tensors: dict[str, Any]
    eps: float
    eps_source: str

    @property
    def affine(self) -> bool:
        """True when the module has weight and bias."""
        return "weight" in self.tensors or "bias" in self.tensors


def format_of(path: str | os.PathLike[str], manifest: dict[str, Any] | None) -> str:
    """``pt``, ``safetensors`` or ``t7``: the manifest's, else by magic bytes, else by the
    extension (see ``write.detect.converted_format``).

    Raises:
        ParseError: none tells, or the file is of another kind (named in the message).
    """
    recorded = manifest.get("format") if manifest is not None else None
    return converted_format(path, recorded if recorded in FORMATS else None, EXTENSIONS)


def load_converted(path: str | os.PathLike[str], fmt: str) -> LoadedFile:
    """Read the converted file from disk with its format's loader (``write.registry``).

    Raises:
        ParseError: the file cannot be read as ``fmt``.
    """
    return loader_for(fmt)(str(path))


def run_candidate(bn: ConvertedBatchNorm, x: np.ndarray) -> np.ndarray:
    """The converted module's output for ``x`` (eval mode), as float64 numpy.

    Raises:
        CandidateError: the module cannot be built or loaded (wrong class, shapes, keys).
    """
    if bn.kind == "torch7":
        return _torch7_forward(bn, x)
    if bn.module not in _TORCH_MODULES:
        raise CandidateError(f"module {bn.module!r} is not one of "
                             f"{', '.join(_TORCH_MODULES)}")
    mean = bn.tensors.get("running_mean")
    if not isinstance(mean, torch.Tensor) or mean.ndim != 1:
        raise CandidateError("no 1-D running_mean tensor")
    module = getattr(torch.nn, bn.module)(mean.numel(), eps=bn.eps, affine=bn.affine)
    if mean.dtype == torch.float64:
        module = module.double()
    try:
        module.load_state_dict(bn.tensors, strict=True)
    except RuntimeError as exc:
        message = " ".join(str(exc).split())
        raise CandidateError(f"load_state_dict into {bn.module}({mean.numel()}) failed: "
                             f"{message}") from exc
    module.eval()
    with torch.no_grad():
        try:
            out = module(torch.from_numpy(np.ascontiguousarray(x)).to(mean.dtype))
        except (RuntimeError, ValueError) as exc:
            raise CandidateError(f"{bn.module} rejects an input of shape {list(x.shape)}: "
                                 f"{exc}") from exc
    return out.double().numpy()


def _torch7_forward(bn: ConvertedBatchNorm, x: np.ndarray) -> np.ndarray:
    mean, var = bn.tensors["running_mean"], bn.tensors["running_var"]
    real = mean.dtype.type
    shape = (1, -1) + (1,) * (x.ndim - 2)
    for name in ("running_var", "weight", "bias"):
        value = bn.tensors.get(name)
        if value is not None and value.shape != mean.shape:
            raise CandidateError(f"{name} has shape {list(value.shape)}, running_mean "
                                 f"{list(mean.shape)}")
    if x.ndim < 2 or x.shape[1] != mean.size:
        raise CandidateError(f"{mean.size} channels, input has shape {list(x.shape)}")
    with np.errstate(invalid="ignore", divide="ignore"):  # a negative variance gives NaN: fails
        invstd = (1.0 / np.sqrt(var.astype(np.float64) + bn.eps)).astype(real)
    weight = bn.tensors.get("weight")
    bias = bn.tensors.get("bias")
    w = np.ones_like(mean) if weight is None else weight
    b = np.zeros_like(mean) if bias is None else bias
    xr = x.astype(real)
    out = ((xr - mean.reshape(shape)) * invstd.reshape(shape)) * w.reshape(shape) + b.reshape(shape)
    return out.astype(np.float64)
