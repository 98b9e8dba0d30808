"""The net as a graph: blob versions, producers and readers (``blobs``), the rank of every
blob version (``ranks``) and Caffe's shape of every blob version (``shapes``). It knows the
typed layers, not Caffe's files."""

from __future__ import annotations

from .blobs import BlobGraph, Version
from .ranks import infer_blob_ranks
from .shapes import declared_inputs, infer_shapes

__all__ = ["BlobGraph", "Version", "infer_blob_ranks", "infer_shapes", "declared_inputs"]
