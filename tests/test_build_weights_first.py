"""Building for a caffemodel's weights: modules on meta without PyTorch's random
initialisation, weights assigned, nothing uninitialised can remain (#12 build time)."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from bnconvert import modules
from bnconvert.build.weights_first import assign_weights, construct_on_meta, paused_gc
from bnconvert.errors import BnConvertError


@pytest.mark.parametrize(("factory", "args", "kwargs"), [
    (nn.Conv2d, (3, 8, 3), {"stride": 2, "padding": 1, "groups": 1, "bias": True}),
    (nn.ConvTranspose2d, (4, 4, 2), {"groups": 4, "bias": False}),
    (nn.Linear, (5, 7), {"bias": True}),
    (nn.BatchNorm2d, (6,), {"eps": 1e-3, "affine": True, "momentum": 0.25}),
    (modules.Scale, ((6,), 1, 4), {"bias_term": True}),
])
def test_constructed_on_meta_like_the_real_constructor(factory, args, kwargs) -> None:
    built = construct_on_meta(factory, args, kwargs)
    reference = factory(*args, **kwargs)
    assert type(built) is type(reference)
    assert repr(built) == repr(reference)
    state, expected = built.state_dict(), reference.state_dict()
    assert list(state) == list(expected)
    for key, tensor in state.items():
        assert tensor.is_meta
        assert (tensor.shape, tensor.dtype) == (expected[key].shape, expected[key].dtype)
    # the stand-in for reset_parameters is gone: the class's method is back
    assert "reset_parameters" not in vars(built)
    if hasattr(reference, "reset_parameters"):
        assert built.reset_parameters.__func__ is type(built).reset_parameters


def test_random_initialisation_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(nn.init, "kaiming_uniform_", lambda *a, **k: calls.append("kaiming"))
    construct_on_meta(nn.Conv2d, (3, 8, 3), {})
    assert calls == []
    nn.Conv2d(3, 8, 3, device="meta")
    assert calls == ["kaiming"]


def test_assigned_weights_are_the_given_tensors_in_the_module_dtype() -> None:
    conv = construct_on_meta(nn.Conv2d, (2, 3, 1), {"bias": True})
    weight = torch.arange(6, dtype=torch.float32).reshape(3, 2, 1, 1)
    bias = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assign_weights(conv, {"weight": weight, "bias": bias}, "net.prototxt")
    assert conv.weight.data_ptr() == weight.data_ptr()  # no copy
    assert isinstance(conv.weight, nn.Parameter) and conv.weight.requires_grad
    assert conv.bias.dtype == torch.float32
    assert conv.bias.tolist() == [1.0, 2.0, 3.0]
    x = torch.ones(1, 2, 1, 1)
    assert conv(x).flatten().tolist() == [0 + 1 + 1, 2 + 3 + 2, 4 + 5 + 3]


def test_a_missing_weight_is_an_error_not_uninitialised_memory() -> None:
    conv = construct_on_meta(nn.Conv2d, (2, 3, 1), {"bias": True})
    with pytest.raises(RuntimeError, match="Missing key.*bias"):
        assign_weights(conv, {"weight": torch.zeros(3, 2, 1, 1)}, "net.prototxt")


class _WithScratch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(2))
        self.register_buffer("scratch", torch.empty(2), persistent=False)


def test_a_tensor_outside_the_state_dict_is_refused() -> None:
    module = construct_on_meta(_WithScratch, (), {})
    with pytest.raises(BnConvertError, match=r"^net\.prototxt: .*do not provide scratch$"):
        assign_weights(module, {"weight": torch.zeros(2)}, "net.prototxt")


def test_paused_gc_restores_the_callers_setting() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), paused_gc():
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
