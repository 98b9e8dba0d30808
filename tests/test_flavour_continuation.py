"""Each flavour's ``continuation``: which update rule, which momentum, how exact, on self-built
nets (expected values from each fork's documented formula, written here: BVLC/Intel
1/(maf·s + 1); NVIDIA 1 − moving_average_fraction; PSPNet/yjxiong 1 − bn_param.momentum)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnconvert.api import load_batch_norms
from bnconvert.errors import BnConvertError
from bnconvert.flavours import FLAVOURS

from caffe_builder import blob
from conftest import fork_net

F32 = np.float32


def test_every_convertible_flavour_says_how_it_continues() -> None:
    for flavour in FLAVOURS.values():
        if flavour.id != "bn-unknown":
            assert type(flavour).continuation is not type(FLAVOURS["bn-unknown"]).continuation \
                or flavour.id == "nvcaffe-digits", flavour.id
            assert flavour.running_average in ("scale-factor", "fixed-factor", "none")


def test_intel_continues_like_bvlc(tmp_path: Path) -> None:
    s, maf = 95.2, 0.99
    blobs = [blob([1.0, 2.0, 3.0]), blob([4.0, 5.0, 6.0]), blob([s]), blob([1.0, 1.0, 1.0])]
    prototxt, model = fork_net(tmp_path, "BatchNorm", blobs,
                               f"batch_norm_param {{ moving_average_fraction: {maf} }}")
    (record,) = load_batch_norms(prototxt, model)
    assert record.flavour == "intel" and record.running_average == "scale-factor"
    assert record.momentum == 1 / (float(F32(F32(s) * F32(maf))) + 1)
    assert record.moving_average_fraction == float(F32(maf))
    assert record.momentum_exact == "next step"


@pytest.mark.parametrize("engine, exact", [("", "every step"), ("engine: CUDNN", "every step"),
                                           ("engine: DEFAULT", "every step"),
                                           ("engine: CAFFE", "approximate")])
def test_nvidia_uses_one_minus_maf_by_engine(engine: str, exact: str, tmp_path: Path) -> None:
    blobs = [blob([0.5, 0.6, 0.7]), blob([1.5, 1.6, 1.7]), blob([1.0]), blob([1.0, 2.0, 3.0]),
             blob([0.1, 0.2, 0.3])]
    prototxt, model = fork_net(tmp_path, "BatchNorm", blobs,
                               "batch_norm_param { scale_bias: true moving_average_fraction: "
                               f"0.95 {engine} }}")
    (record,) = load_batch_norms(prototxt, model)
    assert record.flavour == "nvcaffe" and record.running_average == "fixed-factor"
    assert record.momentum == pytest.approx(1 - float(F32(0.95)), abs=1e-9)
    assert record.momentum_exact == exact and record.num_batches_tracked == 0


def test_yjxiong_cudnn_engine_makes_the_momentum_exact(tmp_path: Path) -> None:
    """The fork's cuDNN engine accumulates the unbiased variance with factor 1 − momentum."""
    blobs = [blob([1.0, 1.0, 1.0]), blob([0.0, 0.0, 0.0]), blob([0.1, 0.2, 0.3]),
             blob([1.0, 2.0, 3.0])]
    prototxt, model = fork_net(tmp_path, "BN", blobs, "bn_param { momentum: 0.8 engine: CUDNN }")
    (record,) = load_batch_norms(prototxt, model)
    assert record.flavour == "yjxiong" and record.running_average == "fixed-factor"
    assert record.momentum == float(F32(1) - F32(0.8))
    assert record.momentum_exact == "every step" and record.moving_average_fraction is None


def test_a_bad_engine_is_refused(tmp_path: Path) -> None:
    blobs = [blob([1.0, 1.0, 1.0]), blob([0.0, 0.0, 0.0]), blob([0.1, 0.2, 0.3]),
             blob([1.0, 2.0, 3.0])]
    prototxt, model = fork_net(tmp_path, "BN", blobs, "bn_param { engine: FAST }")
    with pytest.raises(BnConvertError, match=r"bn_param\.engine is 'FAST', expected DEFAULT, "
                                             r"CAFFE or CUDNN"):
        load_batch_norms(prototxt, model)


def test_a_moving_average_fraction_out_of_range_keeps_torchs_momentum(tmp_path: Path) -> None:
    """Caffe's TEST phase never reads it, so the conversion goes on; train mode cannot follow."""
    blobs = [blob([1.0, 2.0, 3.0]), blob([4.0, 5.0, 6.0]), blob([10.0])]
    prototxt, model = fork_net(tmp_path, "BatchNorm", blobs,
                               "batch_norm_param { moving_average_fraction: 1.5 }")
    (record,) = load_batch_norms(prototxt, model)
    message = ("bn: moving_average_fraction is 1.5, expected a value in [0, 1]: no momentum "
               "continues that running average; the converted BN keeps PyTorch's default "
               "momentum 0.1 (eval mode is unaffected)")
    assert (record.momentum, record.momentum_exact) == (0.1, "approximate")
    assert record.warnings == (message,) and record.momentum_note == message
    (chosen,) = load_batch_norms(prototxt, model, momentum="0.2")
    assert chosen.momentum == 0.2 and chosen.warnings == ()
    assert chosen.momentum_note == "--momentum 0.2: " + message
