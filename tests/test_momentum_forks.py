"""Forks' running averages (bnconvert.fold.momentum_forks). No fork TRAIN run is recorded, so
the expected values come from each fork's update as written in its source (cited in the module
under test; PSPNet's also in tests/data/forks/pspnet/*/meta.json "TRAIN"), re-written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnconvert.errors import NumericError
from bnconvert.fold.momentum_forks import (
    continue_nvcaffe,
    continue_pspnet,
    continue_segnet,
    continue_yjxiong,
)

CHANNELS, SHAPE = 3, (4, 3, 5, 5)  # m = 100 values per channel


def batches(seed: int = 15, count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=SHAPE) * 1.5 + 0.7).astype(np.float32) for _ in range(count)]


def batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance over every axis but 1, float64."""
    axes = (0, 2, 3)
    return x.mean(axis=axes, dtype=np.float64), x.astype(np.float64).var(axis=axes)


def fork_run(fraction: float, unbiased: bool, add_eps: float = 0.0) -> tuple[np.ndarray, ...]:
    """``blob <- fraction·blob + (1 − fraction)·stat`` from mean 0.5 / var 2 (the forks' axpby,
    and cuDNN's running average with factor 1 − fraction)."""
    mean, var = np.full(CHANNELS, 0.5), np.full(CHANNELS, 2.0)
    m = SHAPE[0] * SHAPE[2] * SHAPE[3]
    for x in batches():
        batch_mean, batch_var = batch_stats(x)
        batch_var = batch_var * m / (m - 1) if unbiased else batch_var + add_eps
        mean = fraction * mean + (1 - fraction) * batch_mean
        var = fraction * var + (1 - fraction) * batch_var
    return mean, var


def torch_run(momentum: float) -> tuple[np.ndarray, np.ndarray]:
    module = torch.nn.BatchNorm2d(CHANNELS, momentum=momentum, dtype=torch.float64).train()
    module.running_mean.fill_(0.5)
    module.running_var.fill_(2.0)
    for x in batches():
        module(torch.from_numpy(x.astype(np.float64)))
    return module.running_mean.numpy(), module.running_var.numpy()


def test_cudnn_engines_continue_exactly() -> None:
    for plan, fraction in ((continue_yjxiong(0.9, engine="CUDNN"), 0.9),
                           (continue_nvcaffe(0.999), 0.999)):
        assert plan.exact == "every step"
        assert plan.momentum is not None
        want = fork_run(float(np.float32(fraction)), unbiased=True)  # the fork's float32 value
        got = torch_run(plan.momentum)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("plan", [continue_pspnet(0.9), continue_yjxiong(0.9)])
def test_caffe_engine_forks_continue_the_mean_but_not_the_biased_variance(plan) -> None:
    assert plan.exact == "approximate" and plan.momentum is not None
    want_mean, want_var = fork_run(float(np.float32(0.9)), unbiased=False)
    got_mean, got_var = torch_run(plan.momentum)
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-12)
    # PyTorch's running_var takes m/(m−1)·var_b: larger by momentum·var_b/(m−1) per step,
    # decayed by (1 − momentum) per later step — the note's claim, summed here over the batches
    m, p = SHAPE[0] * SHAPE[2] * SHAPE[3], plan.momentum
    extra = sum((1 - p) ** (3 - k) * p * batch_stats(x)[1] / (m - 1)
                for k, x in enumerate(batches()))
    np.testing.assert_allclose(got_var - want_var, extra, rtol=1e-9)
    assert np.all(got_var - want_var > 1e-4 * want_var)


def test_nvcaffe_caffe_engine_is_approximate() -> None:
    plan = continue_nvcaffe(0.9, engine="CAFFE")
    assert plan.exact == "approximate"
    assert plan.momentum == pytest.approx(0.1, rel=1e-6)
    assert "eps is added" in plan.note and "first two passes" in plan.note


def test_pspnet_momentum_is_the_float32_complement() -> None:
    """PSPNet's release prototxts say momentum 0.95: Dtype(1) − 0.95f."""
    assert continue_pspnet(0.95).momentum == float(np.float32(1) - np.float32(0.95))


def test_frozen_forks_keep_their_statistics() -> None:
    plan = continue_pspnet(0.95, frozen=True)
    assert (plan.momentum, plan.exact) == (0.0, "every step")
    assert "eval mode" in plan.note


def test_segnet_has_nothing_to_continue() -> None:
    plan = continue_segnet()
    assert plan.exact == "nothing to continue"
    assert plan.momentum == 0.1  # PyTorch's default, unchanged


@pytest.mark.parametrize("call, message", [
    (lambda: continue_pspnet(1.2, where="psp.prototxt: layer bn1 (BN)"),
     "psp.prototxt: layer bn1 (BN): bn_param.momentum is 1.2, expected a value in [0, 1]"),
    (lambda: continue_nvcaffe(-0.5), "moving_average_fraction is -0.5, expected a value in "
                                     "[0, 1]"),
])
def test_bad_fractions_are_refused(call, message: str) -> None:
    with pytest.raises(NumericError) as error:
        call()
    assert str(error.value) == message
