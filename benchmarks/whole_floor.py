"""The floor of whole-model conversion (issue #11), to be timed by ``whole.py``: ``import torch``,
every blob of the caffemodel wrapped as a tensor view of the memory map (no copy; blob offsets
from bnconvert's wire scanner, which touches no value pages), one ``torch.save``.

Usage::

    python benchmarks/whole_floor.py MODEL.caffemodel OUT.pt
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch

from bnconvert.read.caffemodel import read_caffemodel


def save_views(caffemodel: str, output: str) -> int:
    model = read_caffemodel(caffemodel)
    state: dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only views; torch.save only reads them
        for layer in model.layers:
            for index, blob in enumerate(layer.blobs or ()):
                values = blob.values()
                state[f"{layer.name}.{index}"] = torch.from_numpy(values)
    torch.save(state, output)
    return len(state)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    np.seterr(all="ignore")
    print(f"wrote {sys.argv[2]}: {save_views(sys.argv[1], sys.argv[2])} tensors")
