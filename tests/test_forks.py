"""BN layers of Caffe forks convert to PyTorch modules that compute what the fork computed.

Ground truth: tests/data/forks (SegNet and PSPNet cases run by the real forks, every layer's
output recorded; the NVIDIA case written from NVIDIA Caffe 0.17's source with its expected
output). Self-built edge cases take their expected values from each fork's documented formula,
written out here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert.api import load_batch_norms

from caffe_builder import NetBuilder, blob
from conftest import FORKS, cli_convert, fork_net, fork_outputs, invoke_cli

# case folder, BN layer, producer (BN input) key, output key, flavour title
CASES = [
    ("segnet/segnet_conv_bn_inference", "conv1_bn", "conv1", "conv1_bn", "SegNet/ENet BN"),
    ("pspnet/psp_conv_bn_relu", "conv1/bn", "conv1", "conv1/bn", "PSPNet/yjxiong BN"),
    ("pspnet/psp_fc_bn", "fc1/bn", "fc1", "fc1/bn", "PSPNet/yjxiong BN"),
    ("nvcaffe/nv_scale_bias_float", "conv1/bn", "conv1/bn/input", "conv1/bn/output",
     "NVIDIA Caffe BatchNorm"),
]


def convert(case: str, tmp_path: Path, with_prototxt: bool, *extra: str) -> Path:
    return cli_convert(FORKS / case, tmp_path / "fork.pt", with_prototxt, *extra)


def forward(out: Path, x: np.ndarray, train: bool = False) -> np.ndarray:
    (entry,) = json.loads(Path(str(out) + ".json").read_text())["layers"]
    state = torch.load(out, weights_only=True)
    part = {k[len(entry["key"]) + 1:]: v for k, v in state.items()}
    module = getattr(torch.nn, entry["module"])(entry["channels"], eps=entry["eps"],
                                                affine=entry["affine"])
    module.load_state_dict(part, strict=True)
    module.train(train)
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("with_prototxt", [True, False], ids=["prototxt+caffemodel", "caffemodel"])
@pytest.mark.parametrize("case,layer,source,target,flavour", CASES, ids=[c[0] for c in CASES])
def test_fork_output_reproduced(case, layer, source, target, flavour, with_prototxt,
                                tmp_path) -> None:
    data = fork_outputs(case)
    out = convert(case, tmp_path, with_prototxt)
    got = forward(out, data[source])
    assert relative_error(got, data[target]) <= 1e-5


@pytest.mark.parametrize("case,layer,source,target,flavour", CASES, ids=[c[0] for c in CASES])
def test_inspect_names_the_flavour(case, layer, source, target, flavour) -> None:
    folder = FORKS / case
    result = invoke_cli("inspect", str(folder / "deploy.prototxt"),
                        str(folder / "model.caffemodel"), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["chains"]
    assert (row["batch_norm"], row["flavour"], row["convertible"]) == (layer, flavour, True)


def test_nvidia_effective_parameters_match_expected() -> None:
    data = fork_outputs("nvcaffe/nv_scale_bias_float")
    folder = FORKS / "nvcaffe/nv_scale_bias_float"
    (record,) = load_batch_norms(folder / "deploy.prototxt", folder / "model.caffemodel")
    for field in ("running_mean", "running_var", "weight", "bias"):
        np.testing.assert_array_equal(getattr(record, field), data[f"conv1/bn/{field}"])
    assert record.eps == pytest.approx(float(data["conv1/bn/eps"]), rel=1e-7)


def test_pspnet_effective_parameters_match_fork_meta() -> None:
    folder = FORKS / "pspnet/psp_conv_bn_relu"
    meta = json.loads((folder / "meta.json").read_text())["bn"][0]["effective_pytorch"]
    (record,) = load_batch_norms(folder / "deploy.prototxt", folder / "model.caffemodel")
    for field in ("running_mean", "running_var", "weight", "bias"):
        np.testing.assert_array_equal(getattr(record, field), np.float32(meta[field]))
    assert record.eps == meta["eps"]


# --- self-built edge cases: expected values from each fork's formula ---

C = 3
X = np.random.default_rng(11).normal(1.0, 2.0, size=(2, C, 4, 4)).astype(np.float32)


def per_channel(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(1, -1, 1, 1)


def test_segnet_learn_mode_warns_and_fails_under_strict(tmp_path: Path) -> None:
    scale, shift = [1.5, 0.5, 2.0], [0.1, -0.2, 0.3]
    prototxt, model = fork_net(tmp_path, "BN", [blob(scale, [1, C, 1, 1]),
                                                blob(shift, [1, C, 1, 1])], "bn_param { }")
    out = tmp_path / "s.pt"
    result = invoke_cli("convert", str(prototxt), str(model), "-o", str(out))
    assert result.exit_code == 0 and "bn_mode is LEARN" in result.output
    # SegNet LEARN: y = scale * (x - mean_b) / sqrt(var_b + 1e-9) + shift, biased batch variance
    mean = X.mean(axis=(0, 2, 3), keepdims=True)
    var = X.var(axis=(0, 2, 3), keepdims=True)
    want = per_channel(scale) * (X - mean) / np.sqrt(var + 1e-9) + per_channel(shift)
    assert relative_error(forward(out, X, train=True), want) <= 1e-5
    strict = invoke_cli("convert", str(prototxt), str(model), "-o", str(out),
                        "--strict")
    assert strict.exit_code == 1 and "--strict" in strict.output


@pytest.mark.parametrize("eps,clamp,effective", [(1e-3, False, 1e-3), (1e-6, False, 1e-6),
                                                 (1e-6, True, 1e-5)])
def test_yjxiong_eps_from_bn_param(eps, clamp, effective, tmp_path: Path) -> None:
    slope, bias, mean, var = [1.0, 2.0, 0.5], [0.0, 0.5, -0.5], [0.2, -0.1, 1.0], [0.5, 2.0, 1e-6]
    prototxt, model = fork_net(tmp_path, "BN", [blob(v, [1, C]) for v in (slope, bias, mean, var)],
                               f"bn_param {{ frozen: true eps: {eps} }}")
    out = tmp_path / "y.pt"
    args = ["convert", str(prototxt), str(model), "-o", str(out)]
    args += ["--clamp-eps"] if clamp else []
    assert invoke_cli(*args).exit_code == 0
    want = per_channel(slope) * (X - per_channel(mean)) / np.sqrt(
        per_channel(var) + np.float32(effective)) + per_channel(bias)
    assert relative_error(forward(out, X), want) <= 1e-5


def test_nvidia_three_blob_bvlc_format_is_divided_and_eps_clamped(tmp_path: Path) -> None:
    mean_acc, var_acc, factor = [2.0, 4.0, 6.0], [1e-6, 8.0, 10.0], 2.0
    prototxt, model = fork_net(tmp_path, "BatchNorm", [blob(mean_acc), blob(var_acc),
                                                       blob([factor])],
                               "batch_norm_param { eps: 1e-7 scale_bias: false }")
    records = load_batch_norms(prototxt, model, flavour="nvcaffe")
    assert records[0].eps == pytest.approx(1e-5, rel=1e-7)  # NVIDIA: max(eps, 1e-5)
    np.testing.assert_array_equal(records[0].running_mean, np.float32(mean_acc) / np.float32(2))


def test_nvidia_digits_order_is_reordered(tmp_path: Path) -> None:
    scale, bias, mean, var = [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [1.5, 1.6, 1.7]
    prototxt, model = fork_net(tmp_path, "BatchNorm",
                               [blob(v) for v in (scale, bias, mean, var)] + [blob([0.0])],
                               "batch_norm_param { scale_bias: true }")
    (record,) = load_batch_norms(prototxt, model)
    assert record.flavour == "nvcaffe-digits"
    assert (record.weight.tolist(), record.running_var.tolist()) == (
        pytest.approx(scale), pytest.approx(var))


def test_intel_merged_batch_norm_divides_by_its_scale_factor(tmp_path: Path) -> None:
    s = 999.98
    mean, var, gamma, beta = [1.0, -2.0, 3.0], [4.0, 5.0, 6.0], [2.0, 0.5, 1.0], [0.1, 0.2, 0.3]
    f = np.float32(1) / np.float32(s)
    blobs = [blob(np.float32(mean) * np.float32(s)), blob(np.float32(var) * np.float32(s)),
             blob([s]), blob(gamma), blob(beta)]
    prototxt, model = fork_net(tmp_path, "BatchNorm", blobs, "")
    (record,) = load_batch_norms(prototxt, model)
    assert record.flavour == "intel"
    np.testing.assert_array_equal(record.running_var,
                                  (np.float32(var) * np.float32(s)) * f)
    assert record.bias.tolist() == pytest.approx(beta)


def test_half_precision_raw_data_blobs(tmp_path: Path) -> None:
    builder = NetBuilder().input("data", [2, C, 4, 4])
    layer = builder.layer("bn", "BatchNorm", ["data"], ["data"])
    for values in ([0.5, 1.0, 1.5], [2.0, 2.5, 3.0], [1.0]):
        proto = layer.blobs.add()
        proto.shape.dim.append(len(values))
        proto.raw_data_type = 2  # FLOAT16
        proto.raw_data = np.asarray(values, "<f2").tobytes()
    _, model = builder.save(tmp_path, prototxt=False)
    (record,) = load_batch_norms(None, model)
    assert record.running_var.tolist() == [2.0, 2.5, 3.0]


def test_unrecognized_layout_is_an_error_naming_blobs(tmp_path: Path) -> None:
    prototxt, model = fork_net(tmp_path, "BN", [blob([1.0] * C)] * 3, "")
    result = invoke_cli("convert", str(prototxt), str(model), "-o",
                        str(tmp_path / "u.pt"))
    assert result.exit_code == 1
    assert result.output == (
        f"bnconvert: error: {prototxt} + {model}: cannot convert: layer 'bn' (BN) has 3 blobs "
        "([3], [3], [3]): a BN layer needs 2 blobs (SegNet: scale, shift) or 4 (PSPNet/yjxiong: "
        "slope, bias, mean, variance); if you know its origin, pass --flavor "
        "bvlc|nvcaffe|intel|segnet|yjxiong\n")


def test_flavor_override_must_fit_the_layer_type(tmp_path: Path) -> None:
    folder = FORKS / "pspnet/psp_conv_bn_relu"
    result = invoke_cli("convert", str(folder / "model.caffemodel"), "-o",
                        str(tmp_path / "o.pt"), "--flavor", "nvcaffe")
    assert result.exit_code == 1
    assert "--flavor nvcaffe does not apply to layer 'conv1/bn' (BN)" in result.output


def test_intel_fused_relu_is_reported(tmp_path: Path) -> None:
    prototxt, model = fork_net(tmp_path, "BatchNorm", [blob([1.0] * C), blob([1.0] * C),
                                                       blob([1.0])],
                               "batch_norm_param { relu: true }")
    result = invoke_cli("convert", str(prototxt), str(model), "-o",
                        str(tmp_path / "r.pt"))
    assert result.exit_code == 0
    assert "batch_norm_param.relu is set" in result.output
    assert "add a ReLU after it" in result.output


def test_verify_accepts_the_flavor_override(tmp_path: Path) -> None:
    folder = FORKS / "pspnet/psp_conv_bn_relu"
    out = convert("pspnet/psp_conv_bn_relu", tmp_path, False, "--flavor", "yjxiong")
    result = invoke_cli("verify", str(folder / "model.caffemodel"), str(out),
                        "--flavor", "yjxiong")
    assert result.exit_code == 0, result.output
