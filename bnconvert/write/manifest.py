"""The JSON manifest written beside every output: per converted layer its key, its kind and
what is needed to build its module (class, channels, eps, affine for a BatchNorm), and where each
value came from in Caffe — without re-reading the prototxt. ``verify`` reads it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..records import ConvertedLayer
from .registry import WriteOptions

__all__ = ["manifest_path_for", "manifest_dict", "manifest_bytes", "read_manifest",
           "manifest_entries", "MANIFEST_VERSION"]

MANIFEST_SUFFIX = ".json"
MANIFEST_VERSION = 2  # 1 (bnconvert 0.1): a "batch_norms" list; 2: "layers" with a "kind" each


def manifest_path_for(output: str | Path) -> Path:
    """Default manifest location: the output path plus ``.json`` (``model.pt.json``)."""
    return Path(str(output) + MANIFEST_SUFFIX)


def manifest_dict(records: Sequence[ConvertedLayer], fmt: str, output: str | Path,
                  options: WriteOptions, sources: dict[str, str | None]) -> dict[str, Any]:
    """The manifest as a JSON-ready dict."""
    return {
        "bnconvert": __version__,
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "file": Path(output).name,
        "sources": sources,
        "dtype": options.dtype,
        "prefix": options.prefix,
        "t7_layout": options.t7_layout if fmt == "t7" else None,
        "key_rule": "Caffe layer name kept if a Python identifier without '__'; otherwise every "
                    "character outside [A-Za-z0-9] becomes '__<utf-8 hex>__' (bnconvert.naming)",
        "layers": [{"key": options.key(record), "kind": record.kind, **record.describe()}
                   for record in records],
    }


def manifest_entries(manifest: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    """The manifest's entries of one kind (``"batch_norm"``), from either manifest version."""
    if manifest is None:
        return []
    if isinstance(manifest.get("layers"), list):
        return [e for e in manifest["layers"] if isinstance(e, dict) and e.get("kind") == kind]
    legacy = manifest.get("batch_norms") if kind == "batch_norm" else None
    return [e for e in legacy if isinstance(e, dict)] if isinstance(legacy, list) else []


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Serialized manifest (indented UTF-8 JSON, trailing newline)."""
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Load a manifest written by ``manifest_bytes``."""
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
