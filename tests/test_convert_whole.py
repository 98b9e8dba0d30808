"""convert --whole on every real Caffe fixture: every key's value equals the caffemodel's blob
bit for bit (read independently with the generated protobuf module), BN chains keep today's
keys and values, and fused layers equal the float64 folding formula written out here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bnconvert
from bnconvert.inspect_whole import BECOMES
from bnconvert.naming import key_for_layer_name
from bnconvert.whole.handlers import HANDLERS
from tests.caffe_files import CASE_IDS, CASES, arrays, case_files, definition, stored_blobs

#: tensor names of each Caffe type's blobs, in blob order (the module's parameter names)
TENSOR_NAMES = {"Scale": ("weight", "bias"), "Bias": ("bias",)}


def _numpy(state: dict[str, object]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}  # type: ignore[attr-defined]


def _today(case: Path) -> list[bnconvert.FoldedBatchNorm]:
    """Today's BN-only conversion (none for a net without BatchNorm)."""
    if not any(x.type == "BatchNorm" for x in definition(case).layer):
        return []
    return bnconvert.load_batch_norms(*case_files(case))


def _chain_members(case: Path) -> set[str]:
    """Scale/Bias layers today's BN conversion folds into a BatchNorm."""
    return {n for r in _today(case) for n in r.layers.names()[1:]}


def _as_stored(value: np.ndarray, blob: np.ndarray) -> np.ndarray:
    """The stored blob in the tensor's rank: a legacy blob's leading 1s dropped (only 1s)."""
    extra = blob.ndim - value.ndim
    assert extra >= 0 and all(d == 1 for d in blob.shape[:extra]), (blob.shape, value.shape)
    return blob.reshape(blob.shape[extra:])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kept_keys_equal_caffemodel_blobs(case: Path) -> None:
    state = _numpy(bnconvert.to_state_dict(bnconvert.load_weights(*case_files(case))))
    today = _numpy(bnconvert.to_state_dict(_today(case)))
    members = _chain_members(case)
    expected_keys = set(today)
    for layer in definition(case).layer:
        if layer.name not in stored_blobs(case) or layer.type == "BatchNorm" \
                or layer.name in members:
            continue
        key = key_for_layer_name(layer.name)
        names = TENSOR_NAMES.get(layer.type, ("weight", "bias"))
        for name, blob in zip(names, arrays(case, layer.name), strict=False):
            value = state[f"{key}.{name}"]
            assert value.dtype == np.float32
            assert np.array_equal(value, _as_stored(value, blob)), f"{key}.{name}"
            expected_keys.add(f"{key}.{name}")
    assert set(state) == expected_keys
    for key, value in today.items():  # BN chains: today's keys and values, bit for bit
        assert np.array_equal(state[key], value) and state[key].dtype == value.dtype, key


def _bn_effective(case: Path, bn: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Caffe's TEST statistics written out: f = 0 if s == 0 else 1/s (float32)."""
    mean_acc, var_acc, s = arrays(case, bn)
    factor = np.float32(0) if s.ravel()[0] == 0 else np.float32(1) / np.float32(s.ravel()[0])
    layer = next(x for x in definition(case).layer if x.name == bn)
    eps = float(np.float32(layer.batch_norm_param.eps))
    return (mean_acc.ravel() * factor).astype(np.float32), \
        (var_acc.ravel() * factor).astype(np.float32), eps


def _expected_fused(case: Path, record: object) -> tuple[np.ndarray, np.ndarray]:
    """W' = W·γ/√(var+eps), b' = (b − mean)·γ/√(var+eps) + β, in float64, stored float32."""
    fused = record.fused  # type: ignore[attr-defined]
    mean, var, eps = _bn_effective(case, fused.batch_norm)
    gamma = np.ones(mean.shape) if fused.scale is None else arrays(case, fused.scale)[0].ravel()
    beta = np.zeros(mean.shape)
    if fused.scale is not None and len(arrays(case, fused.scale)) > 1:
        beta = arrays(case, fused.scale)[1].ravel().astype(np.float64)
    stored = arrays(case, record.name)  # type: ignore[attr-defined]
    w = stored[0].astype(np.float64)
    b = stored[1].ravel().astype(np.float64) if len(stored) > 1 else np.zeros(mean.shape)
    m = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    weight = w * m.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = (b - mean.astype(np.float64)) * m + beta
    return weight.astype(np.float32), bias.astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fused_layers_equal_the_formula(case: Path) -> None:
    records = bnconvert.load_weights(*case_files(case), fold="fuse")
    state = _numpy(bnconvert.to_state_dict(records))
    fused = [r for r in records if getattr(r, "fused", None) is not None]
    for record in fused:
        weight, bias = _expected_fused(case, record)
        key = key_for_layer_name(record.name)
        assert np.array_equal(state[f"{key}.weight"], weight), record.name
        assert np.array_equal(state[f"{key}.bias"], bias), record.name
        assert not any(k.startswith(key_for_layer_name(record.fused.batch_norm) + ".")
                       for k in state)


def test_fuse_happens_where_the_graph_allows() -> None:
    """conv→BN chains fuse; BNs on the net input, after Concat or Eltwise, or with batch
    statistics stay BatchNorms and say why."""
    fused = {c.name: sorted(r.name for r in bnconvert.load_weights(*case_files(c), fold="fuse")
                            if getattr(r, "fused", None)) for c in CASES}
    assert fused["resnet_block"] == ["res2a_branch1", "res2a_branch2a", "res2a_branch2b",
                                     "res2a_branch2c"]
    assert fused["fc_bn"] == ["fc1"] and fused["bn_only"] == ["conv1"]
    assert fused["global_stats_false"] == [] and fused["zero_scale_factor"] == []
    assert fused["densenet_block"] == ["conv2_1/x1", "conv2_2/x1", "conv2_3/x1"]
    preact = CASES[CASE_IDS.index("whole/preact_resnet_block")]
    records = bnconvert.load_weights(*case_files(preact), fold="fuse")
    notes = [w for r in records for w in r.warnings]
    assert "res5_bn: not fused, kept as a BatchNorm: its input comes from 'res4_eletwise' " \
           "(Eltwise), not a Convolution, Deconvolution or InnerProduct" in notes


def test_inspect_table_knows_every_handled_type() -> None:
    assert set(HANDLERS) == set(BECOMES)
