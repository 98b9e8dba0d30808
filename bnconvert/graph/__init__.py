"""The net as a graph: blob versions, producers and readers (``blobs``) and the rank of every
blob version (``ranks``). It knows the typed layers, not Caffe's files."""

from __future__ import annotations

from .blobs import BlobGraph, Version
from .ranks import infer_blob_ranks

__all__ = ["BlobGraph", "Version", "infer_blob_ranks"]
