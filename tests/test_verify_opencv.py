"""The optional references. OpenCV (``opencv-python-headless<5``, in the ``test`` extra) runs
here and in CI: its output on each supported chain matches what real Caffe recorded, and
``verify --reference opencv`` reports the chains it cannot run as not checked. pycaffe is
tested only where ``import caffe`` works."""

from __future__ import annotations

import importlib.util
import json

import cv2  # noqa: F401  (the test extra installs it: fail loudly if it is missing)
import numpy as np
import pytest

from bnconvert.api import convert
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import load_net
from bnconvert.verify import ReferenceUnavailableError, verify_file
from bnconvert.verify.compare import measure
from bnconvert.verify.external import Unsupported, external_reference
from bnconvert.verify.reference import ChainForward, caffe_chain_forward, read_caffe_chain

from conftest import CAFFE, bn_caffemodel, caffe_files, invoke_cli

CASES = sorted(p.name for p in CAFFE.iterdir() if (p / "outputs.npz").exists())
NOT_BY_OPENCV = {
    "scale_nobias_then_bias": "OpenCV has no Bias layer ('bias1')",
    "global_stats_false": "OpenCV does not run use_global_stats: false (batch statistics) on a "
                          "batch",
}
HAS_PYCAFFE = importlib.util.find_spec("caffe") is not None


@pytest.mark.parametrize("case", CASES)
def test_opencv_reproduces_the_caffe_outputs_or_says_what_it_cannot_run(case):
    net = load_net(*caffe_files(case))
    outputs = np.load(CAFFE / case / "outputs.npz")
    expected = json.loads((CAFFE / case / "expected_bn.json").read_text())
    opencv = external_reference("opencv")
    for chain, entry in zip(pair_batch_norm_chains(net).chains, expected, strict=True):
        caffe = read_caffe_chain(net, chain)
        x = outputs[entry["producer"]]
        got = opencv(caffe, x)
        if case in NOT_BY_OPENCV:
            assert got == Unsupported(NOT_BY_OPENCV[case])
            continue
        truth = outputs[entry["chain"][-1]]
        ours = caffe_chain_forward(caffe, x)
        real = ChainForward(truth, ours.normalized, ours.mean, ours.std)
        result = measure(np.asarray(got, np.float64), real, caffe.gamma, caffe.beta)
        assert result.passed and result.max_rel_err < 3e-7, (case, result)


@pytest.mark.parametrize("case", sorted(set(CASES) - set(NOT_BY_OPENCV)))
def test_verify_with_the_opencv_reference_passes_converted_files(tmp_path, case):
    output = tmp_path / "bn.pt"
    convert(*caffe_files(case), output)
    result = invoke_cli("verify", *map(str, caffe_files(case)), str(output),
                        "--reference", "opencv")
    assert result.exit_code == 0, result.output
    assert "against the opencv reference" in result.stdout


def test_verify_with_opencv_catches_a_defect(tmp_path):
    import torch

    output = tmp_path / "bn.pt"
    convert(*caffe_files("resnet_block"), output, manifest=False)  # edited below: no manifest fits
    state = torch.load(output, weights_only=True)
    state["bn2a_branch2a.running_var"] *= 95.20792388916016
    torch.save(state, output)
    report = verify_file(*caffe_files("resnet_block"), output, reference="opencv")
    assert [r.status for r in report.chains] == ["pass", "fail", "pass", "pass"]


@pytest.mark.parametrize("case", sorted(NOT_BY_OPENCV))
def test_chains_opencv_cannot_run_are_not_checked_rather_than_failed(tmp_path, case):
    output = tmp_path / "bn.pt"
    convert(*caffe_files(case), output)
    result = invoke_cli("verify", *map(str, caffe_files(case)), str(output),
                        "--reference", "opencv", "--json")
    report = json.loads(result.stdout)
    (row,) = report["chains"]
    assert row["status"] == "not checked"
    assert row["reason"] == f"not checked by opencv: {NOT_BY_OPENCV[case]}"
    # Nothing was verified, so CI must not go green.
    assert report["verdict"] == "nothing checked" and result.exit_code == 1


def test_double_data_blobs_are_not_checked_by_opencv(tmp_path):
    path = bn_caffemodel(tmp_path, [2, 2, 3, 3], ([1.0, 2.0], [3.0, 4.0], [2.0]), double=True)
    convert(None, path, tmp_path / "bn.pt")
    report = verify_file(None, path, tmp_path / "bn.pt", reference="opencv")
    assert report.chains[0].status == "not checked"
    assert "double_data" in (report.chains[0].reason or "")
    assert verify_file(None, path, tmp_path / "bn.pt").passed  # the numpy reference checks it


@pytest.mark.skipif(HAS_PYCAFFE, reason="pycaffe is installed")
def test_pycaffe_reference_without_pycaffe_is_a_usage_error(tmp_path):
    with pytest.raises(ReferenceUnavailableError, match="--reference pycaffe needs 'import "
                                                        "caffe', which failed"):
        external_reference("pycaffe")
    result = invoke_cli("verify", *map(str, caffe_files("bn_only")),
                        str(tmp_path / "missing.pt"), "--reference", "pycaffe")
    assert result.exit_code == 2


@pytest.mark.skipif(not HAS_PYCAFFE, reason="pycaffe (import caffe) is not installed")
@pytest.mark.parametrize("case", CASES)
def test_pycaffe_reference_matches_the_recorded_outputs(case):
    net = load_net(*caffe_files(case))
    outputs = np.load(CAFFE / case / "outputs.npz")
    expected = json.loads((CAFFE / case / "expected_bn.json").read_text())
    pycaffe = external_reference("pycaffe")
    for chain, entry in zip(pair_batch_norm_chains(net).chains, expected, strict=True):
        got = pycaffe(read_caffe_chain(net, chain), outputs[entry["producer"]])
        truth = outputs[entry["chain"][-1]]
        assert np.abs(np.asarray(got, np.float64) - truth).max() <= 1e-6 * np.abs(truth).max()
