"""The rules of ``bnconvert.build.reference_opencv``: each says OpenCV differs from Caffe exactly
where OpenCV, run here on a one-layer net, is measured to differ from Caffe's formula
(written out below from CAFFE_SEMANTICS.md, independently of the code under test), and stays
silent where OpenCV computes Caffe's value."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bnconvert.build.reference_opencv import OPENCV_RULES, opencv_reference
from bnconvert.read.net import load_net

SHAPE = (2, 4, 5, 6)
X = np.random.default_rng(12).standard_normal(SHAPE).astype(np.float32)


def _mvn(x: np.ndarray, eps: float) -> np.ndarray:  # Caffe: eps added to the std
    centred = x - x.mean(axis=(2, 3), keepdims=True)
    return centred / (centred.std(axis=(2, 3), keepdims=True) + eps)


def _lrn_across(x: np.ndarray, n: int, alpha: float, beta: float, k: float) -> np.ndarray:
    padded = np.pad(x * x, ((0, 0), (n // 2, n // 2), (0, 0), (0, 0)))
    window = sum(padded[:, i:i + x.shape[1]] for i in range(n))
    return x * (k + alpha / n * window) ** -beta


# (type, parameters, input, Caffe's output): where OpenCV differs, then where it agrees
CASES = {
    "lrn_k": ("LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 1.5 }", X,
              _lrn_across(X, 3, 0.5, 0.75, 1.5)),
    "lrn_k1": ("LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 }", X,
               _lrn_across(X, 3, 0.5, 0.75, 1.0)),
    "mvn": ("MVN", "mvn_param { eps: 0.5 }", X, _mvn(X, 0.5)),
    "mvn_no_variance": ("MVN", "mvn_param { normalize_variance: false }", X,
                        X - X.mean(axis=(2, 3), keepdims=True)),
    "log_shift": ("Log", "log_param { shift: 0.5 scale: 2 }", np.abs(X) + 0.1,
                  np.log(0.5 + 2 * (np.abs(X) + 0.1))),
    "log_base10": ("Log", "log_param { base: 10 }", np.abs(X) + 0.1, np.log10(np.abs(X) + 0.1)),
    "log": ("Log", "", np.abs(X) + 0.1, np.log(np.abs(X) + 0.1)),
    "swish_beta": ("Swish", "swish_param { beta: 2 }", X, X / (1 + np.exp(-2 * X))),
    "swish": ("Swish", "", X, X / (1 + np.exp(-X))),
}
DIFFERS = {"lrn_k", "mvn", "log_shift", "log_base10", "swish_beta"}


def _one_layer(tmp_path: Path, kind: str, params: str, bottoms: int = 1) -> Path:
    dims = " ".join(f"dim: {d}" for d in SHAPE)
    inputs = "".join(f'layer {{ name: "in{i}" type: "Input" top: "in{i}" input_param '
                     f'{{ shape {{ {dims} }} }} }}\n' for i in range(bottoms))
    reads = " ".join(f'bottom: "in{i}"' for i in range(bottoms))
    path = tmp_path / f"{kind}.prototxt"
    path.write_text(f'name: "one"\n{inputs}layer {{ name: "l" type: "{kind}" {reads} '
                    f'top: "out" {params} }}\n')
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_says_what_opencv_measures(tmp_path: Path, case: str) -> None:
    kind, params, x, caffe = CASES[case]
    path = _one_layer(tmp_path, kind, params)
    net = cv2.dnn.readNetFromCaffe(str(path))
    net.setInput(np.ascontiguousarray(x, np.float32), "in0")
    got = net.forward("l").astype(np.float64)
    error = float(np.abs(got - caffe).max() / np.abs(caffe).max())
    (layer,) = [x for x in load_net(path, None).layers if x.name == "l"]
    reason = OPENCV_RULES[kind](layer)
    if case in DIFFERS:
        assert error > 1e-2 and reason is not None, (error, reason)
    else:
        assert error < 1e-6 and reason is None, (error, reason)


@pytest.mark.parametrize(("kind", "params", "bottoms"), [
    ("Bias", "", 2), ("Threshold", "", 1), ("Clip", "clip_param { min: -1 max: 1 }", 1),
    ("Reduction", "", 1), ("ArgMax", "", 1), ("SPP", "spp_param { pyramid_height: 2 }", 1),
    ("Embed", "embed_param { num_output: 2 input_dim: 3 bias_term: false }", 1),
    ("DepthwiseConvolution", "convolution_param { num_output: 4 kernel_size: 1 }", 1),
    ("Tile", "tile_param { tiles: 2 }", 1),
])
def test_types_opencv_cannot_run(tmp_path: Path, kind: str, params: str, bottoms: int) -> None:
    path = _one_layer(tmp_path, kind, params, bottoms)
    with pytest.raises(cv2.error):
        net = cv2.dnn.readNetFromCaffe(str(path))
        for i in range(bottoms):
            net.setInput(X, f"in{i}")
        net.forward("l")
    (layer,) = [x for x in load_net(path, None).layers if x.name == "l"]
    assert OPENCV_RULES[kind](layer) is not None


@pytest.mark.parametrize("mode", ["FLOOR", "CEIL"])
def test_pooling_writing_round_mode_fails_in_opencv(tmp_path: Path, mode: str) -> None:
    path = _one_layer(tmp_path, "Pooling", "pooling_param { pool: MAX kernel_size: 2 stride: 2 "
                                           f"round_mode: {mode} }}")
    net = cv2.dnn.readNetFromCaffe(str(path))
    net.setInput(X, "in0")
    with pytest.raises(cv2.error, match=r"kernel\[i\] > 0"):
        net.forward("l")
    (layer,) = [x for x in load_net(path, None).layers if x.name == "l"]
    assert (OPENCV_RULES["Pooling"](layer) is not None) == (mode == "FLOOR")
    if mode == "CEIL":  # Caffe's default: the reference leaves it unwritten, and OpenCV runs
        ref = opencv_reference(load_net(path, None), path, _no_weights(tmp_path), {"in0": X})
        padded = np.pad(X, ((0, 0), (0, 0), (0, 1), (0, 0)), constant_values=-np.inf)
        caffe = padded.reshape(2, 4, 3, 2, 3, 2).max(axis=(3, 5))  # ceil: 5 -> 3 rows
        assert np.array_equal(ref.values["out"], caffe)


def _no_weights(tmp_path: Path) -> Path:
    path = tmp_path / "empty.caffemodel"  # a NetParameter without layers
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(("stride", "overhangs"), [(3, True), (2, False)])
def test_pooling_window_past_the_input_is_not_checked(tmp_path: Path, stride: int,
                                                      overhangs: bool) -> None:
    path = _one_layer(tmp_path, "Pooling", f"pooling_param {{ pool: MAX kernel_size: 2 "
                                           f"stride: {stride} }}")
    net = cv2.dnn.readNetFromCaffe(str(path))
    net.setInput(X, "in0")
    got = net.forward("l")
    # Caffe on width 6, k2 s3: ceil((6 - 2) / 3) + 1 = 3 columns; the third window starts at
    # column 6, past the input, and holds -FLT_MAX (CAFFE_SEMANTICS.md)
    if overhangs:
        assert got.shape[3] == 3 and not np.any(got[..., 2] == -np.finfo(np.float32).max)
    ref = opencv_reference(load_net(path, None), path, _no_weights(tmp_path), {"in0": X})
    assert ("out" in ref.not_checked) == overhangs
    if overhangs:
        assert ref.not_checked["out"] == ("layer 'l' (Pooling): Caffe's last window starts "
                                          "past the input (it writes -FLT_MAX or NaN there), "
                                          "OpenCV's does not")


def test_max_pool_mask_top_is_caffes(tmp_path: Path) -> None:
    # Caffe's mask (CAFFE_SEMANTICS.md): per channel the flat index h*W + w of the maximum,
    # the first in scan order on ties, padded cells never win; ceil rounding, clip rule
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 9)).astype(np.float32)
    x[0, 0, :2, :2] = 5.0
    path = tmp_path / "mask.prototxt"
    path.write_text('name: "m"\nlayer { name: "data" type: "Input" top: "data" input_param { '
                    "shape { dim: 2 dim: 3 dim: 7 dim: 9 } } }\n"
                    'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
                    'top: "mask" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n')
    values = np.full((2, 3, 4, 5), -np.inf, np.float32)
    mask = np.zeros((2, 3, 4, 5), np.float32)
    for i in range(4):
        for j in range(5):
            for h in range(max(2 * i - 1, 0), min(2 * i + 2, 7)):
                for w in range(max(2 * j - 1, 0), min(2 * j + 2, 9)):
                    better = x[:, :, h, w] > values[:, :, i, j]
                    values[:, :, i, j] = np.where(better, x[:, :, h, w], values[:, :, i, j])
                    mask[:, :, i, j] = np.where(better, h * 9 + w, mask[:, :, i, j])
    ref = opencv_reference(load_net(path, None), path, _no_weights(tmp_path), {"data": x})
    assert not ref.not_checked
    assert np.array_equal(ref.values["pool"], values) and np.array_equal(ref.values["mask"], mask)
