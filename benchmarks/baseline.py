"""The common approach to BN conversion, for comparison: parse the whole caffemodel with protobuf,
copy the BatchNorm/Scale blobs into numpy, fold, ``torch.save``.

This is what most Caffe->PyTorch BN scripts do (read the file into bytes, ``ParseFromString``,
``np.array(blob.data)``, pair each BatchNorm with the Scale that reads its top). It is here only
to be timed by ``run.py``; bnconvert does not use it.

Usage::

    python benchmarks/baseline.py MODEL.caffemodel OUT.pt
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from bnconvert._proto import caffe_pb2


def _array(blob: caffe_pb2.BlobProto) -> np.ndarray:
    return np.array(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)


def convert(caffemodel: str, output: str) -> int:
    net = caffe_pb2.NetParameter()
    with open(caffemodel, "rb") as handle:
        net.ParseFromString(handle.read())
    layers = list(net.layer) if len(net.layer) else list(net.layers)
    scales = {layer.bottom[0]: layer for layer in layers
              if layer.type == "Scale" and len(layer.bottom) == 1}
    state: dict[str, torch.Tensor] = {}
    for layer in layers:
        if layer.type != "BatchNorm":
            continue
        mean, var, factor = (_array(b) for b in layer.blobs)
        s = factor[0]
        f = np.float32(0 if s == 0 else 1 / s)
        state[f"{layer.name}.running_mean"] = torch.from_numpy(mean * f)
        state[f"{layer.name}.running_var"] = torch.from_numpy(var * f)
        scale = scales.get(layer.top[0])
        if scale is not None:
            state[f"{layer.name}.weight"] = torch.from_numpy(_array(scale.blobs[0]))
            if len(scale.blobs) > 1:
                state[f"{layer.name}.bias"] = torch.from_numpy(_array(scale.blobs[1]))
        state[f"{layer.name}.num_batches_tracked"] = torch.tensor(0)
    torch.save(state, output)
    return len([k for k in state if k.endswith(".running_mean")])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    count = convert(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}: {count} BatchNorm layers")
