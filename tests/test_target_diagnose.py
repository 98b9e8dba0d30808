"""``first_divergence`` names the first target module whose output is not Caffe's, and why.
Both sides are small torch modules here (standing in for bnconvert's Caffe-semantics module):
the same weights, one structural difference each."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch
from torch import nn

from bnconvert.target.diagnose import first_divergence
from bnconvert.target.match import match_units
from bnconvert.target.torch_side import target_units


def _bottleneck(stride_1x1: int, stride_3x3: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(4, 6, 1, stride=stride_1x1, bias=False), nn.BatchNorm2d(6),
                         nn.ReLU(), nn.Conv2d(6, 6, 3, stride=stride_3x3, padding=1, bias=False),
                         nn.BatchNorm2d(6))


def _pooled(ceil_mode: bool, relu: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU() if relu else nn.Identity(),
                         nn.AvgPool2d(3, 2, ceil_mode=ceil_mode), nn.Conv2d(6, 2, 1))


def _forward(model: nn.Module):
    """A forward returning every parametric module's output by name (eval mode)."""
    names = {m: n for n, m in model.named_modules() if n and not list(m.children())}

    def run(x: np.ndarray) -> Mapping[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        hooks = [m.register_forward_hook(
            lambda mod, _i, o: out.__setitem__(names[mod], o.detach().numpy())) for m in names]
        with torch.no_grad():
            model.eval()(torch.from_numpy(x))
        for hook in hooks:
            hook.remove()
        return out

    return run


def _diagnose(caffe_like: nn.Module, target: nn.Module):
    torch.manual_seed(0)
    for module in caffe_like.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
            module.running_mean.normal_()
    target.load_state_dict(caffe_like.state_dict())
    matching = match_units(target_units(caffe_like), target_units(target)).require_complete()
    x = np.random.default_rng(1).normal(size=(1, 4, 8, 8)).astype(np.float32)
    return first_divergence(_forward(target), _forward(caffe_like), matching, x)


def test_the_same_net_agrees() -> None:
    assert _diagnose(_bottleneck(2, 1), _bottleneck(2, 1)) is None


def test_a_stride_moved_from_the_1x1_to_the_3x3_is_named() -> None:
    found = _diagnose(_bottleneck(2, 1), _bottleneck(1, 2))
    assert found is not None
    assert (found.target, found.target_shape, found.caffe_shape) == ("0", (1, 6, 8, 8),
                                                                     (1, 6, 4, 4))
    assert found.message() == (
        "target module '0': output shape 1x6x8x8 where Caffe's '0' has 1x6x4x4; stride "
        "placement: Caffe's '0' has stride 2x2 (1x1 kernel), the target's '0' has stride 1x1 "
        "(1x1 kernel); stride placement: Caffe's '3' has stride 1x1 (3x3 kernel), the "
        "target's '3' has stride 2x2 (3x3 kernel)")


def test_pooling_rounding_is_named_at_the_next_module() -> None:
    found = _diagnose(_pooled(ceil_mode=True), _pooled(ceil_mode=False))
    assert found is not None
    assert found.message() == (
        "target module '3': output shape 1x2x3x3 where Caffe's '3' has 1x2x4x4; pooling "
        "rounding or padding between '0' and '3': the same strides give a different spatial "
        "size (Caffe's pooling rounds up, PyTorch's rounds down unless ceil_mode=True)")


def test_a_missing_relu_is_placed_between_two_modules() -> None:
    found = _diagnose(_pooled(ceil_mode=True), _pooled(ceil_mode=True, relu=False))
    assert found is not None and found.max_abs_error is not None
    assert found.max_abs_error > 0.01
    assert found.message().startswith("target module '3': output differs from Caffe's '3' by "
                                      "up to ")
    assert found.message().endswith(
        "the operations between '0' and '3' differ (a missing or moved ReLU, a different "
        "pooling or padding): its input agreed with Caffe's")


@pytest.mark.parametrize("eps", [0.1])
def test_a_different_eps_is_named(eps: float) -> None:
    target = _bottleneck(2, 1)
    target[1].eps = eps
    found = _diagnose(_bottleneck(2, 1), target)
    assert found is not None
    assert found.target == "1"
    assert found.reasons == ("BN eps: Caffe 1e-05, target 0.1",)
