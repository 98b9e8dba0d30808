"""Mapping real Caffe weights onto a user's module and checking it against Caffe's own recorded
outputs (tests/data/whole/preact_resnet_block: two ResNet-v2 units run by BVLC Caffe)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert.read.net import Net, load_net
from bnconvert.target.caffe_side import caffe_units
from bnconvert.target.diagnose import first_divergence
from bnconvert.target.match import match_units
from bnconvert.target.state_dict import build_state_dict
from bnconvert.target.torch_side import state_dict_spec, target_units, to_tensors

WHOLE = Path(__file__).parent / "data" / "whole" / "preact_resnet_block"
USER = Path(__file__).parent / "data" / "target" / "preact_user.py"


def _model(stride_on_1x1: bool) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("preact_user", USER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TwoUnits(stride_on_1x1).eval()


def _caffe_tensors(net: Net) -> dict[str, dict[str, np.ndarray]]:
    """PyTorch-layout tensors from the caffemodel, by Caffe's documented TEST-phase BN:
    mean = blob0 / s, var = blob1 / s with s = blob2[0] (0 when s is 0); Scale: gamma, beta."""
    blobs = {layer.name: [b.values().reshape(b.shape) for b in layer.blobs or ()]
             for layer in net.layers}
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in net.layers:
        if layer.type == "Convolution":
            out[layer.name] = {"weight": blobs[layer.name][0]}
        elif layer.type == "BatchNorm":
            mean, var, factor = blobs[layer.name]
            s = float(factor.reshape(-1)[0])
            k = 0.0 if s == 0 else 1.0 / s
            gamma, beta = blobs[layer.name[:-len("_bn")] + "_scale"]  # this net's naming
            out[layer.name] = {"running_mean": mean * k, "running_var": var * k,
                               "weight": gamma, "bias": beta}
    return out


def _recorded(net: Net) -> Mapping[str, np.ndarray]:
    outputs = np.load(WHOLE / "outputs.npz")
    return {u.name: outputs[u.layers[-1]] for u in caffe_units(net)}


def _forward(model: torch.nn.Module):
    def run(x: np.ndarray) -> Mapping[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        named = {m: n for n, m in model.named_modules() if n and not list(m.children())}
        hooks = [m.register_forward_hook(
            lambda mod, _i, o: out.__setitem__(named[mod], o.detach().numpy())) for m in named]
        with torch.no_grad():
            model(torch.from_numpy(x))
        for hook in hooks:
            hook.remove()
        return out

    return run


@pytest.mark.parametrize("stride_on_1x1", [False, True])
def test_real_weights_map_and_the_check_agrees_or_names_the_stride(stride_on_1x1: bool) -> None:
    net = load_net(WHOLE / "deploy.prototxt", WHOLE / "model.caffemodel")
    model = _model(stride_on_1x1)
    matching = match_units(caffe_units(net), target_units(model)).require_complete()
    assert {m.caffe.name: m.target.name for m in matching.matches if "match" in m.caffe.name
            or m.caffe.name == "res4_bn"} == {"res4_match_conv": "unit1.project",
                                              "res4_bn": "unit1.pre"}
    mapped = build_state_dict(matching, _caffe_tensors(net), state_dict_spec(model))
    model.load_state_dict(to_tensors(mapped.state_dict), strict=True)
    x = np.load(WHOLE / "input.npy")
    recorded = _recorded(net)
    found = first_divergence(_forward(model), lambda _x: recorded, matching, x)
    if not stride_on_1x1:
        assert found is None
        with torch.no_grad():
            final = model(torch.from_numpy(x)).numpy()
        expected = np.load(WHOLE / "outputs.npz")["res5_eletwise"]
        np.testing.assert_allclose(final, expected, rtol=1e-4,
                                   atol=1e-5 * float(np.abs(expected).max()))
    else:
        assert found is not None
        assert found.message() == (
            "target module 'unit1.reduce': output shape 2x128x4x4 where Caffe's 'res4_conv1' "
            "has 2x128x8x8; stride placement: Caffe's 'res4_conv1' has stride 1x1 (1x1 kernel), "
            "the target's 'unit1.reduce' has stride 2x2 (1x1 kernel); stride placement: Caffe's "
            "'res4_conv2' has stride 2x2 (3x3 kernel), the target's 'unit1.spatial' has stride "
            "1x1 (3x3 kernel)")
