"""Pairing follows blob versions through the graph in layer order, never layer names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnconvert.api import fold_net
from bnconvert.errors import UnsupportedLayerError
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import load_net

from caffe_builder import NetBuilder, blob

C = 3
MEAN, VAR, GAMMA, BETA = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.5, 1.5, 2.5], [0.1, 0.2, 0.3]


def build(tmp_path: Path, builder: NetBuilder):
    _, model = builder.save(tmp_path, prototxt=False)
    net = load_net(None, model)
    return net, pair_batch_norm_chains(net)


def base() -> NetBuilder:
    b = NetBuilder().input("data", [2, C, 4, 4])
    b.layer("conv", "Convolution", ["data"], ["x"],
            convolution_param="num_output: 3 kernel_size: 1")
    return b


def pairs(analysis) -> list[tuple[str, str | None, str | None]]:
    return [(c.batch_norm.name, c.scale and c.scale.name, c.bias and c.bias.name)
            for c in analysis.chains]


def test_in_place_chain(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 1.0).scale("sc", "x", "x", GAMMA, BETA)
    b.layer("relu", "ReLU", ["x"], ["x"])
    _, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn", "sc", None)]


def test_names_are_never_consulted(tmp_path: Path) -> None:
    """The Scale named after another BatchNorm pairs with the one whose output it reads."""
    b = base().batch_norm("bn_a", "x", "y", MEAN, VAR, 1.0)
    b.batch_norm("bn_b", "x", "z", MEAN, VAR, 1.0)
    b.scale("scale_bn_a", "z", "z", GAMMA, BETA).scale("scale_bn_b", "y", "y", GAMMA, BETA)
    _, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn_a", "scale_bn_b", None), ("bn_b", "scale_bn_a", None)]


def test_scale_reading_the_blob_before_the_batch_norm_is_not_paired(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "bn_out", MEAN, VAR, 1.0).scale("sc", "x", "s", GAMMA, BETA)
    _, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn", None, None)]
    assert [x.name for x in analysis.standalone] == ["sc"]


def test_output_with_other_readers_is_not_folded(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "y", MEAN, VAR, 1.0).scale("sc", "y", "s", GAMMA, BETA)
    b.layer("sum", "Eltwise", ["y", "s"], ["out"])
    _, analysis = build(tmp_path, b)
    chain = analysis.chains[0]
    assert chain.scale is None
    assert chain.notes == ("Scale 'sc' not folded: 'bn''s output is also read by 'sum', and "
                           "folding would change their input",)


def test_two_bottom_scale_is_gating_not_affine(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 1.0)
    b.layer("gate", "Sigmoid", ["data"], ["g"])
    b.layer("se_scale", "Scale", ["x", "g"], ["x"], scale_param="axis: 0")
    _, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn", None, None)]
    assert "has 2 bottoms" in analysis.chains[0].notes[0]
    assert [x.name for x in analysis.standalone] == ["se_scale"]


def test_scale_without_bias_then_bias_layer(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 2.0).scale("sc", "x", "x", GAMMA)
    b.layer("b", "Bias", ["x"], ["x"], [blob(BETA)])
    net, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn", "sc", "b")]
    (record,) = fold_net(net)
    assert record.bias.tolist() == pytest.approx(BETA)
    assert record.weight.tolist() == pytest.approx(GAMMA)
    assert record.running_mean.tolist() == [0.5, 1.0, 1.5]


def test_scale_with_bias_then_bias_layer_adds_both(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 1.0).scale("sc", "x", "x", GAMMA, BETA)
    b.layer("b", "Bias", ["x"], ["x"], [blob([1.0, 1.0, 1.0])])
    net, _ = build(tmp_path, b)
    (record,) = fold_net(net)
    assert record.bias.tolist() == pytest.approx([1.1, 1.2, 1.3])


def test_non_per_channel_scale_is_reported_and_refused(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 1.0)
    b.scale("sc", "x", "x", [1.0] * 48, param="axis: 1 num_axes: 3")
    net, analysis = build(tmp_path, b)
    assert analysis.chains[0].problems == (
        "layer 'sc' (Scale) has axis 1, num_axes 3: only the per-channel form (axis 1, "
        "num_axes 1) folds into a BatchNorm",)
    with pytest.raises(UnsupportedLayerError, match="cannot convert: layer 'sc' \\(Scale\\)"):
        fold_net(net)


def test_negative_axis_meaning_channels_is_per_channel(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 1.0)
    b.scale("sc", "x", "x", GAMMA, BETA, param="axis: -3")
    _, analysis = build(tmp_path, b)
    assert pairs(analysis) == [("bn", "sc", None)]


@pytest.mark.parametrize("shape,rank", [([4, C], 2), ([2, C, 5], 3), ([2, C, 4, 4], 4),
                                        ([2, C, 2, 4, 4], 5)])
def test_rank_comes_from_the_input_shape(shape: list[int], rank: int, tmp_path: Path) -> None:
    b = NetBuilder().input("data", shape).batch_norm("bn", "data", "data", MEAN, VAR, 1.0)
    _, analysis = build(tmp_path, b)
    assert analysis.chains[0].rank == rank


def test_rank_after_inner_product_is_two(tmp_path: Path) -> None:
    b = NetBuilder().input("data", [2, 8, 4, 4])
    b.layer("fc", "InnerProduct", ["data"], ["fc"], inner_product_param="num_output: 3")
    b.batch_norm("bn", "fc", "fc", MEAN, VAR, 1.0)
    _, analysis = build(tmp_path, b)
    assert analysis.chains[0].rank == 2


def test_expected_values_follow_formula(tmp_path: Path) -> None:
    b = base().batch_norm("bn", "x", "x", MEAN, VAR, 999.98).scale("sc", "x", "x", GAMMA, BETA)
    net, _ = build(tmp_path, b)
    (record,) = fold_net(net)
    f = np.float32(1) / np.float32(999.98)
    assert np.array_equal(record.running_mean, np.float32(MEAN) * f)
    assert np.array_equal(record.running_var, np.float32(VAR) * f)
