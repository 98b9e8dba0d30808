"""The structural matcher on public Caffe prototxts (the corpus) against torchvision's models
(``weights=None``: no downloads), with synthetic Caffe-side tensors of the prototxt's shapes.
Skipped where torchvision is not installed (it is in the ``test`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert.read.net import load_net
from bnconvert.target.caffe_side import caffe_units
from bnconvert.target.match import MatchError, Matching, match_units
from bnconvert.target.state_dict import build_state_dict
from bnconvert.target.torch_side import state_dict_spec, target_units, to_tensors
from bnconvert.target.units import Unit

from torchvision_shim import import_torchvision_models

CORPUS = Path(__file__).parent / "data" / "corpus"
RESNET50 = "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.adapted.prototxt"
VGG16BN = "soeaver__caffe-model__cls__vgg__deploy_vgg16bn-pytorch.adapted.prototxt"
DENSENET121 = "shicai__DenseNet-Caffe__DenseNet_121.adapted.prototxt"
SHUFFLENET2 = "farmingyard__ShuffleNet__shufflenet_v2_1x_deploy.adapted.prototxt"
INCEPTION3 = "soeaver__caffe-model__cls__inception__deploy_inception-v3.adapted.prototxt"
MOBILENET2 = "shicai__MobileNet-Caffe__mobilenet_v2_deploy.adapted.prototxt"

#: InnerProduct input sizes a prototxt alone does not tell, written out: channels x H x W of the
#: blob it reads at the deploy input size (224x224)
FLATTENED = {"fc6": 512 * 7 * 7, "fc1000": 2048 * 1 * 1}


def _build(name: str) -> torch.nn.Module:
    models = import_torchvision_models()
    model: torch.nn.Module = getattr(models, name)(weights=None)
    return model


def _matching(prototxt: str, model: torch.nn.Module) -> tuple[tuple[Unit, ...], Matching]:
    caffe = caffe_units(load_net(CORPUS / prototxt, None))
    return caffe, match_units(caffe, target_units(model))


def _synthetic(caffe: tuple[Unit, ...]) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(50)
    out: dict[str, dict[str, np.ndarray]] = {}
    for unit in caffe:
        tensors = {}
        for name, shape in unit.shapes.items():
            dims = tuple(FLATTENED[unit.name] if d is None else d for d in shape)
            values = rng.normal(size=dims)
            tensors[name] = (np.abs(values) + 0.1 if name == "running_var" else values)
        out[unit.name] = {k: v.astype(np.float32) for k, v in tensors.items()}
    return out


def _pairs(matching: Matching) -> dict[str, str]:
    return {m.caffe.name: m.target.name for m in matching.matches}


def _loaded(model: torch.nn.Module, caffe, matching: Matching):
    tensors = _synthetic(caffe)
    mapped = build_state_dict(matching.require_complete(), tensors, state_dict_spec(model))
    model.load_state_dict(to_tensors(mapped.state_dict), strict=True)
    return tensors, mapped, model.state_dict()


def test_resnet50_maps_every_weight_with_branch1_onto_downsample() -> None:
    model = _build("resnet50")
    caffe, matching = _matching(RESNET50, model)
    assert matching.complete and len(matching.matches) == 107
    pairs = _pairs(matching)
    assert {k: pairs[k] for k in ("conv1", "bn_conv1", "res2a_branch1", "bn2a_branch1",
                                  "res2a_branch2c", "res3a_branch1", "res3b_branch2a",
                                  "res5c_branch2c", "fc1000")} == {
        "conv1": "conv1", "bn_conv1": "bn1", "res2a_branch1": "layer1.0.downsample.0",
        "bn2a_branch1": "layer1.0.downsample.1", "res2a_branch2c": "layer1.0.conv3",
        "res3a_branch1": "layer2.0.downsample.0", "res3b_branch2a": "layer2.1.conv1",
        "res5c_branch2c": "layer4.2.conv3", "fc1000": "fc"}
    tensors, mapped, state = _loaded(model, caffe, matching)
    np.testing.assert_array_equal(
        state["bn1.running_mean"].numpy(),
        (tensors["bn_conv1"]["running_mean"].astype(np.float64)
         - tensors["conv1"]["bias"].astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(state["layer1.0.downsample.0.weight"].numpy(),
                                  tensors["res2a_branch1"]["weight"])
    assert mapped.adaptations() == (
        "conv1: bias folded into bn1.running_mean (running_mean - bias)",)


def test_vgg16_bn_maps_in_order_and_loads_strictly() -> None:
    model = _build("vgg16_bn")
    caffe, matching = _matching(VGG16BN, model)
    assert matching.complete and len(matching.matches) == 29
    pairs = _pairs(matching)
    assert [pairs[k] for k in ("conv1_1", "conv1_1_bn", "conv5_3_bn", "fc6", "classifier")] == \
        ["features.0", "features.1", "features.41", "classifier.0", "classifier.6"]
    tensors, mapped, state = _loaded(model, caffe, matching)
    np.testing.assert_array_equal(state["classifier.0.weight"].numpy(), tensors["fc6"]["weight"])
    np.testing.assert_array_equal(state["features.1.running_var"].numpy(),
                                  tensors["conv1_1_bn"]["running_var"])
    assert mapped.adaptations() == ()


def test_densenet121_maps_concatenations_and_a_1x1_classifier_onto_linear() -> None:
    model = _build("densenet121")
    caffe, matching = _matching(DENSENET121, model)
    assert matching.complete and len(matching.matches) == 242
    pairs = _pairs(matching)
    assert {k: pairs[k] for k in ("conv1", "conv2_1/x1/bn", "conv2_2/x1/bn", "conv3_blk",
                                  "conv5_blk/bn", "fc6")} == {
        "conv1": "features.conv0",
        "conv2_1/x1/bn": "features.denseblock1.denselayer1.norm1",
        "conv2_2/x1/bn": "features.denseblock1.denselayer2.norm1",
        "conv3_blk": "features.transition2.conv", "conv5_blk/bn": "features.norm5",
        "fc6": "classifier"}
    tensors, mapped, state = _loaded(model, caffe, matching)
    np.testing.assert_array_equal(state["classifier.weight"].numpy(),
                                  tensors["fc6"]["weight"].reshape(1000, 1024))
    assert mapped.adaptations() == (
        "classifier: weight reshaped (1x1 convolution <-> Linear)",)


def test_mobilenet_v2_is_refused_it_has_an_extra_expansion_in_its_first_block() -> None:
    caffe, matching = _matching(MOBILENET2, _build("mobilenet_v2"))
    assert _pairs(matching) == {"conv1": "features.0.0", "conv1/bn": "features.0.1"}
    assert [u.name for u in matching.unmatched_caffe[:2]] == ["conv2_1/expand",
                                                              "conv2_1/expand/bn"]
    assert (len(matching.unmatched_caffe), len(matching.unmatched_target)) == (105, 103)
    with pytest.raises(MatchError, match=r"^the Caffe net does not match the target model: 2 "
                                         r"units matched; unmatched Caffe layers: "
                                         r"conv2_1/expand \(conv weight 32x32x1x1\)"):
        matching.require_complete()


def test_shufflenet_v2_maps_its_fork_depthwise_convolutions() -> None:
    model = _build("shufflenet_v2_x1_0")
    caffe, matching = _matching(SHUFFLENET2, model)
    assert matching.complete and len(matching.matches) == 113
    pairs = _pairs(matching)
    assert {k: pairs[k] for k in ("branch1_1_conv1", "branch1_1_conv2", "branch1_2_conv1")} == {
        "branch1_1_conv1": "stage2.0.branch1.0", "branch1_1_conv2": "stage2.0.branch1.2",
        "branch1_2_conv1": "stage2.0.branch2.0"}
    _loaded(model, caffe, matching)


def test_inception_v3_needs_a_map_for_its_pool_branches_only() -> None:
    """A pooling branch's 1x1 and the plain 1x1 branch read the same input, have the same
    shape and feed the same concatenation: only the parameter-free pool tells them apart."""
    from bnconvert.target.mapfile import resolve_map

    model = import_torchvision_models().inception_v3(weights=None, init_weights=False,
                                                     aux_logits=False)
    caffe, matching = _matching(INCEPTION3, model)
    assert matching.ambiguous["inception_a2_1x1"] == ("Mixed_5c.branch1x1.conv",
                                                      "Mixed_5c.branch_pool.conv")
    entries = {f"inception_a{i}_pool_proj": f"Mixed_5{x}.branch_pool.conv"
               for i, x in zip("123", "bcd", strict=True)}
    entries |= {f"inception_b{i}_1x1": f"Mixed_6{x}.branch_pool.conv"
                for i, x in zip("1234", "bcde", strict=True)}
    entries |= {f"inception_c{i}_1x1": f"Mixed_7{x}.branch_pool.conv"
                for i, x in zip("12", "bc", strict=True)}
    target = target_units(model)
    settled = match_units(caffe, target, resolve_map(entries, caffe, target))
    assert settled.complete and len(settled.matches) == 189
    assert _pairs(settled)["inception_b1_1x7_reduce"] == "Mixed_6b.branch7x7_1.conv"
