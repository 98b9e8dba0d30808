"""Import torchvision in the tests, where the package index serves a torchvision built for CUDA
torch: with the CPU torch its import fails (``operator torchvision::nms does not exist``) because
``torchvision/_meta_registrations.py`` registers fake kernels for two operators that its compiled
extension would have defined. Declaring those two schemas first (as
``torchvision/csrc/ops/nms.cpp`` does) makes the import, and the plain-Python model classes,
work. Tests only: the product never does this. Models are built with ``weights=None``.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY: list[torch.library.Library] = []  # kept alive: dropping it unregisters the schemas


def _declare_missing_ops() -> None:
    library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        library.define(schema)
    _LIBRARY.append(library)


def _forget_partial_import() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def import_torchvision_models() -> ModuleType:
    """``torchvision.models``, or skip the test when torchvision (or Pillow) is not installed.

    A torchvision that matches its torch imports unchanged; only where the import fails on the
    missing operators are they declared and the import retried.
    """
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (the test extra has it)")
    try:
        import torchvision.models as models
    except ModuleNotFoundError as exc:
        pytest.skip(f"torchvision cannot be imported: {exc}")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or _LIBRARY:
            raise
        _forget_partial_import()
        _declare_missing_ops()
        import torchvision.models as models
    return models
