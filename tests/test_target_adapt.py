"""The exact adaptations of ``bnconvert.target.adapt`` against BN's formula written out here."""

from __future__ import annotations

import numpy as np
import pytest

from bnconvert.errors import NumericError
from bnconvert.target.adapt import adapt_eps, fold_bias_into_running_mean, same_eps


def _bn(x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    """Inference BN per channel (axis 1), float64: (x - mean) / sqrt(var + eps)."""
    return (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + eps)


@pytest.fixture
def stats() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 3, 5))
    return x, rng.normal(size=3), rng.uniform(0.01, 2.0, size=3)


def test_bias_fold_gives_the_same_normalized_output(stats) -> None:
    x, mean, var = stats
    bias = np.array([0.5, -3.0, 1e-3])
    folded = fold_bias_into_running_mean(bias, mean)
    np.testing.assert_array_equal(folded, mean - bias)
    np.testing.assert_allclose(_bn(x, folded, var, 1e-5), _bn(x + bias[None, :, None], mean,
                                                             var, 1e-5), rtol=0, atol=1e-12)


def test_bias_fold_refuses_a_shape_mismatch() -> None:
    with pytest.raises(NumericError, match=r"a bias of shape \(2,\) cannot fold"):
        fold_bias_into_running_mean(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize(("eps_caffe", "eps_target"), [(1e-3, 1e-5), (1e-5, 1e-3), (0.1, 1e-5)])
def test_eps_moves_into_the_variance(stats, eps_caffe: float, eps_target: float) -> None:
    x, mean, var = stats
    adapted = adapt_eps(var, eps_caffe, eps_target)
    np.testing.assert_allclose(_bn(x, mean, adapted, eps_target), _bn(x, mean, var, eps_caffe),
                               rtol=1e-12, atol=0)


def test_eps_refuses_a_negative_variance() -> None:
    with pytest.raises(NumericError) as caught:
        adapt_eps(np.array([1.0, 1e-6, 0.0]), 1e-5, 1e-3, "bn2")
    assert str(caught.value) == (
        "layer 'bn2': the target's BatchNorm eps 0.001 exceeds Caffe's variance + eps (1e-05) "
        "in 2 channel(s), first channel 1 (variance 1e-06): no running variance reproduces "
        "Caffe there; build the target with eps=9.999999747378752e-06")


def test_float32_equal_eps_count_as_the_same() -> None:
    assert same_eps(np.float32(1e-5).item(), 1e-5)
    assert not same_eps(1e-5, 2e-5)
