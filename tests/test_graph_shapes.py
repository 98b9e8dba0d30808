"""Caffe's shape inference (bnconvert.graph.shapes): every blob's shape as real Caffe allocated
it (tests/data/whole blobs.npz), Caffe's measured pooling sizes (CAFFE_SEMANTICS.md), and
Caffe's refusals named with the layer and Caffe's reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from whole_fixtures import NETS, WHOLE

from bnconvert.errors import RefusedByCaffeError
from bnconvert.graph.shape_rules import pooled_size
from bnconvert.graph.shapes import declared_inputs, infer_shapes
from bnconvert.read.net import load_net


@pytest.mark.parametrize("net", NETS)
def test_shapes_are_caffes(net: str) -> None:
    loaded = load_net(WHOLE / net / "deploy.prototxt", None)
    shapes = infer_shapes(loaded)
    final = {}
    for (name, _index), shape in sorted(shapes.items(), key=lambda kv: kv[0][1]):
        final[name] = shape
    with np.load(WHOLE / net / "blobs.npz") as blobs:
        caffe = {k: blobs[k].shape for k in blobs.files if "_split_" not in k}
    assert {k: final[k] for k in caffe} == caffe


def test_other_batch_size() -> None:
    loaded = load_net(WHOLE / "vgg_style_lrn" / "deploy.prototxt", None)
    (name,) = declared_inputs(loaded)
    declared = declared_inputs(loaded)[name]
    assert declared is not None
    shapes = infer_shapes(loaded, {name: (7, *declared[1:])})
    assert all(s is not None and s[0] == 7 for s in shapes.values())


@pytest.mark.parametrize(("size", "kernel", "stride", "pad", "expected"), [
    (11, 3, 3, 1, 4),  # the clip rule drops the 5th window (measured)
    (6, 2, 3, 0, 3),  # ceil with p = 0 keeps a window starting past the input (measured)
    (66, 3, 2, 0, 33),  # vgg_style_lrn's 66 -> 33
    (13, 4, 3, 1, 5),
])
def test_pooled_size(size: int, kernel: int, stride: int, pad: int, expected: int) -> None:
    assert pooled_size(size, kernel, stride, pad, True) == expected


_NET = """name: "t"
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 4 dim: 8 dim: 8 }} }} }}
layer {{ name: "bad" type: "{type}" bottom: "data" top: "out" {param} }}
"""


@pytest.mark.parametrize(("layer_type", "param", "reason"), [
    ("LRN", "lrn_param { local_size: 4 }", "LRN only supports odd values for local_size"),
    ("Pooling", "pooling_param { pool: MAX kernel_size: 3 pad: 3 }",
     "pad [3, 3] must be less than kernel [3, 3]"),
    ("Pooling", "pooling_param { pool: STOCHASTIC kernel_size: 2 }",
     "STOCHASTIC pooling has no CPU forward in TEST"),
    ("Pooling", "pooling_param { pool: MAX global_pooling: true kernel_size: 2 }",
     "With Global_pooling: true Filter size cannot specified"),
    ("Pooling", "pooling_param { pool: MAX }", "Filter size (kernel_size or kernel_h and "
                                               "kernel_w) is required"),
    ("Convolution", "convolution_param { kernel_size: 3 }", "num_output is required"),
    ("Convolution", "convolution_param { num_output: 6 kernel_size: 3 group: 4 }",
     "must be multiples of group 4"),
    ("Reshape", "reshape_param { shape { dim: -1 dim: 5 } }",
     "bottom count (256) must be divisible by the product of the specified dimensions (5)"),
])
def test_caffe_refusals(tmp_path: Path, layer_type: str, param: str, reason: str) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(_NET.format(type=layer_type, param=param))
    with pytest.raises(RefusedByCaffeError) as caught:
        infer_shapes(load_net(path, None))
    message = str(caught.value)
    assert f"layer 'bad' ({layer_type}): Caffe refuses it: " in message
    assert reason in message


def test_unknown_types_give_none(tmp_path: Path) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(_NET.format(type="PriorBox", param="") +
                    'layer { name: "r" type: "ReLU" bottom: "out" top: "r" }\n')
    shapes = infer_shapes(load_net(path, None))
    assert shapes[("data", 0)] == (1, 4, 8, 8)
    assert shapes[("out", 1)] is None and shapes[("r", 2)] is None
