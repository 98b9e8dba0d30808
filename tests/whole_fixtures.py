"""Reading the whole-net Caffe fixtures (tests/data/whole) for per-layer module tests.

Layer parameters come from deploy.prototxt through the project's generated protobuf module,
learned blobs from model.caffemodel (parsed with the same module), recorded tensors from
outputs.npz / input.npy. Nothing here computes an expected value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format
from torch import nn

from bnconvert._proto import caffe_pb2

WHOLE = Path(__file__).parent / "data" / "whole"
NETS = ("pooling_semantics", "vgg_style_lrn", "misc_layers", "densenet_block",
        "preact_resnet_block")


@dataclass(frozen=True)
class RecordedLayer:
    """One layer of a fixture net with what Caffe fed it and what it produced."""

    net: str
    param: caffe_pb2.LayerParameter
    inputs: tuple[np.ndarray, ...]
    output: np.ndarray
    blobs: tuple[np.ndarray, ...]


@cache
def _prototxt(net: str) -> caffe_pb2.NetParameter:
    message = caffe_pb2.NetParameter()
    text_format.Parse((WHOLE / net / "deploy.prototxt").read_text(), message)
    return message


@cache
def _weights(net: str) -> dict[str, tuple[np.ndarray, ...]]:
    message = caffe_pb2.NetParameter()
    message.ParseFromString((WHOLE / net / "model.caffemodel").read_bytes())
    return {layer.name: tuple(blob_array(b) for b in layer.blobs) for layer in message.layer}


@cache
def _outputs(net: str) -> dict[str, np.ndarray]:
    with np.load(WHOLE / net / "outputs.npz") as npz:
        return {key: npz[key] for key in npz.files}


def blob_array(blob: caffe_pb2.BlobProto) -> np.ndarray:
    """A caffemodel blob as float32, in its shape (``shape.dim``, legacy 4 dims, or 0-d)."""
    legacy = ("num", "channels", "height", "width")
    if any(blob.HasField(name) for name in legacy):  # Caffe's Blob::FromProto: legacy first
        shape = tuple(getattr(blob, name) for name in legacy)
    elif blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:  # Caffe writes a 0-d blob (channel-shared PReLU) with no shape field at all
        shape = ()
    values = blob.double_data if len(blob.double_data) else blob.data
    return np.asarray(values, dtype=np.float32).reshape(shape)


def layers_of(net: str, *types: str) -> list[str]:
    """Names of the net's layers of these Caffe types, in prototxt order."""
    return [layer.name for layer in _prototxt(net).layer if layer.type in types]


def recorded(net: str, name: str) -> RecordedLayer:
    """The layer ``name`` of ``net`` with Caffe's recorded inputs and first output."""
    layers = list(_prototxt(net).layer)
    index = next(i for i, layer in enumerate(layers) if layer.name == name)
    outputs = _outputs(net)
    inputs = tuple(_last_value(layers[:index], bottom, outputs)
                   for bottom in layers[index].bottom)
    return RecordedLayer(net, layers[index], inputs, outputs[name],
                         _weights(net).get(name, ()))


def _last_value(before: list[caffe_pb2.LayerParameter], blob: str,
                outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The value of ``blob`` after the last of ``before`` that wrote it."""
    for layer in reversed(before):
        if blob in layer.top:
            key = layer.name if layer.top[0] == blob else f"{layer.name}:{blob}"
            return outputs[key]
    raise KeyError(blob)


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max|ref| over the finite cells, after asserting the shapes match and
    NaN sits exactly where ``ref`` has NaN (AssertionError otherwise)."""
    assert got.shape == ref.shape, f"shape {got.shape} != Caffe's {ref.shape}"
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(got), nan), "NaN positions differ from Caffe's"
    scale = float(np.max(np.abs(ref[~nan]))) if (~nan).any() else 0.0
    diff = float(np.max(np.abs(got[~nan].astype(np.float64) - ref[~nan]))) if (~nan).any() else 0.0
    return diff / scale if scale else diff


class LRNWithK(nn.Module):
    """WITHIN_CHANNEL LRN honouring k, x * (k + alpha * avgpool(x^2)) ** -beta: what Caffe does
    not do (it ignores k there), so a net built with it must be caught."""

    def __init__(self, n: int, alpha: float, beta: float, k: float) -> None:
        super().__init__()
        self.n, self.alpha, self.beta, self.k = n, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = nn.functional.avg_pool2d(x * x, self.n, 1, (self.n - 1) // 2)
        return x * (self.k + self.alpha * mean) ** -self.beta
