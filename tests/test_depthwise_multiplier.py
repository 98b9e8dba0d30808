"""The depthwise fork layers with a channel multiplier k (num_output = k·C_in, group = C_in):
the weights' layout (k·C_in, 1, kh, kw), the conversion (#11: a grouped convolution with
groups = C_in) and the built module (#12), against a convolution written out here in numpy.

What the forks compute (their sources, read for this test):

- yonghenglh6/DepthwiseConvolution (``DepthwiseConvolution``, 2b9cf52) derives from Caffe's
  ``BaseConvolutionLayer``: weight (num_output, C_in/group, kh, kw), and its CPU forward is
  Caffe's grouped convolution (``forward_cpu_gemm``) with the prototxt's group. With
  group = C_in, output channel o reads input channel o // k: the formula below.
- farmingyard/caffe-mobilenet (``ConvolutionDepthwise``, f7d7d13) ignores num_output and group:
  weight (C_in, 1, kh, kw), C_in outputs, output c reads input c (k = 1 only). A caffemodel it
  saved for a layer whose prototxt says num_output = k·C_in holds a (C_in, 1, kh, kw) blob, and
  bnconvert refuses it by the shape check (``test_convert_whole_channels``).

The caffemodels here are built by the test (no fork Caffe is available to run); the expected
outputs come from the numpy formula, not from bnconvert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert import load_model
from bnconvert._proto import caffe_pb2
from tests.caffe_builder import NetBuilder, blob

from conftest import invoke_cli

C_IN, HEIGHT, WIDTH, KERNEL, STRIDE, PAD = 3, 7, 6, 3, 2, 1


def depthwise_formula(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                      stride: int, pad: int) -> np.ndarray:
    """Caffe's grouped convolution with one group per input channel, written out: output
    channel o (of k·C) reads input channel o // k;
    y[n, o, i, j] = b[o] + sum_{u,v} w[o, 0, u, v] · x_pad[n, o // k, i·s + u, j·s + v]."""
    n, c, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    k = out_channels // c
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.float64)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    out_h, out_w = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    y = np.zeros((n, out_channels, out_h, out_w), dtype=np.float64)
    for o in range(out_channels):
        for i in range(out_h):
            for j in range(out_w):
                patch = padded[:, o // k, i * stride:i * stride + kh, j * stride:j * stride + kw]
                y[:, o, i, j] = (patch * weight[o, 0]).sum(axis=(1, 2))
        if bias is not None:
            y[:, o] += bias[o]
    return y


def _net(tmp_path: Path, kind: str, k: int, rng: np.random.Generator) -> tuple[Path, Path]:
    weight = rng.standard_normal((k * C_IN, 1, KERNEL, KERNEL)).astype(np.float32)
    bias = rng.standard_normal(k * C_IN).astype(np.float32)
    net = NetBuilder().input("data", (2, C_IN, HEIGHT, WIDTH))
    net.layer("dw", kind, ["data"], ["dw"], [blob(weight, weight.shape), blob(bias)],
              convolution_param=f"num_output: {k * C_IN} group: {C_IN} kernel_size: {KERNEL} "
              f"stride: {STRIDE} pad: {PAD}")
    return net.save(tmp_path / "net")


KINDS = ["DepthwiseConvolution", "ConvolutionDepthwise"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_built_module_matches_the_formula(tmp_path: Path, kind: str, k: int) -> None:
    rng = np.random.default_rng(7 + k)
    deploy, model = _net(tmp_path, kind, k, rng)
    module = load_model(deploy, model)
    conv = module.get_submodule("dw")
    assert isinstance(conv, torch.nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.groups) == (C_IN, k * C_IN, C_IN)
    x = rng.standard_normal((2, C_IN, HEIGHT, WIDTH)).astype(np.float32)
    with torch.inference_mode():
        got = module(torch.from_numpy(x)).numpy()
    blobs = caffe_pb2.NetParameter.FromString(model.read_bytes()).layer[1].blobs  # as written
    weight = np.asarray(blobs[0].data, np.float32).reshape(tuple(blobs[0].shape.dim))
    bias = np.asarray(blobs[1].data, np.float32)
    want = depthwise_formula(x, weight, bias, STRIDE, PAD)
    assert got.shape == want.shape == (2, k * C_IN, 4, 3)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("kind", KINDS)
def test_converted_weights_load_strictly_into_the_built_module(tmp_path: Path,
                                                               kind: str) -> None:
    rng = np.random.default_rng(3)
    deploy, model = _net(tmp_path, kind, 2, rng)
    out = tmp_path / "w.pt"
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(out), "--whole")
    assert result.exit_code == 0, result.output
    assert "not checked" not in result.output
    state = torch.load(out, weights_only=True)
    assert state["dw.weight"].shape == (6, 1, 3, 3) and state["dw.bias"].shape == (6,)
    bare = load_model(deploy)  # no weights: PyTorch's initial values
    bare.load_state_dict(state, strict=True)
    x = torch.from_numpy(rng.standard_normal((2, C_IN, HEIGHT, WIDTH)).astype(np.float32))
    with torch.inference_mode():
        want = depthwise_formula(x.numpy(), state["dw.weight"].numpy(),
                                 state["dw.bias"].numpy(), STRIDE, PAD)
        got = bare(x).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
