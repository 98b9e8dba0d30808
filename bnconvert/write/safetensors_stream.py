"""A ``.safetensors`` file streamed to its output: the header first, then each tensor's bytes
written straight from its array (for caffemodel blobs, a view of the memory map) in chunks,
each chunk's mapped pages released once written. Peak memory stays near the interpreter's
whatever the model's size. Needs numpy only (not the ``safetensors`` package).

Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
N bytes of JSON ``{"__metadata__": {...}, key: {"dtype", "shape", "data_offsets": [begin, end]}}``
padded with spaces to a multiple of 8, then the tensors' little-endian bytes, back to back.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

from .chunks import array_chunks

__all__ = ["write_safetensors_stream", "safetensors_header"]

_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64",
           "int32": "I32"}


def safetensors_header(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The length-prefixed, space-padded JSON header for ``arrays`` in their order.

    Example:
        >>> len(safetensors_header({"a": np.zeros(2, np.float32)}, {})) % 8
        0
    """
    described: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key, array in arrays.items():
        described[key] = {"dtype": _DTYPES[array.dtype.name], "shape": list(array.shape),
                          "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(described, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_safetensors_stream(arrays: Mapping[str, np.ndarray], stream: BinaryIO,
                             metadata: Mapping[str, str]) -> None:
    """Write ``arrays`` as a .safetensors file to ``stream`` without copying them whole."""
    stream.write(safetensors_header(arrays, metadata))
    for array in arrays.values():
        for chunk in array_chunks(array):
            stream.write(chunk)
