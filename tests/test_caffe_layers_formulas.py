"""bnconvert.modules against CAFFE_SEMANTICS.md's formulas where the fixtures lack a case.

Every expected value is computed here, in numpy, from the documented formula (loops written
after Caffe's layer code), independently of the module under test; several are hand-checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from whole_fixtures import relative_error

from bnconvert.modules import MVN, SPP, CaffePool2d, caffe_pool_size, caffe_pooling

FLT_MAX = np.finfo(np.float32).max
RNG = np.random.default_rng(1211)


def caffe_out(n: int, k: int, s: int, p: int, ceil: bool) -> int:
    out = (math.ceil if ceil else math.floor)((n + 2 * p - k) / s) + 1
    return out - 1 if p > 0 and (out - 1) * s >= n + p else out


def ref_pool(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
             is_max: bool, ceil: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Caffe's PoolingLayer::Forward_cpu, cell by cell; returns (top, mask)."""
    h, w = x.shape[-2:]
    oh, ow = (caffe_out(n, k[i], s[i], p[i], ceil) for i, n in enumerate((h, w)))
    top = np.zeros(x.shape[:-2] + (oh, ow), np.float32)
    mask = np.full(top.shape, -1, np.int64)
    for idx in np.ndindex(*x.shape[:-2]):
        for i in range(oh):
            for j in range(ow):
                hs, ws = i * s[0] - p[0], j * s[1] - p[1]
                if is_max:
                    best, where = -FLT_MAX, -1
                    for r in range(max(hs, 0), min(hs + k[0], h)):
                        for c in range(max(ws, 0), min(ws + k[1], w)):
                            if x[idx + (r, c)] > best:
                                best, where = x[idx + (r, c)], r * w + c
                    top[idx + (i, j)], mask[idx + (i, j)] = best, where
                else:
                    he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
                    size = np.float32((he - hs) * (we - ws))
                    cells = x[idx][max(hs, 0):min(he, h), max(ws, 0):min(we, w)]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        top[idx + (i, j)] = np.float32(cells.sum()) / size
    return top, mask


POOLS = [  # (H, W, kernel, stride, pad, ceil)
    (6, 6, (2, 2), (3, 3), (0, 0), True),     # p = 0, s > k: the last window starts at 6
    (5, 7, (1, 1), (3, 3), (0, 0), True),     # ... and past the input (AVE: 0 / -1)
    (6, 6, (2, 2), (3, 3), (0, 0), False),    # the same with round_mode FLOOR
    (11, 13, (3, 3), (3, 3), (2, 2), True),   # pad 2 with kernel 3: legal in Caffe only
    (7, 9, (3, 4), (2, 3), (2, 3), False),    # pad > k / 2, FLOOR, rectangular
    (13, 13, (4, 4), (3, 3), (1, 1), True),   # AVE divisor 3 on the last column
    (11, 13, (3, 3), (2, 2), (1, 1), True),   # PyTorch's ceil_mode agrees here
    (66, 66, (3, 3), (2, 2), (0, 0), True),   # 66 -> 33
]


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("case", POOLS, ids=[f"{c[0]}x{c[1]}k{c[2]}s{c[3]}p{c[4]}"
                                               f"{'ceil' if c[5] else 'floor'}" for c in POOLS])
def test_pooling_matches_caffes_loops(case: tuple, is_max: bool) -> None:  # type: ignore[type-arg]
    h, w, k, s, p, ceil = case
    x = RNG.normal(size=(2, 3, h, w)).astype(np.float32)
    top, mask = ref_pool(x, k, s, p, is_max, ceil)
    factory = caffe_pooling(k, s, p, is_max, ceil, return_mask=is_max)
    general = CaffePool2d(k, s, p, is_max, ceil, return_mask=is_max)
    for module in (factory, general):
        out = module(torch.from_numpy(x))
        y = out[0] if is_max else out
        assert relative_error(y.numpy(), top) <= 1e-6
        if is_max:
            assert np.array_equal(out[1].numpy(), mask)


def test_overhang_window_gives_minus_flt_max_and_nan() -> None:
    """k2 s3 on 6x6: 3 outputs per axis, the last window starts at 6 (outside the input)."""
    assert caffe_pool_size(6, 2, 3, 0) == 3
    x = torch.from_numpy(RNG.normal(size=(1, 1, 6, 6)).astype(np.float32))
    top, mask = caffe_pooling(2, 3, 0, return_mask=True)(x)
    assert top.shape == (1, 1, 3, 3)
    assert (top[..., 2, :] == -FLT_MAX).all() and (mask[..., 2, :] == -1).all()
    ave = caffe_pooling(2, 3, 0, max_pool=False)(x)
    assert ave[..., 2, :].isnan().all() and ave[..., :2, :2].isfinite().all()


def test_hand_checked_sizes_and_divisor() -> None:
    assert caffe_pool_size(11, 3, 3, 1) == 4 and caffe_pool_size(11, 3, 3, 1, False) == 4
    assert caffe_pool_size(11, 2, 2, 0) == 6 and caffe_pool_size(11, 2, 2, 0, False) == 5
    ave = caffe_pooling(4, 3, 1, max_pool=False)(torch.ones(1, 1, 13, 13))
    # rows [-1, 3): divisor 4, 3 real; last column [11, 14): divisor 3, 2 real
    assert ave[0, 0, 0, -1].item() == pytest.approx((3 * 2) / (4 * 3))


def test_max_mask_takes_the_first_maximum_in_scan_order() -> None:
    x = RNG.integers(0, 3, size=(2, 3, 9, 10)).astype(np.float32)
    for k, s, p in (((3, 3), (2, 2), (1, 1)), ((3, 3), (3, 3), (2, 2)), ((2, 2), (2, 2), (0, 0))):
        _, mask = ref_pool(x, k, s, p, True)
        for module in (caffe_pooling(k, s, p, return_mask=True),
                       CaffePool2d(k, s, p, return_mask=True)):
            assert np.array_equal(module(torch.from_numpy(x))[1].numpy(), mask)


def test_global_pooling_with_mask() -> None:
    x = torch.from_numpy(RNG.normal(size=(2, 3, 5, 7)).astype(np.float32))
    top, mask = caffe_pooling(max_pool=True, global_pooling=True, return_mask=True)(x)
    flat = x.flatten(2)
    assert torch.equal(top[..., 0, 0], flat.amax(2))
    assert torch.equal(mask[..., 0, 0], flat.argmax(2))
    ave = caffe_pooling(max_pool=False, global_pooling=True)(x)
    assert relative_error(ave.numpy(), x.numpy().mean(axis=(2, 3), keepdims=True)) <= 1e-6


def test_pooling_refuses_what_caffe_refuses() -> None:
    with pytest.raises(ValueError, match="pad"):
        caffe_pooling(3, 1, 3)
    with pytest.raises(ValueError, match="mask"):
        caffe_pooling(2, 2, 0, max_pool=False, return_mask=True)


@pytest.mark.parametrize("is_max", [True, False])
def test_spp_bins_on_h11(is_max: bool) -> None:
    """Level 1 on 11x13: rows [0, 5) and [5, 11), columns [0, 6) and [6, 13)."""
    x = RNG.normal(size=(2, 3, 11, 13)).astype(np.float32)
    out = SPP(3, 11, 13, max_pool=is_max)(torch.from_numpy(x)).numpy()
    assert out.shape == (2, 3 * (1 + 4 + 16))
    expected = []
    for level in range(3):
        bins = 2 ** level
        k = (-(-11 // bins), -(-13 // bins))
        pad = ((k[0] * bins - 11 + 1) // 2, (k[1] * bins - 13 + 1) // 2)
        expected.append(ref_pool(x, k, k, pad, is_max)[0].reshape(2, -1))
    assert relative_error(out, np.concatenate(expected, axis=1)) <= 1e-6
    level1 = out[:, 3:15].reshape(2, 3, 2, 2)
    if is_max:
        for i, (r0, r1) in enumerate(((0, 5), (5, 11))):
            for j, (c0, c1) in enumerate(((0, 6), (6, 13))):
                assert np.array_equal(level1[..., i, j], x[..., r0:r1, c0:c1].max(axis=(2, 3)))
    single = SPP(1, 11, 13, max_pool=is_max)(torch.from_numpy(x))
    assert single.shape == (2, 3, 1, 1)


def ref_mvn(x: np.ndarray, normalize: bool, across: bool, eps: float) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1) if across else x.reshape(x.shape[0], x.shape[1], -1)
    centred = flat - flat.mean(axis=-1, keepdims=True)
    if normalize:
        centred = centred / (np.sqrt((centred ** 2).mean(axis=-1, keepdims=True)) + eps)
    return centred.reshape(x.shape)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("eps", [1e-9, 0.5])
def test_mvn(normalize: bool, across: bool, eps: float) -> None:
    x = RNG.normal(2.0, 3.0, size=(2, 3, 4, 5)).astype(np.float32)
    got = MVN(normalize, across, eps)(torch.from_numpy(x)).numpy()
    assert relative_error(got, ref_mvn(x.astype(np.float64), normalize, across, eps)) <= 1e-5


def test_mvn_adds_eps_to_the_standard_deviation() -> None:
    """Values 0 and 2: mean 1, std 1; eps 0.5 gives +-1/1.5, not +-1/sqrt(1.5)."""
    x = torch.tensor([[[[0.0, 2.0]]]])
    assert MVN(eps=0.5)(x).flatten().tolist() == pytest.approx([-2 / 3, 2 / 3])
