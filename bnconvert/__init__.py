"""bnconvert: Caffe batch normalization to PyTorch and Torch7, exactly.

Public API (imported lazily, so ``import bnconvert`` stays cheap and never imports torch)::

    load_net(prototxt, caffemodel) -> Net
    analyze(net) -> ChainAnalysis
    load_batch_norms(prototxt, caffemodel, affine=False, strict=False) -> list[FoldedBatchNorm]
    fold_net(net, affine=False, strict=False) -> list[FoldedBatchNorm]
    to_state_dict(records, prefix="", dtype="float32") -> dict[str, torch.Tensor]
    save(records, path, fmt=None, options=WriteOptions(), manifest=True)
    convert(prototxt, caffemodel, output, ...) -> list[FoldedBatchNorm]
    convert_net(net, output, ...) -> list[FoldedBatchNorm]
    verify_file(prototxt, caffemodel, converted, ...) -> VerifyReport   (imports torch)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_net": "bnconvert.api", "analyze": "bnconvert.api", "fold_net": "bnconvert.api",
    "load_batch_norms": "bnconvert.api", "to_state_dict": "bnconvert.api",
    "save": "bnconvert.api", "convert": "bnconvert.api", "convert_net": "bnconvert.api",
    "verify_file": "bnconvert.verify",
    "FoldedBatchNorm": "bnconvert.records", "ChainLayers": "bnconvert.records",
    "WriteOptions": "bnconvert.write.registry",
    "BnConvertError": "bnconvert.errors", "ParseError": "bnconvert.errors",
    "VerificationError": "bnconvert.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bnconvert' has no attribute {name!r}")
