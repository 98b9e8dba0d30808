"""Folding formulas, checked against Caffe's documented arithmetic written out here
independently (float32 reciprocal of the scale factor, 0 when it is 0)."""

from __future__ import annotations

import numpy as np
import pytest

from bnconvert.fold.numeric import fold_affine, fold_running_stats, scale_factor_multiplier

RNG = np.random.default_rng(20261122)


@pytest.mark.parametrize("factor", [0.0, 1.0, 95.20792388916016, 999.98])
def test_running_stats_follow_caffe_scale_factor_rule(factor: float) -> None:
    mean_acc = RNG.normal(size=16).astype(np.float32) * 100
    var_acc = RNG.uniform(0, 300, size=16).astype(np.float32)
    mean, var = fold_running_stats(mean_acc, var_acc, factor)
    # Caffe: const Dtype scale_factor = s == 0 ? 0 : 1 / s;  caffe_cpu_scale(n, scale_factor,..)
    multiplier = np.float32(0.0) if factor == 0 else np.divide(np.float32(1), np.float32(factor))
    assert mean.dtype == var.dtype == np.float32
    assert np.array_equal(mean, np.multiply(mean_acc, multiplier, dtype=np.float32))
    assert np.array_equal(var, np.multiply(var_acc, multiplier, dtype=np.float32))


def test_zero_factor_ignores_nonzero_accumulators() -> None:
    mean, var = fold_running_stats(np.array([5.0, -3.0]), np.array([7.0, 2.0]), 0.0)
    assert mean.tolist() == [0.0, 0.0] and var.tolist() == [0.0, 0.0]


def test_multiplier_is_a_float32_reciprocal() -> None:
    assert scale_factor_multiplier(3.0) == np.float32(1) / np.float32(3)
    assert scale_factor_multiplier(3.0).dtype == np.float32


def test_inputs_are_not_mutated() -> None:
    mean_acc = np.array([2.0, 4.0], dtype=np.float32)
    var_acc = np.array([6.0, 8.0], dtype=np.float32)
    fold_running_stats(mean_acc, var_acc, 2.0)
    gamma = np.array([1.5, 2.5], dtype=np.float32)
    weight, _ = fold_affine(gamma, None, None, 2)
    weight[0] = 99
    assert mean_acc.tolist() == [2.0, 4.0] and var_acc.tolist() == [6.0, 8.0]
    assert gamma.tolist() == [1.5, 2.5]


@pytest.mark.parametrize("beta,extra,want", [
    (None, None, [0.0, 0.0]),
    ([0.5, -1.0], None, [0.5, -1.0]),
    (None, [0.25, 0.75], [0.25, 0.75]),
    ([0.5, -1.0], [0.25, 0.75], [0.75, -0.25]),
])
def test_affine_sums_scale_beta_and_bias_layer(beta, extra, want) -> None:
    weight, bias = fold_affine(np.array([2.0, 3.0]), beta, extra, 2)
    assert weight.tolist() == [2.0, 3.0]
    assert bias.tolist() == want
