"""The BN-weight checks' whole-vector shortcuts (one C loop instead of a Python test per
channel, for ``inspect``'s speed) give the verdicts of the per-channel definitions."""

from __future__ import annotations

import math
import re
import struct
from types import SimpleNamespace

import pytest

from bnconvert.errors import NumericError
from bnconvert.fold.checks import BlobLayout, _check_variance, check_vector

NET = SimpleNamespace(caffemodel="m.caffemodel")
LAYER = SimpleNamespace(name="bn", type="BatchNorm")
BVLC = BlobLayout(3, "mean, variance, scale factor", ((0, "mean"), (1, "variance")), 1, 2)


def _blob(values: list[float]) -> SimpleNamespace:
    return SimpleNamespace(shape=(len(values),), floats=lambda: list(values))


def _f32(v: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


@pytest.mark.parametrize(("values", "expected"), [
    ([1.0, 2.0, 3.0], None),
    ([3.4e38] * 1000, None),  # large but finite: the sum stays finite in double
    ([0.0, math.nan, 1.0], "NaN at channel 1 (1 non-finite"),
    ([0.0, 1.0, math.inf, -math.inf], "Inf at channel 2 (2 non-finite"),
    ([-math.inf, math.nan], "Inf at channel 0 (2 non-finite"),
])
def test_finite_check(values: list[float], expected: str | None) -> None:
    if expected is None:
        assert check_vector(NET, LAYER, _blob(values), "mean", None) == values
    else:
        with pytest.raises(NumericError, match=re.escape(expected)):
            check_vector(NET, LAYER, _blob(values), "mean", None)


def _first_negative(stored: list[float], factor: float) -> int | None:
    """The definition: Caffe's variance ``stored / s`` as folding computes it in float32."""
    s = _f32(factor)
    f = 0.0 if s == 0 else _f32(1.0 / s)
    return next((i for i, v in enumerate(stored) if _f32(v * f) < 0), None)


@pytest.mark.parametrize(("stored", "factor"), [
    ([1.0, 0.0, 2.0], 999.0),
    ([1.0, -0.0, 2.0], 1.0),
    ([1.0, -1e-45, 2.0], 1e30),  # the product underflows to -0.0: not negative
    ([1.0, -2.0, 2.0], 1.0),
    ([1.0, -2.0, 2.0], 0.0),  # s == 0: Caffe's variance is 0
    ([1.0, 2.0], -3.0),  # a negative scale factor makes every variance negative
    ([0.0, 2.0], 1e-45),  # 1/s overflows float32 to inf
])
def test_variance_check_matches_its_definition(stored: list[float], factor: float) -> None:
    found = {1: stored, 2: [factor]}
    expected = _first_negative(stored, factor)
    if expected is None:
        _check_variance(NET, LAYER, BVLC, found)
    else:
        with pytest.raises(NumericError, match=f"variance is negative at channel {expected} "):
            _check_variance(NET, LAYER, BVLC, found)
