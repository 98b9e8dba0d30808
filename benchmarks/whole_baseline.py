"""The common approach to whole-model conversion, for comparison (issue #11): read the file,
``NetParameter.ParseFromString``, ``np.array(blob.data)`` of every blob, ``torch.save``. What most
Caffe->PyTorch scripts do; timed by ``whole.py``, not used by bnconvert.

Usage::

    python benchmarks/whole_baseline.py MODEL.caffemodel OUT.pt
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from bnconvert._proto import caffe_pb2


def convert(caffemodel: str, output: str) -> int:
    net = caffe_pb2.NetParameter()
    with open(caffemodel, "rb") as handle:
        net.ParseFromString(handle.read())
    layers = list(net.layer) if len(net.layer) else list(net.layers)
    state: dict[str, torch.Tensor] = {}
    for layer in layers:
        for index, blob in enumerate(layer.blobs):
            values = blob.double_data if len(blob.double_data) else blob.data
            state[f"{layer.name}.{index}"] = torch.from_numpy(np.array(values, dtype=np.float32))
    torch.save(state, output)
    return len(state)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"wrote {sys.argv[2]}: {convert(sys.argv[1], sys.argv[2])} tensors")
