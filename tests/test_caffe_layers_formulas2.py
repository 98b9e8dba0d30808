"""bnconvert.modules' structural, element-wise and fork layers against independent formulas.

Expected values come from CAFFE_SEMANTICS.md's rules written in numpy here (or by hand).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from whole_fixtures import relative_error

from bnconvert.modules import (
    AbsVal,
    ArgMax,
    Axpy,
    BiasBy,
    CaffePool2d,
    Crop,
    Embed,
    Exp,
    Interp,
    Log,
    Power,
    PReLU,
    Reduction,
    Reshape,
    Scale,
    ScaleBy,
    ShuffleChannel,
    Slice,
    Swish,
    Threshold,
    Tile,
    Upsample,
    caffe_pooling,
)

RNG = np.random.default_rng(1212)


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def x4(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def test_crop() -> None:
    x, ref = x4(2, 3, 8, 9), x4(2, 3, 5, 4)
    assert np.array_equal(Crop(2, (1, 2))(t(x), t(ref)).numpy(), x[:, :, 1:6, 2:6])
    assert np.array_equal(Crop(2, (3,))(t(x), t(ref)).numpy(), x[:, :, 3:8, 3:7])
    assert np.array_equal(Crop(2)(t(x), t(ref)).numpy(), x[:, :, :5, :4])  # no center crop
    small = x4(2, 2, 5, 4)
    assert np.array_equal(Crop(1, (1,))(t(x), t(small)).numpy(), x[:, 1:3, 1:6, 1:5])
    assert np.array_equal(Crop(-1, (2,))(t(x), t(ref)).numpy(), x[..., 2:6])


def test_tile_repeats_the_block() -> None:
    x = x4(2, 3, 4)
    out = Tile(1, 3)(t(x)).numpy()
    assert out.shape == (2, 9, 4)
    for i in range(3):
        assert np.array_equal(out[:, 3 * i:3 * i + 3], x)  # repeat, not repeat_interleave
    assert np.array_equal(Tile(-1, 2)(t(x)).numpy(), np.concatenate([x, x], axis=-1))


@pytest.mark.parametrize("operation", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_reduction(operation: str, axis: int) -> None:
    x = x4(2, 3, 4, 5).astype(np.float64)
    start = axis % 4
    flat = x.reshape(x.shape[:start] + (-1,))
    ref = {"SUM": flat.sum(-1), "ASUM": np.abs(flat).sum(-1), "SUMSQ": (flat ** 2).sum(-1),
           "MEAN": flat.mean(-1)}[operation] * 2.5
    got = Reduction(operation, axis, 2.5)(t(x)).numpy()
    assert got.shape == x.shape[:start]  # axis 0 gives a 0-d blob
    assert relative_error(got, np.asarray(ref, np.float32)) <= 1e-6


def test_argmax_ties_go_to_the_larger_index() -> None:
    x = t(np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]]))
    assert ArgMax(1, axis=1)(x).flatten().tolist() == [2.0, 2.0]
    assert ArgMax(2, axis=1)(x).tolist() == [[2.0, 1.0], [2.0, 1.0]]
    assert ArgMax(2, True, axis=1)(x).tolist() == [[3.0, 3.0], [5.0, 5.0]]


def test_argmax_without_axis() -> None:
    x = x4(2, 3, 4, 5)
    flat = x.reshape(2, -1)
    top = np.argsort(-flat, axis=1, kind="stable")[:, :3]  # no ties in random data
    got = ArgMax(3)(t(x)).numpy()
    assert got.shape == (2, 1, 3, 1) and np.array_equal(got[:, 0, :, 0], top)
    both = ArgMax(3, True)(t(x)).numpy()
    assert both.shape == (2, 2, 3, 1)
    assert np.array_equal(both[:, 1, :, 0], np.take_along_axis(flat, top, 1))


def test_embed_truncates_toward_zero() -> None:
    module = Embed(4, 3)
    module.weight.data = t(x4(4, 3))
    module.bias.data = t(x4(3))  # type: ignore[union-attr]
    ids = t(np.array([[1.5, -0.5], [2.0, 3.99]]))
    w, b = module.weight.detach().numpy(), module.bias.detach().numpy()  # type: ignore[union-attr]
    expected = w[np.array([[1, 0], [2, 3]])] + b
    assert np.array_equal(module(ids).detach().numpy(), expected)


def test_slice() -> None:
    x = x4(2, 5, 3)
    parts = Slice(1, (1, 3))(t(x))
    assert [p.shape[1] for p in parts] == [1, 2, 2]
    assert np.array_equal(parts[1].numpy(), x[:, 1:3])
    halves = Slice(-1, (), 3)(t(x))
    assert [p.numpy().tolist() for p in halves] == [x[..., i:i + 1].tolist() for i in range(3)]


def caffe_reshape_shape(shape: tuple[int, ...], dims: tuple[int, ...], axis: int,
                        num_axes: int) -> tuple[int, ...]:
    """Caffe's ReshapeLayer::Reshape, without the -1 inference (numpy does that)."""
    start = axis if axis >= 0 else len(shape) + axis + 1
    end = len(shape) if num_axes == -1 else start + num_axes
    copied = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    return shape[:start] + tuple(copied) + shape[end:]


@pytest.mark.parametrize(("dims", "axis", "num_axes"), [
    ((0, -1), 0, -1), ((-1,), 1, 2), ((1,), 1, 0), ((5, 1), -2, -1), ((1, 1), -1, 0),
    ((0, 2, -1), 1, -1), ((4, 0, -1), 0, 3)])
def test_reshape(dims: tuple[int, ...], axis: int, num_axes: int) -> None:
    x = x4(2, 3, 4, 5)
    expected = x.reshape(caffe_reshape_shape(x.shape, dims, axis, num_axes))
    assert np.array_equal(Reshape(dims, axis, num_axes)(t(x)).numpy(), expected)


def test_shuffle_channel_and_axpy() -> None:
    x = x4(2, 6, 3, 3)
    out = ShuffleChannel(2)(t(x)).numpy()
    assert np.array_equal(out, x.reshape(2, 2, 3, 3, 3).transpose(0, 2, 1, 3, 4).reshape(x.shape))
    assert np.array_equal(out[:, :, 0, 0], x[:, [0, 3, 1, 4, 2, 5], 0, 0])
    a, y = x4(2, 6, 1, 1), x4(2, 6, 3, 3)
    assert relative_error(Axpy()(t(a), t(x), t(y)).numpy(), a * x + y) <= 1e-7


def ref_interp(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """PSPNet's caffe_cpu_interp2 (corners aligned), cell by cell in float64."""
    h, w = x.shape[-2:]
    rh = (h - 1) / (oh - 1) if oh > 1 else 0.0
    rw = (w - 1) / (ow - 1) if ow > 1 else 0.0
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h1 = int(rh * i)
        hp, hl = (1 if h1 < h - 1 else 0), rh * i - int(rh * i)
        for j in range(ow):
            w1 = int(rw * j)
            wp, wl = (1 if w1 < w - 1 else 0), rw * j - int(rw * j)
            out[..., i, j] = ((1 - hl) * ((1 - wl) * x[..., h1, w1] + wl * x[..., h1, w1 + wp])
                              + hl * ((1 - wl) * x[..., h1 + hp, w1]
                                      + wl * x[..., h1 + hp, w1 + wp]))
    return out


@pytest.mark.parametrize(("kwargs", "crop", "size"), [
    ({"zoom_factor": 2}, 0, (9, 11)), ({"shrink_factor": 2}, 0, (3, 3)),
    ({"height": 7, "width": 4}, 0, (7, 4)), ({"zoom_factor": 3, "shrink_factor": 2}, 0, (7, 7)),
    ({"zoom_factor": 2, "pad_beg": -1, "pad_end": -1}, 1, (5, 7))])
def test_interp(kwargs: dict, crop: int, size: tuple[int, int]) -> None:  # type: ignore[type-arg]
    x = x4(2, 3, 5, 6)
    got = Interp(**kwargs)(t(x)).numpy()
    cropped = x[..., crop:5 - crop, crop:6 - crop].astype(np.float64)
    assert got.shape[-2:] == size
    assert relative_error(got, ref_interp(cropped, *size).astype(np.float32)) <= 1e-6


@pytest.mark.parametrize("general", [False, True])
def test_upsample_scatters_to_the_pooling_mask(general: bool) -> None:
    x = x4(2, 3, 7, 8)
    pool = CaffePool2d(2, 2, return_mask=True) if general else caffe_pooling(2, 2, 0,
                                                                             return_mask=True)
    top, mask = pool(t(x))
    out = Upsample(upsample_h=7, upsample_w=8)(top, mask).numpy()
    expected = np.zeros_like(x)
    for n, c in np.ndindex(2, 3):
        for i, idx in enumerate(mask[n, c].flatten().tolist()):
            expected[n, c].flat[idx] = top[n, c].flatten()[i].item()
    assert np.array_equal(out, expected)
    assert Upsample()(top, mask).shape == (2, 3, 8, 8)
    assert Upsample(pad_out_h=True)(top, mask).shape == (2, 3, 7, 8)


def test_elementwise_formulas() -> None:
    x = x4(2, 3, 4)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # Power's negative bases: NaN in both
        power = (3.0 + 2.0 * xd) ** 0.5
    cases = [
        (Power(0.5, 2.0, 3.0), power), (Exp(), np.exp(xd)),
        (Exp(2.0, 0.5, 1.0), 2.0 ** (1.0 + 0.5 * xd)), (Log(10.0, 1.5, 9.0),
                                                       np.log10(9.0 + 1.5 * xd)),
        (Log(), np.log(np.abs(xd) + 0.1)), (Swish(2.0), xd / (1 + np.exp(-2.0 * xd))),
        (nn.Softplus(), np.where(xd > 0, xd + np.log1p(np.exp(-xd)), np.log1p(np.exp(xd)))),
        (nn.ELU(0.5), np.where(xd > 0, xd, 0.5 * (np.exp(xd) - 1))),
        (nn.ReLU6(), np.minimum(np.maximum(xd * 5, 0), 6)), (nn.Hardtanh(-1.0, 0.5),
                                                           np.maximum(-1.0, np.minimum(xd, 0.5))),
        (AbsVal(), np.abs(xd)),
    ]
    for module, expected in cases:
        arg = np.abs(x) + 0.1 if isinstance(module, Log) and module.scale == 1.0 else x
        arg = x * 5 if isinstance(module, nn.ReLU6) else arg
        got = module(t(arg)).numpy()
        assert relative_error(got, expected.astype(np.float32)) <= 2e-6, module


def test_threshold_is_strict() -> None:
    x = t(np.array([0.5, np.nextafter(np.float32(0.5), np.float32(1)), 0.4, -1.0]))
    assert Threshold(0.5)(x).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_scale_and_bias_broadcasting() -> None:
    x, s = x4(2, 4, 3, 5), x4(2, 4)
    assert np.array_equal(ScaleBy(0, 4, 2)(t(x), t(s)).numpy(), x * s[:, :, None, None])
    per_c = x4(4)
    assert np.array_equal(ScaleBy(1, 4, 1)(t(x), t(per_c)).numpy(), x * per_c[:, None, None])
    scalar = np.float32(1.5)
    assert np.array_equal(ScaleBy(1, 4, 0)(t(x), torch.tensor(scalar)).numpy(), x * scalar)
    with_bias = ScaleBy(1, 4, 1, bias_shape=(4,))
    with_bias.bias.data = t(x4(4))  # type: ignore[union-attr]
    b = with_bias.bias.detach().numpy()  # type: ignore[union-attr]
    assert np.array_equal(with_bias(t(x), t(per_c)).detach().numpy(),
                          x * per_c[:, None, None] + b[:, None, None])
    assert np.array_equal(BiasBy(2, 4, 2)(t(x), t(x4(3, 5))).shape, x.shape)
    two_axes = Scale((4, 3), 1, 4)
    two_axes.weight.data = t(x4(4, 3))
    w = two_axes.weight.detach().numpy()
    assert np.array_equal(two_axes(t(x)).detach().numpy(), x * w[:, :, None])
    with pytest.raises(ValueError, match="does not fit"):
        Scale((4, 3, 5, 1), 1, 4)


def test_channel_shared_prelu_keeps_a_0d_blob() -> None:
    module = PReLU(6, channel_shared=True)
    assert module.state_dict()["weight"].shape == ()
    module.weight.data = torch.tensor(0.1)
    x = x4(2, 6, 3)
    assert np.array_equal(module(t(x)).detach().numpy(), np.where(x > 0, x, np.float32(0.1) * x))
