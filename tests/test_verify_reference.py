"""The numpy reference of Caffe's BatchNorm/Scale/Bias forward against what real Caffe computed.

Ground truth: ``outputs.npz`` of every fixture case (each layer's top as BVLC Caffe produced it).
Input of a chain = the output of the BatchNorm's producer; expected = each chain layer's output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnconvert.errors import BlobError, MissingLayerError
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import load_net
from bnconvert.verify.reference import (
    caffe_batch_norm,
    caffe_chain_forward,
    read_caffe_chain,
)

from conftest import CAFFE, bn_caffemodel

CASES = sorted(p.name for p in CAFFE.iterdir() if (p / "outputs.npz").exists())


def _chains(case: str):
    folder = CAFFE / case
    net = load_net(folder / "deploy.prototxt", folder / "model.caffemodel")
    expected = json.loads((folder / "expected_bn.json").read_text())
    chains = pair_batch_norm_chains(net).chains
    assert [c.batch_norm.name for c in chains] == [e["bn"] for e in expected]
    return net, chains, expected, np.load(folder / "outputs.npz")


def test_every_fixture_case_is_covered():
    assert len(CASES) == 9 and "global_stats_false" in CASES


@pytest.mark.parametrize("case", CASES)
def test_reference_reproduces_every_chain_layer_caffe_ran(case):
    net, chains, expected, outputs = _chains(case)
    for chain, exp in zip(chains, expected, strict=True):
        caffe = read_caffe_chain(net, chain)
        assert list(caffe.layers) == exp["chain"]
        x = outputs[exp["producer"]]
        for upto, name in enumerate(caffe.layers, start=1):
            partial = _truncated(caffe, upto)
            got = caffe_chain_forward(partial, x).output
            want = outputs[name]
            assert got.dtype == np.float32 and got.shape == want.shape
            if caffe.use_global_stats:
                # Same float32 operations in the same order as Caffe: bit-identical.
                np.testing.assert_array_equal(got, want, err_msg=f"{case}/{name}")
            else:
                # Batch statistics: only the summation order differs from Caffe's gemv.
                rel = np.abs(got.astype(np.float64) - want).max() / np.abs(want).max()
                assert rel < 1e-6, f"{case}/{name}: {rel:.3g}"


def _truncated(caffe, upto):
    """The chain cut after its first ``upto`` layers (to compare each layer's own output)."""
    from dataclasses import replace

    keep = caffe.layers[:upto]
    scale_kept = upto >= 2 and caffe.gamma is not None
    return replace(caffe, layers=keep,
                   gamma=caffe.gamma if scale_kept else None,
                   beta=caffe.beta if scale_kept else None,
                   bias=caffe.bias if len(keep) == len(caffe.layers) else None)


def test_global_stats_false_uses_the_batch_statistics_not_the_stored_ones():
    net, chains, expected, outputs = _chains("global_stats_false")
    caffe = read_caffe_chain(net, chains[0])
    assert not caffe.use_global_stats
    x = outputs[expected[0]["producer"]].astype(np.float64)
    forward = caffe_chain_forward(caffe, outputs[expected[0]["producer"]])
    np.testing.assert_allclose(forward.mean, x.mean(axis=(0, 2, 3)), rtol=1e-6)
    biased = x.var(axis=(0, 2, 3))  # numpy's default ddof=0: the biased variance
    np.testing.assert_allclose(forward.std, np.sqrt(biased + caffe.eps), rtol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_raw_parameters_match_the_fixture_metadata(case):
    net, chains, expected, _ = _chains(case)
    for chain, exp in zip(chains, expected, strict=True):
        caffe = read_caffe_chain(net, chain)
        assert float(caffe.eps) == exp["eps"]
        assert float(caffe.scale_factor) == exp["scale_factor"]
        assert caffe.channels == exp["channels"] and caffe.rank == exp["rank"]
        assert caffe.use_global_stats == exp["use_global_stats"]
        assert caffe.reads_net_input == (exp["producer"] == "data")


# Edge cases the fixtures lack; expected values from the documented formula, in float64.

def _formula(x, mean_acc, var_acc, s, eps):
    f = 0.0 if s == 0 else 1.0 / s
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = (np.asarray(mean_acc, np.float64) * f).reshape(shape)
    var = (np.asarray(var_acc, np.float64) * f).reshape(shape)
    return (x.astype(np.float64) - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("shape", [(7, 3), (2, 3, 5), (2, 3, 4, 4), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("s", [0.0, 1.0, 999.98])
def test_batch_norm_formula_for_every_rank_and_scale_factor(shape, s):
    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 3.0, size=shape).astype(np.float32)
    mean_acc = rng.normal(0, 5, 3).astype(np.float32)
    var_acc = rng.uniform(1, 9, 3).astype(np.float32)
    y, _, _ = caffe_batch_norm(x, mean_acc, var_acc, s, 1e-5)
    want = _formula(x, mean_acc, var_acc, s, np.float32(1e-5))
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


def test_zero_scale_factor_ignores_non_zero_statistics():
    x = np.array([[1.0, -2.0]], np.float32)
    y, mean, std = caffe_batch_norm(x, np.array([5.0, 6.0], np.float32),
                                    np.array([7.0, 8.0], np.float32), 0.0, 1e-5)
    assert mean.tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(y, x / np.sqrt(np.float32(1e-5)))


def _bn_caffemodel(tmp_path, blobs, *, double=False):
    return load_net(None, bn_caffemodel(tmp_path, [2, 3, 4, 4], blobs, double=double))


def test_double_data_blobs_are_read_and_the_net_input_is_detected(tmp_path):
    net = _bn_caffemodel(tmp_path, [[1, 2, 3], [4, 5, 6], [2]], double=True)
    caffe = read_caffe_chain(net, pair_batch_norm_chains(net).chains[0])
    assert caffe.mean_acc.tolist() == [1, 2, 3] and caffe.mean_acc.dtype == np.float32
    assert caffe.scale_factor == 2 and caffe.reads_net_input


def test_wrong_blob_count_is_a_blob_error(tmp_path):
    net = _bn_caffemodel(tmp_path, [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(BlobError, match=r"layer 'bn' \(BatchNorm\): expected 3 blobs "
                                        r"\(mean, variance, scale factor\), found 2"):
        read_caffe_chain(net, pair_batch_norm_chains(net).chains[0])


def test_mismatched_variance_length_is_a_blob_error(tmp_path):
    net = _bn_caffemodel(tmp_path, [[1, 2, 3], [4, 5], [1]])
    with pytest.raises(BlobError, match=r"blob 1 \(variance\) holds 2 values, expected 3"):
        read_caffe_chain(net, pair_batch_norm_chains(net).chains[0])


def test_a_prototxt_without_weights_is_a_missing_layer_error(tmp_path):
    net = load_net(CAFFE / "bn_only" / "deploy.prototxt", None)
    with pytest.raises(MissingLayerError, match="has no weights in the caffemodel"):
        read_caffe_chain(net, pair_batch_norm_chains(net).chains[0])
