"""The JSON manifest written beside every output: per BN, what is needed to build the modules
(class, channels, eps, affine) and where each value came from in Caffe — without re-reading
the prototxt. ``verify`` reads it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..records import FoldedBatchNorm
from .registry import WriteOptions

__all__ = ["manifest_path_for", "manifest_dict", "manifest_bytes", "read_manifest"]

MANIFEST_SUFFIX = ".json"


def manifest_path_for(output: str | Path) -> Path:
    """Default manifest location: the output path plus ``.json`` (``model.pt.json``)."""
    return Path(str(output) + MANIFEST_SUFFIX)


def _entry(record: FoldedBatchNorm, prefix: str) -> dict[str, Any]:
    return {
        "key": prefix + record.key,
        "module": record.torch_class,
        "caffe_layers": {"batch_norm": record.layers.batch_norm, "scale": record.layers.scale,
                         "bias": record.layers.bias,
                         "batch_norm_type": record.layers.batch_norm_type},
        "channels": record.channels,
        "rank": record.rank,
        "eps": record.eps,
        "scale_factor": record.scale_factor,
        "affine": record.affine,
        "use_global_stats": record.use_global_stats,
        "flavour": record.flavour,
        "warnings": list(record.warnings),
    }


def manifest_dict(records: Sequence[FoldedBatchNorm], fmt: str, output: str | Path,
                  options: WriteOptions, sources: dict[str, str | None]) -> dict[str, Any]:
    """The manifest as a JSON-ready dict."""
    return {
        "bnconvert": __version__,
        "format": fmt,
        "file": Path(output).name,
        "sources": sources,
        "dtype": options.dtype,
        "prefix": options.prefix,
        "t7_layout": options.t7_layout if fmt == "t7" else None,
        "key_rule": "Caffe layer name kept if a Python identifier without '__'; otherwise every "
                    "character outside [A-Za-z0-9] becomes '__<utf-8 hex>__' (bnconvert.naming)",
        "batch_norms": [_entry(record, options.prefix) for record in records],
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Serialized manifest (indented UTF-8 JSON, trailing newline)."""
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Load a manifest written by ``manifest_bytes``."""
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
