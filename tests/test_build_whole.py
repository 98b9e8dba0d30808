"""Issue #12: the module built from a prototxt computes what real Caffe computed, blob by blob.

Ground truth: tests/data/whole (BVLC Caffe's own forward, recorded with pycaffe): ``blobs.npz``
holds every blob after ``net.forward()`` (the Split blobs Caffe inserts, ``*_split_N``, are
not tops of the prototxt and are skipped). Tolerance: 1e-5 of the blob's magnitude.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from torch import nn
from whole_fixtures import NETS, WHOLE, LRNWithK, relative_error

import bnconvert
from bnconvert.build import BuildOptions, BuiltNet, build_model
from bnconvert.build.probe import blob_values
from bnconvert.naming import key_for_layer_name
from bnconvert.read.net import load_net

TOLERANCE = 1e-5


@cache
def _built(net: str) -> BuiltNet:
    folder = WHOLE / net
    return build_model(load_net(folder / "deploy.prototxt", folder / "model.caffemodel"))


def _input(net: str) -> torch.Tensor:
    return torch.from_numpy(np.load(WHOLE / net / "input.npy"))


def _caffe_blobs(net: str) -> dict[str, np.ndarray]:
    with np.load(WHOLE / net / "blobs.npz") as npz:
        return {k: npz[k] for k in npz.files if "_split_" not in k}


def _error(got: np.ndarray, ref: np.ndarray) -> float:
    return relative_error(got, ref) if got.shape == ref.shape else float("inf")


def _errors(built: BuiltNet, net: str) -> dict[str, float]:
    values = blob_values(built, _input(net))
    return {name: _error(values[name].double().numpy(), ref)
            for name, ref in _caffe_blobs(net).items()}


@pytest.mark.parametrize("net", NETS)
def test_every_blob_matches_caffe(net: str) -> None:
    errors = _errors(_built(net), net)
    assert set(errors) == set(_caffe_blobs(net))
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] < TOLERANCE, (worst, errors[worst])


@pytest.mark.parametrize("net", NETS)
def test_net_outputs_are_caffes_in_sorted_order(net: str) -> None:
    built = _built(net)
    with torch.no_grad():
        result = built.module(_input(net))
    outputs = result if isinstance(result, tuple) else (result,)
    blobs = _caffe_blobs(net)
    assert len(outputs) == len(built.outputs) and list(built.outputs) == sorted(built.outputs)
    for name, got in zip(built.outputs, outputs, strict=True):
        assert relative_error(got.numpy(), blobs[name]) < TOLERANCE, name


def test_outputs_are_the_unconsumed_tops() -> None:
    # pooling_semantics: 14 net outputs (tests/data/whole/README.md); an independent count of
    # the tops no later layer reads, from the prototxt.
    net = load_net(WHOLE / "pooling_semantics" / "deploy.prototxt", None)
    read = {b for layer in net.layers for b in layer.bottoms}
    expected = sorted({t for layer in net.layers for t in layer.tops} - read)
    assert list(_built("pooling_semantics").outputs) == expected and len(expected) == 14


@pytest.mark.parametrize("net", NETS)
def test_other_batch_size(net: str) -> None:
    x = _input(net)
    bigger = torch.cat([x, x.flip(0), x[:1]])
    with torch.no_grad():
        result = _built(net).module(bigger)
    outputs = result if isinstance(result, tuple) else (result,)
    blobs = _caffe_blobs(net)
    for name, got in zip(_built(net).outputs, outputs, strict=True):
        assert got.shape[0] == bigger.shape[0]
        assert relative_error(got[: x.shape[0]].numpy(), blobs[name]) < TOLERANCE, name


def test_load_model_is_eval_and_matches() -> None:
    folder = WHOLE / "vgg_style_lrn"
    model = bnconvert.load_model(folder / "deploy.prototxt", folder / "model.caffemodel")
    assert not model.training
    with torch.no_grad():
        got = model(_input("vgg_style_lrn"))
    assert relative_error(got.numpy(), _caffe_blobs("vgg_style_lrn")["prob"]) < TOLERANCE


def _first_failure(built: BuiltNet, net: str) -> str | None:
    errors = _errors(built, net)
    bad = [name for name in errors if errors[name] >= TOLERANCE]
    return bad[0] if bad else None


def test_floor_pooling_is_caught() -> None:
    built = build_model(load_net(WHOLE / "pooling_semantics" / "deploy.prototxt",
                                 WHOLE / "pooling_semantics" / "model.caffemodel"))
    assert _first_failure(built, "pooling_semantics") is None
    # what a hand port would write: PyTorch's default floor rounding (13 -> 4 columns, not 5)
    built.module.ave_k4s3p1 = nn.AvgPool2d(4, 3, 1)
    assert _first_failure(built, "pooling_semantics") == "ave_k4s3p1"


def test_lrn_honouring_k_is_caught() -> None:
    built = build_model(load_net(WHOLE / "vgg_style_lrn" / "deploy.prototxt",
                                 WHOLE / "vgg_style_lrn" / "model.caffemodel"))
    net = load_net(WHOLE / "vgg_style_lrn" / "deploy.prototxt", None)
    (within,) = [x for x in net.layers if x.type == "LRN"
                 and getattr(x.params, "norm_region", "") == "WITHIN_CHANNEL"]
    p = within.params
    setattr(built.module, within.name,
            LRNWithK(p.local_size, p.alpha, p.beta, p.k))  # type: ignore[attr-defined]
    assert p.k == 2.0  # type: ignore[attr-defined]
    assert _first_failure(built, "vgg_style_lrn") == within.tops[0]


@pytest.mark.parametrize(("net", "fused"), [("densenet_block", 3), ("preact_resnet_block", 4)])
def test_fold_fuse_matches_caffe(net: str, fused: int) -> None:
    folder = WHOLE / net
    built = build_model(load_net(folder / "deploy.prototxt", folder / "model.caffemodel"),
                        BuildOptions(fold="fuse"))
    assert len(built.fused) == fused
    assert not any(isinstance(m, nn.BatchNorm2d) for name, m in built.module.named_children()
                   if name in {key_for_layer_name(bn) for bn in built.fused.values()})
    values = blob_values(built, _input(net))
    blobs = _caffe_blobs(net)
    # the fused convolutions' own (pre-BN) tops are no blobs of the fused net
    hidden = {t for i in built.fused for t in load_net(folder / "deploy.prototxt", None)
              .layers[i].tops} - set(values)
    assert set(blobs) - set(values) == hidden
    errors = {k: relative_error(values[k].double().numpy(), blobs[k])
              for k in blobs if k in values}
    assert max(errors.values()) < TOLERANCE
    with torch.no_grad():
        result = built.module(_input(net))
    assert relative_error(result.numpy(), blobs[built.outputs[0]]) < TOLERANCE
