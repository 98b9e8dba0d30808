"""Loading tests/data/caffe_train (real Caffe TRAIN steps; see its README.md) for the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

import bnconvert
from bnconvert.layers.normalization import BatchNormParams

from conftest import DATA

TRAIN = DATA / "caffe_train"
CASES = ("long_trained", "short_trained", "cumulative_maf1", "fc_2d")


@dataclass(frozen=True)
class TrainCase:
    """One caffe_train case: the layer's settings as read from the prototxt, the raw blobs as
    read from the caffemodel, and what Caffe recorded per step."""

    name: str
    maf: float
    eps: float
    mean_acc: np.ndarray
    var_acc: np.ndarray
    scale_factor: float
    batches: np.ndarray
    steps: Any  # the NpzFile: blob0..2, mean_eff, var_eff, bn_out, out, eval_after
    meta: dict[str, Any]

    @property
    def gamma(self) -> np.ndarray:
        return np.array(self.meta["scale_gamma"], np.float32)

    @property
    def beta(self) -> np.ndarray:
        return np.array(self.meta["scale_beta"], np.float32)


def load_case(name: str) -> TrainCase:
    folder = TRAIN / name
    net = bnconvert.load_net(folder / "deploy.prototxt", folder / "model.caffemodel")
    (bn,) = [layer for layer in net.layers if layer.type == "BatchNorm"]
    param = bn.params
    assert isinstance(param, BatchNormParams) and bn.blobs is not None
    mean_acc, var_acc, factor = (blob.values() for blob in bn.blobs)
    return TrainCase(name, float(param.moving_average_fraction), float(param.eps),
                     mean_acc.reshape(-1), var_acc.reshape(-1), float(factor.reshape(-1)[0]),
                     np.load(folder / "batches.npy"), np.load(folder / "steps.npz"),
                     json.loads((folder / "meta.json").read_text()))


def effective_stats(mean_acc: np.ndarray, var_acc: np.ndarray,
                    s: float) -> tuple[np.ndarray, np.ndarray]:
    """Caffe's TEST-phase rule, written here independently: blob·f, f = (s == 0 ? 0 : 1/s),
    all float32."""
    f = np.float32(0) if np.float32(s) == 0 else np.float32(1) / np.float32(s)
    return (mean_acc.astype(np.float32) * f).astype(np.float32), (
        var_acc.astype(np.float32) * f).astype(np.float32)


def worst_relative(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got − expected| over max |expected|: the error relative to the magnitude."""
    expected = np.asarray(expected, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - expected).max() / np.abs(expected).max())
