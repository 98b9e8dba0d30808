"""Layouts the real fixtures lack, on small self-built nets: expected tensors come from Caffe's
documented blob layouts (caffe.proto / the layer sources), written out here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bnconvert
from tests.caffe_builder import NetBuilder, blob
from tests.test_convert_whole_forward import build_module

RNG = np.random.default_rng(11)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _convert(builder: NetBuilder, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    deploy, model = builder.save(tmp_path)
    records = bnconvert.load_weights(deploy, model, **kw)
    state = bnconvert.to_state_dict(records)
    for record in records:  # every record fits its module strictly
        prefix = record.name + "."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        build_module(record).load_state_dict(own, strict=True)
    return {"records": {r.name: r for r in records},
            "state": {k: v.numpy() for k, v in state.items()}}


def test_inner_product_transpose_and_legacy(tmp_path: Path) -> None:
    w_t, w_legacy, b = _rand(10, 4), _rand(3, 4), _rand(3)
    net = NetBuilder().input("data", (2, 10))
    net.layer("fc_t", "InnerProduct", ["data"], ["h"], [blob(w_t, (10, 4)), blob(_rand(4))],
              inner_product_param="num_output: 4 transpose: true")
    net.layer("fc_l", "InnerProduct", ["h"], ["y"], [blob(w_legacy, (3, 4), legacy=True),
                                                    blob(b, legacy=True)],
              inner_product_param="num_output: 3")
    out = _convert(net, tmp_path)
    assert np.array_equal(out["state"]["fc_t.weight"], w_t.T)  # Caffe's y = x·W for transpose
    assert np.array_equal(out["state"]["fc_l.weight"], w_legacy)
    assert np.array_equal(out["state"]["fc_l.bias"], b)
    assert out["records"]["fc_t"].arguments == {"in_features": 10, "out_features": 4,
                                                "bias": True}


@pytest.mark.parametrize(("shape", "param", "module", "kernel"), [
    ((1, 2, 9), "kernel_size: 3", "Conv1d", (3,)),
    ((1, 2, 7, 9), "kernel_h: 3 kernel_w: 1 dilation: 2 pad: 1", "Conv2d", (3, 1)),
    ((1, 2, 4, 5, 6), "kernel_size: 2 kernel_size: 3 kernel_size: 1", "Conv3d", (2, 3, 1)),
])
def test_convolution_ranks_groups_and_no_bias(tmp_path: Path, shape: tuple[int, ...],
                                               param: str, module: str,
                                               kernel: tuple[int, ...]) -> None:
    weight = _rand(4, 1, *kernel)
    net = NetBuilder().input("data", shape)
    net.layer("conv", "Convolution", ["data"], ["y"], [blob(weight, weight.shape)],
              convolution_param=f"num_output: 4 group: 2 bias_term: false {param}")
    out = _convert(net, tmp_path)
    record = out["records"]["conv"]
    assert record.module == module and record.arguments["groups"] == 2
    assert record.arguments["in_channels"] == 2 and record.arguments["bias"] is False
    assert tuple(record.arguments["kernel_size"]) == kernel
    assert set(out["state"]) == {"conv.weight"}
    assert np.array_equal(out["state"]["conv.weight"], weight)


@pytest.mark.parametrize("fork_type", ["ConvolutionDepthwise", "DepthwiseConvolution"])
def test_depthwise_fork_layers_are_grouped_convolutions(tmp_path: Path, fork_type: str) -> None:
    weight, bias = _rand(3, 1, 3, 3), _rand(3)
    net = NetBuilder().input("data", (1, 3, 6, 6))
    net.layer("dw", fork_type, ["data"], ["y"], [blob(weight, weight.shape), blob(bias)],
              convolution_param="num_output: 3 kernel_size: 3 pad: 1")
    out = _convert(net, tmp_path)
    assert out["records"]["dw"].arguments["groups"] == 3
    assert np.array_equal(out["state"]["dw.weight"], weight)
    x = torch.from_numpy(_rand(1, 3, 6, 6))
    expected = torch.stack([torch.nn.functional.conv2d(x[:, c:c + 1], torch.from_numpy(
        weight[c:c + 1]), padding=1)[:, 0] + float(bias[c]) for c in range(3)], 1)
    module = build_module(out["records"]["dw"])
    module.load_state_dict({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)})
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_embed_prelu_shared_and_standalone_scale_bias(tmp_path: Path) -> None:
    table, ebias = _rand(5, 3), _rand(3)
    gate_bias, scale2, bias_ax = _rand(2, 4), _rand(4, 6), _rand(6)
    net = NetBuilder().input("idx", (2, 4)).input("x", (2, 4, 6)).input("g", (2, 4))
    net.layer("emb", "Embed", ["idx"], ["e"], [blob(table, (5, 3)), blob(ebias)],
              embed_param="num_output: 3 input_dim: 5")
    net.layer("pre", "PReLU", ["x"], ["p"], [blob([0.1], [])], prelu_param="channel_shared: true")
    # SE gating: x (2, 4, 6) times g (2, 4) from axis 0; Caffe's bias has g's shape
    net.layer("se", "Scale", ["p", "g"], ["s"], [blob(gate_bias, (2, 4))],
              scale_param="axis: 0 bias_term: true")
    net.layer("sc2", "Scale", ["s"], ["t"], [blob(scale2, (4, 6))], scale_param="num_axes: 2")
    net.layer("bx", "Bias", ["t"], ["u"], [blob(bias_ax)], bias_param="axis: 2")
    out = _convert(net, tmp_path)
    state, records = out["state"], out["records"]
    assert np.array_equal(state["emb.weight"], table) and np.array_equal(state["emb.bias"], ebias)
    assert state["pre.weight"].shape == () and state["pre.weight"] == np.float32(0.1)
    assert records["se"].module == "bnconvert.modules.ScaleBy"
    assert np.array_equal(state["se.bias"], gate_bias) and "se.weight" not in state
    assert np.array_equal(state["sc2.weight"], scale2)
    assert np.array_equal(state["bx.bias"], bias_ax)
    assert records["bx"].arguments == {"shape": [6], "axis": 2, "ndim": 3}
