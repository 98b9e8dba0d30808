"""bnconvert: Caffe batch normalization to PyTorch and Torch7, exactly.

Public API (imported lazily, so ``import bnconvert`` stays cheap and never imports torch; type
checkers see the names through the ``TYPE_CHECKING`` imports below)::

    load_net(prototxt, caffemodel) -> Net
    analyze(net) -> ChainAnalysis
    load_batch_norms(prototxt, caffemodel, **fold_settings) -> list[FoldedBatchNorm]
    load_weights(prototxt, caffemodel, fold="keep"|"fuse") -> list[ConvertedLayer]  (#11)
    fold_net(net, FoldOptions(...)) -> list[FoldedBatchNorm]
    to_state_dict(records, WriteOptions(...)) -> dict[str, torch.Tensor]
    save(records, path, ConvertOptions(...)) -> manifest path
    convert(prototxt, caffemodel, output, ConvertOptions(...)) -> Conversion
    convert_net(net, output, ConvertOptions(...)) -> Conversion
    verify_file(prototxt, caffemodel, converted, ...) -> VerifyReport   (imports torch)
    load_model(prototxt, caffemodel=None, *, fold="keep") -> torch.nn.Module (imports torch)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .api import (
        Conversion,
        ConvertOptions,
        analyze,
        convert,
        convert_net,
        fold_net,
        load_batch_norms,
        load_net,
        load_weights,
        save,
        to_state_dict,
    )
    from .build import load_model
    from .errors import BnConvertError, ParseError, VerificationError
    from .fold.options import FoldOptions
    from .naming import CaffeNames, NamingPolicy
    from .records import ChainLayers, ConvertedLayer, FoldedBatchNorm
    from .target.run import load_target, map_to
    from .verify import verify_file
    from .write.registry import WriteOptions

_EXPORTS = {
    "load_net": "bnconvert.api", "analyze": "bnconvert.api", "fold_net": "bnconvert.api",
    "load_batch_norms": "bnconvert.api", "load_weights": "bnconvert.api",
    "to_state_dict": "bnconvert.api",
    "save": "bnconvert.api", "convert": "bnconvert.api", "convert_net": "bnconvert.api",
    "ConvertOptions": "bnconvert.api", "Conversion": "bnconvert.api",
    "map_to": "bnconvert.target.run", "load_target": "bnconvert.target.run",
    "FoldOptions": "bnconvert.fold.options",
    "verify_file": "bnconvert.verify", "load_model": "bnconvert.build",
    "FoldedBatchNorm": "bnconvert.records", "ChainLayers": "bnconvert.records",
    "ConvertedLayer": "bnconvert.records",
    "WriteOptions": "bnconvert.write.registry",
    "NamingPolicy": "bnconvert.naming", "CaffeNames": "bnconvert.naming",
    "BnConvertError": "bnconvert.errors", "ParseError": "bnconvert.errors",
    "VerificationError": "bnconvert.errors",
}

__all__ = [
    "__version__", "load_net", "analyze", "fold_net", "load_batch_norms", "load_weights",
    "to_state_dict",
    "save", "convert", "convert_net", "ConvertOptions", "Conversion", "FoldOptions",
    "verify_file", "load_model", "FoldedBatchNorm", "ChainLayers", "ConvertedLayer", "WriteOptions",
    "NamingPolicy", "CaffeNames", "BnConvertError", "ParseError", "VerificationError",
    "map_to", "load_target",
]
assert set(__all__) == {"__version__", *_EXPORTS}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bnconvert' has no attribute {name!r}")
