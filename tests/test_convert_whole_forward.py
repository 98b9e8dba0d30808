"""Kept and fused outputs of convert --whole as PyTorch computes them: every record loads with
``load_state_dict(strict=True)`` into the module it names, each learned layer's module
reproduces Caffe's recorded output, and conv→BN (kept) and the fused conv give the BN chain's
recorded output within float32 rounding of its magnitude."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bnconvert
import bnconvert.modules as caffe_modules
from bnconvert.naming import key_for_layer_name
from bnconvert.records import ConvertedLayer, FoldedBatchNorm
from tests.caffe_files import (
    CASE_IDS,
    CASES,
    case_files,
    definition,
    layer_index,
    outputs,
    value_before,
)
from tests.whole_fixtures import relative_error

TOLERANCE = 4e-6  # float32 rounding of the magnitude, through a conv and a BN


def build_module(record: ConvertedLayer) -> torch.nn.Module:
    """The module a record names, from its manifest description alone."""
    info = record.describe()
    if isinstance(record, FoldedBatchNorm):
        cls = getattr(torch.nn, info["module"])
        return cls(info["channels"], eps=info["eps"], affine=info["affine"])
    args: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                            for k, v in info["arguments"].items()}
    module = info["module"]
    if module.startswith("bnconvert.modules."):
        return getattr(caffe_modules, module.rsplit(".", 1)[1])(**args)
    return getattr(torch.nn, module)(**args)


def _state(records: list[ConvertedLayer]) -> dict[str, torch.Tensor]:
    return bnconvert.to_state_dict(records)


def _own(state: dict[str, torch.Tensor], record: ConvertedLayer) -> dict[str, torch.Tensor]:
    prefix = key_for_layer_name(record.name) + "."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("fold", ["keep", "fuse"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_record_loads_strictly(case: Path, fold: str) -> None:
    records = bnconvert.load_weights(*case_files(case), fold=fold)
    state = _state(records)
    for record in records:
        build_module(record).load_state_dict(_own(state, record), strict=True)


def _run(record: ConvertedLayer, state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    module = build_module(record)
    module.load_state_dict(_own(state, record), strict=True)
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def _chain_end(case: Path, record: Any) -> str:
    fused = record.fused
    return fused.bias or fused.scale or fused.batch_norm


def _fused_cases() -> list[tuple[Path, str]]:
    out = []
    for case in CASES:
        records = bnconvert.load_weights(*case_files(case), fold="fuse")
        out += [(case, r.name) for r in records if getattr(r, "fused", None) is not None]
    return out


FUSED = _fused_cases()


@pytest.mark.parametrize(("case", "conv"), FUSED, ids=[f"{c.name}:{n}" for c, n in FUSED])
def test_kept_and_fused_give_caffes_output(case: Path, conv: str) -> None:
    kept = bnconvert.load_weights(*case_files(case))
    fused = bnconvert.load_weights(*case_files(case), fold="fuse")
    record = next(r for r in fused if r.name == conv)
    end = _chain_end(case, record)
    layer = definition(case).layer[layer_index(case, conv)]
    x = value_before(case, layer_index(case, conv), layer.bottom[0])
    reference = outputs(case)[end]
    got_fused = _run(record, _state(fused), x)
    by_name = {r.name: r for r in kept}
    state = _state(kept)
    got_kept = _run(by_name[record.fused.batch_norm], state, _run(by_name[conv], state, x))
    assert relative_error(got_fused, reference) < TOLERANCE
    assert relative_error(got_kept, reference) < TOLERANCE
    assert relative_error(got_fused, got_kept) < TOLERANCE


MISC = CASES[CASE_IDS.index("whole/misc_layers")]
VGG = CASES[CASE_IDS.index("whole/vgg_style_lrn")]


@pytest.mark.parametrize(("case", "name"), [
    (MISC, "deconv1"), (MISC, "deconv2"), (MISC, "deconv3"), (MISC, "prelu1"),
    (MISC, "prelu2"), (MISC, "scale_nb"), (MISC, "scale_b"), (MISC, "bias1"),
    (VGG, "conv1"), (VGG, "conv2"), (VGG, "conv3"), (VGG, "fc7")])
def test_learned_layer_modules_reproduce_caffe(case: Path, name: str) -> None:
    records = bnconvert.load_weights(*case_files(case))
    record = next(r for r in records if r.name == name)
    index = layer_index(case, name)
    x = value_before(case, index, definition(case).layer[index].bottom[0])
    got = _run(record, _state(records), x)
    assert relative_error(got, outputs(case)[name]) < TOLERANCE


def test_fused_deconvolution_with_groups() -> None:
    """Deconvolution's output channel is axis 1 of its weight within each group: the fused
    weights give conv_transpose(x)·m + b' for every output channel."""
    from bnconvert.whole.fuse_numeric import fused_bias, fused_weight

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)  # C_in 6, group 3, C_out 6
    m = rng.uniform(0.5, 2, 6)
    mean, beta = rng.standard_normal(6), rng.standard_normal(6)
    x = torch.from_numpy(rng.standard_normal((1, 6, 5, 5)).astype(np.float32))
    plain = F.conv_transpose2d(x.double(), torch.from_numpy(weight).double(), groups=3)
    expected = (plain - torch.from_numpy(mean).view(1, -1, 1, 1)) \
        * torch.from_numpy(m).view(1, -1, 1, 1) + torch.from_numpy(beta).view(1, -1, 1, 1)
    got = F.conv_transpose2d(x, torch.from_numpy(fused_weight(weight, m, True, 3)),
                             torch.from_numpy(fused_bias(None, mean, m, beta)), groups=3)
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-5)
