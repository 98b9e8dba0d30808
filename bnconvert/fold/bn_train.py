"""Build the BatchNorm module of one manifest entry for training, as ``load_model`` and
``convert --module`` need it (imports torch).

- ``bn_train=None``: ``torch.nn.BatchNorm*d`` with the manifest's ``momentum`` (None: PyTorch's
  cumulative average; the state_dict's ``num_batches_tracked`` holds the count) and ``eps``.
- ``bn_train="caffe"``: for a layer whose running averages use Caffe's scale factor
  (``running_average == "scale-factor"``: BVLC, Intel) a ``CaffeBatchNorm*d`` holding Caffe's
  ``moving_average_fraction`` and scale factor, which recomputes the momentum before every
  train-mode step, exactly as Caffe. The forks' averages move by a fixed factor (or not at all),
  which the plain module with the manifest's momentum already does; they get that.

Either module then loads the converted state_dict with ``load_state_dict(strict=True)`` (the
Caffe buffers of ``CaffeBatchNorm*d`` come from the constructor when the file lacks them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from ..errors import BnConvertError
from ..modules.caffe_batch_norm import CaffeBatchNorm1d, CaffeBatchNorm2d, CaffeBatchNorm3d
from .momentum import TORCH_DEFAULT_MOMENTUM

__all__ = ["batch_norm_from_entry", "caffe_batch_norm_from_entry", "BnTrain"]

BnTrain = Literal["caffe"] | None
_PLAIN = {"BatchNorm1d": torch.nn.BatchNorm1d, "BatchNorm2d": torch.nn.BatchNorm2d,
          "BatchNorm3d": torch.nn.BatchNorm3d}
_CAFFE = {"BatchNorm1d": CaffeBatchNorm1d, "BatchNorm2d": CaffeBatchNorm2d,
          "BatchNorm3d": CaffeBatchNorm3d}



def batch_norm_from_entry(entry: Mapping[str, Any], bn_train: BnTrain = None,
                          dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The module of one ``batch_norm`` manifest entry (``manifest["layers"][i]``).

    Args:
        entry: the entry: ``module``, ``channels``, ``eps``, ``affine``, ``momentum``, and for
            ``bn_train="caffe"`` ``running_average``, ``moving_average_fraction`` and
            ``scale_factor``.
        bn_train: None for the plain module, ``"caffe"`` to continue Caffe exactly.
        dtype: the parameters' dtype (the manifest's ``dtype``), None for float32.

    Returns:
        A freshly initialized module in train mode; load the state_dict into it.

    Raises:
        BnConvertError: an entry of another kind or without the fields needed.

    Example:
        >>> entry = {"kind": "batch_norm", "key": "bn1", "module": "BatchNorm2d", "channels": 3,
        ...          "eps": 1e-5, "affine": True, "momentum": None, "scale_factor": 37.0,
        ...          "moving_average_fraction": 1.0, "running_average": "scale-factor"}
        >>> batch_norm_from_entry(entry).momentum is None
        True
        >>> type(batch_norm_from_entry(entry, "caffe")).__name__
        'CaffeBatchNorm2d'
    """
    name, cls = _checked(entry)
    if bn_train not in (None, "caffe"):
        raise BnConvertError(f"bn_train is {bn_train!r}, expected None or 'caffe'")
    channels, eps, affine = int(entry["channels"]), float(entry["eps"]), bool(entry["affine"])
    if bn_train == "caffe" and entry.get("running_average") == "scale-factor":
        maf, s = entry.get("moving_average_fraction"), entry.get("scale_factor")
        if maf is None or s is None:
            raise BnConvertError(f"manifest entry {name!r}: bn_train='caffe' needs "
                                 "moving_average_fraction and scale_factor; reconvert with "
                                 "this bnconvert")
        return _CAFFE[cls](channels, eps=eps, moving_average_fraction=float(maf),
                           scale_factor=float(s), affine=affine, dtype=dtype)
    if bn_train == "caffe" and "running_average" not in entry:
        raise BnConvertError(f"manifest entry {name!r} does not say how Caffe averaged "
                             "(written by an older bnconvert); reconvert for bn_train='caffe'")
    momentum = entry.get("momentum", TORCH_DEFAULT_MOMENTUM)  # 0.1 manifests: none
    return _PLAIN[cls](channels, eps=eps, affine=affine,
                       momentum=None if momentum is None else float(momentum), dtype=dtype)


def caffe_batch_norm_from_entry(entry: Mapping[str, Any],
                                dtype: torch.dtype | None = None) -> torch.nn.Module:
    """``batch_norm_from_entry(entry, "caffe", dtype)``: the module that continues Caffe's
    running averages at every train-mode step where a module can.

    Example:
        >>> entry = {"kind": "batch_norm", "key": "bn1", "module": "BatchNorm1d", "channels": 2,
        ...          "eps": 1e-5, "affine": False, "momentum": 0.5, "scale_factor": 1.0,
        ...          "moving_average_fraction": 0.999, "running_average": "scale-factor"}
        >>> float(caffe_batch_norm_from_entry(entry).scale_factor)
        1.0
    """
    return batch_norm_from_entry(entry, "caffe", dtype)


def _checked(entry: Mapping[str, Any]) -> tuple[str, str]:
    name = str(entry.get("key", entry.get("caffe_layers", {}).get("batch_norm", "?")))
    if entry.get("kind", "batch_norm") != "batch_norm":
        raise BnConvertError(f"manifest entry {name!r} is a {entry.get('kind')!r}, not a "
                             "batch_norm")
    missing = [k for k in ("module", "channels", "eps", "affine") if k not in entry]
    if missing:
        raise BnConvertError(f"manifest entry {name!r} lacks {', '.join(missing)}")
    cls = str(entry["module"])
    if cls not in _PLAIN:
        raise BnConvertError(f"manifest entry {name!r}: module {cls!r} is not BatchNorm1d, "
                             "BatchNorm2d or BatchNorm3d")
    return name, cls
