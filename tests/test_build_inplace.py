"""In-place ReLUs in the built module (#12 forward speed): only where Caffe's ReLU is in
place, its input is a fresh tensor read by nothing else and no blob's final value; the
results are those of the out-of-place module, blob by blob."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from bnconvert.build.api import build_model
from bnconvert.build.network import BuiltNet
from bnconvert.build.probe import blob_values
from bnconvert.read.net import load_net

CORPUS = Path(__file__).parent / "data" / "corpus"

HEADER = 'name: "t"\ninput: "data"\ninput_shape { dim: 2 dim: 3 dim: 5 dim: 5 }\n'


def _layer(name: str, kind: str, bottoms: list[str], tops: list[str], extra: str = "") -> str:
    links = "".join(f' bottom: "{b}"' for b in bottoms) + "".join(f' top: "{t}"' for t in tops)
    return f'layer {{ name: "{name}" type: "{kind}"{links} {extra} }}\n'


CONV = 'convolution_param { num_output: 4 kernel_size: 1 }'


def _build(tmp_path: Path, body: str) -> BuiltNet:
    path = tmp_path / "net.prototxt"
    path.write_text(HEADER + body)
    return build_model(load_net(path, None))


def _inplace(built: BuiltNet) -> dict[str, bool]:
    return {name: module.inplace for name, module in built.module.named_children()
            if isinstance(module, nn.ReLU | nn.LeakyReLU)}


def _out_of_place(module: nn.Module) -> nn.Module:
    twin = copy.deepcopy(module)
    for sub in twin.modules():
        if isinstance(sub, nn.ReLU | nn.LeakyReLU):
            sub.inplace = False
    return twin


def test_relu_after_a_conv_is_in_place_and_computes_the_same(tmp_path: Path) -> None:
    built = _build(tmp_path, _layer("conv", "Convolution", ["data"], ["conv"], CONV)
                   + _layer("relu", "ReLU", ["conv"], ["conv"]))
    assert _inplace(built) == {"relu": True}
    assert built.made["relu"].kwargs == {"inplace": True}  # the model source says so too
    x = torch.randn(2, 3, 5, 5)
    kept = x.clone()
    assert torch.equal(built.module(x), torch.relu(built.module.conv(x)))
    assert torch.equal(x, kept)


@pytest.mark.parametrize(("body", "inplace"), [
    (_layer("relu", "ReLU", ["data"], ["data"]), {"relu": False}),  # the caller's input
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("relu", "ReLU", ["conv"], ["out"]), {"relu": False}),  # Caffe: not in place
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("split", "Split", ["conv"], ["a", "b"])
     + _layer("relu", "ReLU", ["a"], ["a"])
     + _layer("sig", "Sigmoid", ["b"], ["b"]), {"relu": False}),  # another reader
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("flat", "Flatten", ["conv"], ["flat"])
     + _layer("relu", "ReLU", ["flat"], ["flat"]), {"relu": False}),  # a view
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("relu", "ReLU", ["conv"], ["conv"], "relu_param { negative_slope: 0.5 }")
     + _layer("relu2", "ReLU", ["conv"], ["conv"]), {"relu": True, "relu2": False}),
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("sum", "Eltwise", ["conv"], ["sum"])  # one bottom: passed through
     + _layer("relu", "ReLU", ["sum"], ["sum"]), {"relu": False}),
    (_layer("conv", "Convolution", ["data"], ["conv"], CONV)
     + _layer("sum", "Eltwise", ["conv", "conv"], ["sum"])
     + _layer("relu", "ReLU", ["sum"], ["sum"]), {"relu": True}),
])
def test_relu_in_place_only_where_safe(tmp_path: Path, body: str,
                                       inplace: dict[str, bool]) -> None:
    built = _build(tmp_path, body)
    x = torch.randn(2, 3, 5, 5)
    kept = x.clone()
    expected = blob_values(BuiltNet(_out_of_place(built.module), *_rest(built)), x)
    assert _inplace(built) == inplace
    got = blob_values(built, x)
    assert got.keys() == expected.keys()
    for blob, value in expected.items():
        assert torch.equal(got[blob], value), blob
    assert torch.equal(x, kept)


def _rest(built: BuiltNet) -> tuple:
    return (built.inputs, built.outputs, built.made, built.writers, built.blob_nodes,
            built.notes, built.fused)


@pytest.mark.parametrize(("name", "count"), [
    ("shicai__MobileNet-Caffe__mobilenet_deploy.prototxt", 27),
    ("KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt", 49),
])
def test_real_nets_match_their_out_of_place_twin(name: str, count: int) -> None:
    built = build_model(load_net(CORPUS / name, None))
    assert sum(_inplace(built).values()) == count
    twin = _out_of_place(built.module)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(built.module(x), twin(x))
