"""Issue #12: ``verify --whole --reference opencv`` (cv2.dnn of ``opencv-python-headless<5``, in
the test extra) and ``--reference pycaffe`` (only where ``import caffe`` works).

The reference is itself proven against real Caffe: on every net of tests/data/whole, each blob
OpenCV computes matches Caffe's recorded ``blobs.npz`` within 1e-5 of its magnitude, and the
blobs it reports as not checked are exactly those downstream of a layer where OpenCV, run
directly here, is measured to differ from Caffe or cannot run:

- pooling_semantics: ``ave_k2s2_floor``, ``max_k2s2_floor`` (``round_mode: FLOOR``: OpenCV's
  forward fails on an assertion);
- vgg_style_lrn: ``norm3`` (ACROSS_CHANNELS LRN with k 1.5: OpenCV computes k = 1, 18% off)
  and everything after it;
- misc_layers: ``bias1`` (OpenCV has no Bias layer; in place on ``tanh1``) and everything after.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from whole_fixtures import NETS, WHOLE, relative_error

from bnconvert.build import reference_opencv
from bnconvert.build.reference_opencv import opencv_reference
from bnconvert.build.reference_whole import reference_inputs
from bnconvert.cli import main
from bnconvert.naming import key_for_layer_name
from bnconvert.read.net import load_net

TOLERANCE = 1e-5
HAS_PYCAFFE = importlib.util.find_spec("caffe") is not None
_FLOOR = "OpenCV cannot run Pooling with floor rounding (round_mode: FLOOR)"
_LRN = "OpenCV's LRN ignores k (computes k = 1, Caffe's is 1.5)"
_BIAS = "OpenCV has no Bias layer"
#: per net: blob -> (the layer where OpenCV stops computing Caffe's value, its reason)
NOT_BY_OPENCV: dict[str, dict[str, tuple[str, str, str]]] = {
    "pooling_semantics": {b: (b, "Pooling", _FLOOR) for b in ("ave_k2s2_floor",
                                                               "max_k2s2_floor")},
    "vgg_style_lrn": {b: ("norm3", "LRN", _LRN) for b in ("norm3", "pool3", "fc6", "fc7",
                                                          "prob")},
    "misc_layers": {b: ("bias1", "Bias", _BIAS) for b in ("tanh1", "power1", "sig1",
                                                          "scale_b", "deconv3")},
    "densenet_block": {},
    "preact_resnet_block": {},
}
#: the blobs whose last writer is that layer itself (bias1 runs in place on tanh1)
_LAST_WRITTEN_BY_THE_ROOT = {"ave_k2s2_floor", "max_k2s2_floor", "norm3", "tanh1"}


def _files(net: str) -> tuple[Path, Path]:
    return WHOLE / net / "deploy.prototxt", WHOLE / net / "model.caffemodel"


def _caffe_blobs(net: str) -> dict[str, np.ndarray]:
    with np.load(WHOLE / net / "blobs.npz") as npz:
        return {k: npz[k] for k in npz.files if "_split_" not in k}


@pytest.mark.parametrize("net", NETS)
def test_opencv_blobs_are_real_caffes_or_reported_not_checked(net: str) -> None:
    prototxt, caffemodel = _files(net)
    ref = opencv_reference(load_net(prototxt, caffemodel), prototxt, caffemodel,
                           {"data": np.load(WHOLE / net / "input.npy")})
    caffe = _caffe_blobs(net)
    assert set(ref.values) | set(ref.not_checked) == set(caffe)
    assert np.array_equal(ref.values["data"], np.load(WHOLE / net / "input.npy"))
    errors = {b: relative_error(np.asarray(v, np.float64), caffe[b]) for b, v in ref.values.items()}
    assert max(errors.values()) < TOLERANCE, errors
    assert set(ref.not_checked) == set(NOT_BY_OPENCV[net])
    for blob, (layer, kind, why) in NOT_BY_OPENCV[net].items():
        root = f"layer {layer!r} ({kind}): {why}"
        assert ref.not_checked[blob] == (root if blob in _LAST_WRITTEN_BY_THE_ROOT
                                         else f"computed from {root}"), blob


def _opencv_on_the_whole_net(net: str) -> dict[str, np.ndarray]:
    """Every layer's first output, OpenCV on the unmodified fixture net (fusion off)."""
    prototxt, caffemodel = _files(net)
    loaded = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    loaded.enableFusion(False)
    loaded.setInput(np.load(WHOLE / net / "input.npy"))
    names = list(loaded.getLayerNames())
    return dict(zip(names, loaded.forward(names), strict=True))


def test_opencv_lrn_ignores_k_measured_on_real_caffe() -> None:
    with np.load(WHOLE / "vgg_style_lrn" / "outputs.npz") as recorded:
        caffe = {k: recorded[k] for k in recorded.files}
    ours = _opencv_on_the_whole_net("vgg_style_lrn")
    assert relative_error(ours["relu3"], caffe["relu3"]) < TOLERANCE  # its input is Caffe's
    assert relative_error(ours["norm3"], caffe["norm3"]) > 0.1  # measured 0.18


@pytest.mark.parametrize(("net", "message"), [
    ("misc_layers", 'Can\'t create layer "bias1" of type "Bias"'),
    ("pooling_semantics", "kernel[i] > 0"),  # the round_mode: FLOOR layers
])
def test_nets_opencv_cannot_run_unmodified(net: str, message: str) -> None:
    with pytest.raises(cv2.error, match=message.replace("[", r"\[").replace("]", r"\]")):
        _opencv_on_the_whole_net(net)


def _convert(net: str, folder: Path, fold: str = "keep") -> Path:
    prototxt, caffemodel = _files(net)
    out = folder / f"{fold}.pt"
    result = CliRunner().invoke(main, ["convert", str(prototxt), str(caffemodel), "-o",
                                       str(out), "--module", str(folder / f"{fold}.py"),
                                       "--fold", fold])
    assert result.exit_code == 0, result.output
    return out


def _verify(net: str, weights: Path, *extra: str) -> tuple[int, str]:
    prototxt, caffemodel = _files(net)
    result = CliRunner().invoke(main, ["verify", "--whole", str(prototxt), str(caffemodel),
                                       str(weights), "--reference", "opencv", *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize("fold", ["keep", "fuse"])
@pytest.mark.parametrize("net", NETS)
def test_converted_files_pass_against_opencv(tmp_path: Path, net: str, fold: str) -> None:
    weights = _convert(net, tmp_path, fold)
    code, output = _verify(net, weights, "--input", str(WHOLE / net / "input.npy"), "--json")
    report = json.loads(output)
    assert code == 0 and report["verdict"] == "match", output
    assert report["reference"] == "opencv" and report["first_diverging"] is None
    unchecked = {row["blob"]: row["problem"] for row in report["blobs"] if not row["checked"]}
    assert set(unchecked) == set(NOT_BY_OPENCV[net])
    assert all(p.startswith("not checked by opencv: ") for p in unchecked.values())
    assert max(row["error"] for row in report["blobs"] if row["checked"]) < TOLERANCE
    code, output = _verify(net, weights)  # seeded noise of the declared shape
    assert code == 0 and output.startswith("match: "), output
    assert output.count("not checked by opencv: ") == len(NOT_BY_OPENCV[net])


@pytest.mark.parametrize(("net", "layer", "index", "blob", "writer"), [
    ("densenet_block", "conv2_2/x1", (3, 5, 0, 0), "conv2_2/x1", "conv2_2/x1"),
    ("preact_resnet_block", "res4_conv3", (7, 2, 0, 0), "res4_conv3", "res4_conv3"),
    # in place: the blob conv2 is last written by the ReLU
    ("vgg_style_lrn", "conv2", (1, 0, 2, 2), "conv2", "relu2"),
])
def test_one_weight_changed_is_named(tmp_path: Path, net: str, layer: str,
                                     index: tuple[int, ...], blob: str, writer: str) -> None:
    weights = _convert(net, tmp_path)
    state = torch.load(weights, weights_only=True)
    state[f"{key_for_layer_name(layer)}.weight"][index] += 1e-3
    torch.save(state, weights)
    code, output = _verify(net, weights, "--input", str(WHOLE / net / "input.npy"), "--json")
    first = json.loads(output)["first_diverging"]
    assert code == 1 and (first["blob"], first["layer"]) == (blob, writer), output
    code, output = _verify(net, weights)
    assert code == 1
    assert f"first diverging blob {blob!r}, written by layer {writer!r}" in output


def test_a_net_opencv_cannot_run_is_exit_2_in_one_line(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # an OpenCV gap the rules do not know yet: the Bias rule taken away
    monkeypatch.delitem(reference_opencv.OPENCV_RULES, "Bias")
    weights = _convert("misc_layers", tmp_path)
    result = CliRunner().invoke(main, ["verify", "--whole", *map(str, _files("misc_layers")),
                                       str(weights), "--reference", "opencv"])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"bnconvert: error: {_files('misc_layers')[0]} + ")
    assert 'OpenCV cannot run the net: (-2:Unspecified error) Can\'t create layer "bias1" of ' \
           'type "Bias"' in line
    result = CliRunner().invoke(main, ["verify", "--whole", *map(str, _files("misc_layers")),
                                       str(weights), "--reference", "opencv", "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["verdict"] == "error"


def test_a_net_opencv_cannot_load_is_exit_2_in_one_line(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    prototxt, caffemodel = _files("densenet_block")
    broken = tmp_path / "broken.caffemodel"  # not a NetParameter: OpenCV refuses to load it
    broken.write_bytes(b"\xff" * 64)
    net = load_net(prototxt, caffemodel)
    with pytest.raises(reference_opencv.OpenCVError,
                       match=r"OpenCV cannot load the net: .*") as caught:
        opencv_reference(net, prototxt, broken, reference_inputs(net, None, 0))
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    assert weights.exists()


def test_caffemodel_alone_defines_the_net(tmp_path: Path) -> None:
    for net in ("densenet_block", "misc_layers"):
        weights = _convert(net, tmp_path / net)
        result = CliRunner().invoke(main, ["verify", "--whole", str(_files(net)[1]), str(weights),
                                           "--reference", "opencv"])
        assert result.exit_code == 0 and result.output.startswith("match: "), result.output


def test_usage(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    prototxt, caffemodel = map(str, _files("densenet_block"))
    runner = CliRunner()
    both = runner.invoke(main, ["verify", "--whole", prototxt, caffemodel, str(weights),
                                "--reference", "opencv", "--expected",
                                str(WHOLE / "densenet_block" / "blobs.npz")])
    assert both.exit_code == 2 and "--expected and --reference opencv are exclusive" in \
        both.output
    neither = runner.invoke(main, ["verify", "--whole", prototxt, caffemodel, str(weights)])
    assert neither.exit_code == 2
    assert "--whole needs --expected BLOBS.npz (a pycaffe dump) or --reference" in neither.output
    dumped_and_input = runner.invoke(main, [
        "verify", "--whole", prototxt, caffemodel, str(weights), "--expected",
        str(WHOLE / "densenet_block" / "blobs.npz"), "--input",
        str(WHOLE / "densenet_block" / "input.npy")])
    assert dumped_and_input.exit_code == 2
    assert "--input applies to --reference, not --expected" in dumped_and_input.output
    np.save(tmp_path / "x.npy", np.zeros((2, 16, 8), np.float32))
    code, output = _verify("densenet_block", weights, "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "--input has shape [2, 16, 8]; the net's input 'data' is declared " \
                         "[2, 16, 8, 8]" in output


def test_inputs_are_seeded_noise_of_the_declared_shape() -> None:
    net = load_net(*_files("densenet_block"))
    first, again = reference_inputs(net, None, 3), reference_inputs(net, None, 3)
    expected = np.random.default_rng(3).standard_normal((2, 16, 8, 8)).astype(np.float32)
    assert np.array_equal(first["data"], expected) and np.array_equal(again["data"], expected)


@pytest.mark.skipif(HAS_PYCAFFE, reason="pycaffe is installed")
def test_pycaffe_reference_without_pycaffe_is_exit_2(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    result = CliRunner().invoke(main, ["verify", "--whole", *map(str, _files("densenet_block")),
                                       str(weights), "--reference", "pycaffe"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("bnconvert: error: --reference pycaffe: pycaffe is not importable "
                           "('import caffe' failed: ")


@pytest.mark.skipif(not HAS_PYCAFFE, reason="pycaffe (import caffe) is not installed")
@pytest.mark.parametrize("net", NETS)
def test_pycaffe_reference_matches_the_recorded_blobs(tmp_path: Path, net: str) -> None:
    from bnconvert.build.reference_pycaffe import pycaffe_reference

    prototxt, caffemodel = _files(net)
    ref = pycaffe_reference(load_net(prototxt, caffemodel), prototxt, caffemodel,
                            {"data": np.load(WHOLE / net / "input.npy")})
    caffe = _caffe_blobs(net)
    assert not ref.not_checked and set(ref.values) == set(caffe)
    for blob, value in ref.values.items():
        assert relative_error(np.asarray(value, np.float64), caffe[blob]) < 1e-6, blob
    weights = _convert(net, tmp_path)
    result = CliRunner().invoke(main, ["verify", "--whole", str(prototxt), str(caffemodel),
                                       str(weights), "--reference", "pycaffe"])
    assert result.exit_code == 0, result.output


def test_nothing_compared_is_exit_2(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    only_input = tmp_path / "only_input.npz"  # a dump holding the input and no other blob
    np.savez(only_input, data=np.load(WHOLE / "densenet_block" / "input.npy"))
    result = CliRunner().invoke(main, ["verify", "--whole", *map(str, _files("densenet_block")),
                                       str(weights), "--expected", str(only_input), "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["verdict"] == "nothing checked"


def test_a_dummy_data_placeholder_is_the_input(tmp_path: Path) -> None:
    prototxt, caffemodel = _files("densenet_block")
    text = prototxt.read_text()
    dummy = tmp_path / "deploy.prototxt"  # the deploy input declared as DummyData instead
    dummy.write_text(text.replace('type: "Input"', 'type: "DummyData"', 1)
                     .replace("input_param", "dummy_data_param", 1))
    assert dummy.read_text().count("DummyData") == 1
    out = tmp_path / "m.pt"
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(dummy), str(caffemodel), "-o", str(out),
                                  "--module", str(tmp_path / "m.py")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["verify", "--whole", str(dummy), str(caffemodel), str(out),
                                  "--reference", "opencv", "--input",
                                  str(WHOLE / "densenet_block" / "input.npy")])
    assert result.exit_code == 0 and result.output.startswith("match: 15 blobs"), result.output
