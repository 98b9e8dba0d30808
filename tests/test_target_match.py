"""The structural matcher, ``--map`` files and the target state_dict on a user's own model
(``tests/data/target/user_model.py``) against a small Caffe net."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert.errors import ParseError
from bnconvert.read.net import load_net
from bnconvert.target.caffe_side import caffe_units
from bnconvert.target.mapfile import read_map, resolve_map
from bnconvert.target.match import MatchError, match_units
from bnconvert.target.state_dict import build_state_dict
from bnconvert.target.torch_side import state_dict_spec, target_units, to_tensors

DATA = Path(__file__).parent / "data" / "target"


def _user_model(stem_bias: bool = False) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("user_model", DATA / "user_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TwoBranchNet(stem_bias=stem_bias)


def _caffe_tensors() -> dict[str, dict[str, np.ndarray]]:
    """Synthetic Caffe-side tensors in PyTorch layout, shapes written from the prototxt."""
    rng = np.random.default_rng(7)

    def r(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    return {"conv1": {"weight": r(8, 3, 3, 3), "bias": r(8)},
            "bn1": {"running_mean": r(8), "running_var": rng.uniform(0.5, 2, 8).astype(np.float32),
                    "weight": r(8), "bias": r(8)},
            "conv_a": {"weight": r(4, 8, 1, 1), "bias": r(4)},
            "conv_b": {"weight": r(4, 8, 1, 1), "bias": r(4)},
            "fc": {"weight": r(10, 8), "bias": r(10)}}


@pytest.fixture
def caffe() -> tuple:
    return caffe_units(load_net(DATA / "small_net.prototxt", None))


def test_parallel_branches_of_one_shape_are_refused_with_both_sides(caffe) -> None:
    matching = match_units(caffe, target_units(_user_model()))
    assert [u.name for u in matching.unmatched_caffe] == ["conv_a", "conv_b", "fc"]
    assert matching.ambiguous == {"conv_a": ("branch_a", "branch_b"),
                                  "conv_b": ("branch_a", "branch_b")}
    with pytest.raises(MatchError) as caught:
        matching.require_complete()
    assert str(caught.value) == (
        "the Caffe net does not match the target model: 2 units matched; unmatched Caffe "
        "layers: conv_a (conv weight 4x8x1x1 bias 4) [ambiguous: branch_a | branch_b], conv_b "
        "(conv weight 4x8x1x1 bias 4) [ambiguous: branch_a | branch_b], fc (linear weight 10x8 "
        "bias 10); unmatched target modules: branch_a (conv weight 4x8x1x1 bias 4), branch_b "
        "(conv weight 4x8x1x1 bias 4), head (conv weight 10x8x1x1 bias 10); give --map entries "
        "(Caffe layer -> target module) for them")


@pytest.mark.parametrize("entries", [{"conv_a": "branch_a", "conv_b": "branch_b."},
                                     {"conv_(.)": r"branch_\1"}])
def test_a_map_settles_it_and_the_rest_follows_by_structure(caffe, tmp_path, entries) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps(entries))
    target = target_units(_user_model())
    matching = match_units(caffe, target, resolve_map(read_map(path), caffe, target))
    pairs = {m.caffe.name: (m.target.name, m.reshape, m.by_map) for m in matching.matches}
    assert pairs == {"conv1": ("stem", False, False), "bn1": ("norm", False, False),
                     "conv_a": ("branch_a", False, True), "conv_b": ("branch_b", False, True),
                     "fc": ("head", True, False)}


def _settled(caffe, model: torch.nn.Module):
    target = target_units(model)
    return match_units(caffe, target, resolve_map({"conv_(.)": r"branch_\1"}, caffe, target))


def test_a_bias_with_no_batch_norm_right_after_is_refused(caffe) -> None:
    model = _user_model(stem_bias=False)
    with pytest.raises(MatchError) as caught:
        build_state_dict(_settled(caffe, model), _caffe_tensors(), state_dict_spec(model))
    assert str(caught.value) == (
        "Caffe layer 'conv1' has a bias, target module 'stem' has none, and no BatchNorm reads "
        "both outputs directly to absorb it: give the target module bias=True")


def test_the_state_dict_loads_strictly_with_the_caffe_values(caffe) -> None:
    model = _user_model(stem_bias=True)
    tensors = _caffe_tensors()
    mapped = build_state_dict(_settled(caffe, model), tensors, state_dict_spec(model))
    model.load_state_dict(to_tensors(mapped.state_dict), strict=True)
    state = model.state_dict()
    np.testing.assert_array_equal(state["stem.bias"].numpy(), tensors["conv1"]["bias"])
    np.testing.assert_array_equal(state["norm.running_var"].numpy(),
                                  tensors["bn1"]["running_var"])
    np.testing.assert_array_equal(state["branch_b.weight"].numpy(), tensors["conv_b"]["weight"])
    np.testing.assert_array_equal(state["head.weight"].numpy(),
                                  tensors["fc"]["weight"].reshape(10, 8, 1, 1))
    assert mapped.adaptations() == ("head: weight reshaped (1x1 convolution <-> Linear)",)


@pytest.mark.parametrize(("entries", "problem"), [
    ({"nope": "stem"}, "--map entry 'nope': no Caffe layer of the net has this name or matches "
                       "it as a regular expression"),
    ({"conv1": "trunk"}, "--map entry 'conv1': the target model has no parametric module "
                         "'trunk' (for Caffe layer 'conv1')"),
    ({"conv1": "head"}, "--map entry 'conv1': Caffe conv1 (conv weight 8x3x3x3 bias 8) does not "
                        "fit target head (conv weight 10x8x1x1 bias 10)"),
    ({"conv_a": "branch_a", "conv_b": "branch_a"},
     "--map entry 'conv_b': target module 'branch_a' is claimed by two Caffe layers"),
])
def test_wrong_map_entries_are_named(caffe, entries, problem) -> None:
    target = target_units(_user_model())
    with pytest.raises(MatchError) as caught:
        resolve_map(entries, caffe, target)
    assert str(caught.value) == problem


def test_map_files_that_are_not_a_mapping_of_names_are_refused(tmp_path) -> None:
    bad = tmp_path / "map.json"
    bad.write_text('{"conv1": 3}')
    with pytest.raises(ParseError, match="a map file holds one object of Caffe layer name"):
        read_map(bad)
    bad.write_text("{")
    with pytest.raises(ParseError, match=r"map.json:1:2: not valid JSON"):
        read_map(bad)
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("conv1: stem\n")
    if importlib.util.find_spec("yaml") is None:
        with pytest.raises(ParseError, match="reading a YAML map needs PyYAML"):
            read_map(yaml_file)
    else:
        assert read_map(yaml_file) == {"conv1": "stem"}


def test_bias_and_eps_fold_into_the_batch_norm_and_compute_what_caffe_did(tmp_path) -> None:
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 '
        'dim: 6 dim: 6 } } }\n'
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param '
        '{ num_output: 5 kernel_size: 3 } }\n'
        'layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param '
        '{ eps: 0.001 } }\n'
        'layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: '
        'true } }\n')
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, bias=False), torch.nn.BatchNorm2d(5))
    caffe = caffe_units(load_net(tmp_path / "net.prototxt", None))
    matching = match_units(caffe, target_units(model)).require_complete()
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5)
    mean, var = rng.normal(size=5), rng.uniform(0.01, 0.1, size=5)
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    tensors = {"conv": {"weight": w, "bias": b},
               "bn": {"running_mean": mean, "running_var": var, "weight": gamma, "bias": beta}}
    mapped = build_state_dict(matching, tensors, state_dict_spec(model))
    model.load_state_dict(to_tensors(mapped.state_dict), strict=True)
    assert mapped.adaptations() == ("0: bias folded into 1.running_mean (running_mean - bias)",
                                    "1: eps 0.00100000005 -> 1e-05: running_var + 0.000990000047")
    x = rng.normal(size=(2, 3, 6, 6))
    conv = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b)).numpy()
    eps_caffe = float(np.float32(0.001))
    expected = ((conv - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps_caffe)
                * gamma[:, None, None] + beta[:, None, None])
    with torch.no_grad():
        got = model.eval()(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_map_onto_gives_the_loadable_weights_and_a_table() -> None:
    from bnconvert.target.plan import map_onto

    model = _user_model(stem_bias=True)
    net = load_net(DATA / "small_net.prototxt", None)
    with pytest.raises(MatchError, match="unmatched Caffe layers: conv_a"):
        map_onto(model, net, _caffe_tensors())
    mapping = map_onto(model, net, _caffe_tensors(), {"conv_(.)": r"branch_\1"})
    model.load_state_dict(to_tensors(mapping.weights.state_dict), strict=True)
    assert mapping.table()[-1] == {
        "caffe_layers": ["fc"], "target": "head",
        "keys": {"head.weight": [10, 8, 1, 1], "head.bias": [10]}, "matched_by": "structure",
        "adaptations": ["weight reshaped (1x1 convolution <-> Linear)"]}
    assert [row["matched_by"] for row in mapping.table()] == ["structure", "structure", "map",
                                                              "map", "structure"]


class _Branchy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if x.sum() > 0 else x


class _Shared(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def test_untraceable_targets_are_refused_with_the_reason() -> None:
    from bnconvert.target.torch_side import TargetTraceError

    with pytest.raises(TargetTraceError, match=r"^cannot trace the target model \(TraceError: "
                                               r".*\): mapping follows the model's structure with "
                                               r"torch.fx; make its forward traceable \(no "
                                               r"branching on tensor values\)$"):
        target_units(_Branchy())
    with pytest.raises(TargetTraceError) as caught:
        target_units(_Shared())
    assert str(caught.value) == ("the target model calls conv more than once (shared weights): "
                                 "a Caffe layer maps onto one call")


def test_a_custom_parametric_module_is_one_unit_of_its_own_tensors() -> None:
    class Affine(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(3))
            self.inner = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * self.gain[:, None, None]

    model = torch.nn.Sequential(Affine())
    units = target_units(model)
    assert [(u.name, u.kind, dict(u.shapes)) for u in units] == [
        ("0", "other:Affine", {"gain": (3,)}),
        ("0.inner", "conv", {"weight": (3, 3, 1, 1), "bias": (3,)})]


_BN_NET = ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 '
           'dim: 3 dim: 3 } } }\n'
           'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }\n')


@pytest.mark.parametrize(("scale", "caffe_names", "filled"), [
    ("", ("running_mean", "running_var"),
     ("weight set to ones (the Caffe chain has no Scale)",
      "bias set to zeros (the Caffe chain has no bias term)")),
    ('layer { name: "sc" type: "Scale" bottom: "data" top: "data" }\n',
     ("running_mean", "running_var", "weight"),
     ("bias set to zeros (the Caffe chain has no bias term)",)),
])
def test_missing_affine_parts_are_filled_exactly(tmp_path, scale, caffe_names, filled) -> None:
    (tmp_path / "net.prototxt").write_text(_BN_NET + scale)
    caffe = caffe_units(load_net(tmp_path / "net.prototxt", None))
    assert tuple(caffe[0].shapes) == caffe_names
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    tensors = {"bn": {n: np.full(2, 0.5, np.float32) for n in caffe_names}}
    mapped = build_state_dict(match_units(caffe, target_units(model)), tensors,
                              state_dict_spec(model))
    assert tuple(a.split(": ", 1)[1] for a in mapped.adaptations()) == filled
    expected_bias = np.zeros(2, np.float32)
    np.testing.assert_array_equal(mapped.state_dict["0.bias"], expected_bias)


class _TwoLookalikes(torch.nn.Module):
    """Two branches whose first convolutions are alike; only what follows tells them apart."""

    def __init__(self, deep_first: bool) -> None:
        super().__init__()
        self.deep_first = deep_first
        self.stem = torch.nn.Conv2d(3, 8, 1)
        self.deep_in = torch.nn.Conv2d(8, 4, 1)
        self.deep_out = torch.nn.Conv2d(4, 6, 3, padding=1)
        self.flat = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.deep_first:
            deep = self.deep_out(self.deep_in(x))
            return torch.cat([deep, self.flat(x)], 1)
        flat = self.flat(x)
        return torch.cat([self.deep_out(self.deep_in(x)), flat], 1)


def test_lookalike_branches_are_told_apart_by_what_follows() -> None:
    caffe_like, target = target_units(_TwoLookalikes(True)), target_units(_TwoLookalikes(False))
    assert [u.name for u in target] == ["stem", "flat", "deep_in", "deep_out"]
    matching = match_units(caffe_like, target).require_complete()
    assert {m.caffe.name: m.target.name for m in matching.matches} == {
        "stem": "stem", "deep_in": "deep_in", "deep_out": "deep_out", "flat": "flat"}
