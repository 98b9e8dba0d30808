"""``verify`` checks fork conversions with each fork's own formula.

The reference is tested against the outputs the real SegNet and PSPNet forks recorded (and the
NVIDIA layout's expected output); ``verify`` must pass what ``convert`` writes for every fork
fixture and fail injected defects naming the layer. Self-built Intel / NVIDIA cases take their
expected values from each fork's documented formula, written out here in float64.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bnconvert.api import convert, load_batch_norms, save
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import load_net
from bnconvert.verify import verify_file
from bnconvert.verify.reference import read_reference_chain
from bnconvert.verify.reference_forks import reference_forward
from bnconvert.verify.walk import walk_chains

from caffe_builder import blob
from conftest import FORKS, fork_net, fork_outputs, invoke_cli

# case, BN layer, recorded input key, recorded output key, exact (run by the fork itself)
CASES = [
    ("segnet/segnet_conv_bn_inference", "conv1_bn", "conv1", "conv1_bn", True),
    ("pspnet/psp_conv_bn_relu", "conv1/bn", "conv1", "conv1/bn", True),
    ("pspnet/psp_fc_bn", "fc1/bn", "fc1", "fc1/bn", True),
    ("nvcaffe/nv_scale_bias_float", "conv1/bn", "conv1/bn/input", "conv1/bn/output", False),
]
IDS = [c[0].split("/")[1] for c in CASES]


def files(case: str, with_prototxt: bool = True) -> tuple[Path | None, Path]:
    folder = FORKS / case
    return (folder / "deploy.prototxt" if with_prototxt else None), folder / "model.caffemodel"


def reference_of(prototxt: Path | None, model: Path, index: int = 0):
    net = load_net(prototxt, model)
    return read_reference_chain(net, pair_batch_norm_chains(net).chains[index])


# --- the reference reproduces the forks' recorded outputs ------------------------------------

@pytest.mark.parametrize("with_prototxt", [True, False], ids=["prototxt", "caffemodel"])
@pytest.mark.parametrize("case,layer,source,target,exact", CASES, ids=IDS)
def test_reference_reproduces_the_forks_outputs(case, layer, source, target, exact,
                                                with_prototxt) -> None:
    data = fork_outputs(case)
    chain = reference_of(*files(case, with_prototxt))
    assert chain.batch_norm == layer
    got = reference_forward(chain, data[source]).output
    assert got.dtype == np.float32 and got.shape == data[target].shape
    if exact:  # run by the fork itself: the float32 steps are the fork's, bit for bit
        np.testing.assert_array_equal(got, data[target])
    else:  # NVIDIA layout: expected = float64 formula rounded to float32 (meta.json)
        error = np.abs(got - data[target]).max() / np.abs(data[target]).max()
        assert error <= 1.2e-7


def test_nvidia_reference_normalized_term_matches_expected() -> None:
    data = fork_outputs("nvcaffe/nv_scale_bias_float")
    forward = reference_forward(reference_of(*files("nvcaffe/nv_scale_bias_float")),
                                data["conv1/bn/input"])
    error = np.abs(forward.normalized - data["conv1/bn/normalized"]).max()
    # float32 steps (subtract, multiply by the rounded (var + eps)^-1/2) vs float64: 2 ulps
    assert error <= 2e-7 * np.abs(data["conv1/bn/normalized"]).max()


# --- verify passes what convert writes --------------------------------------------------------

@pytest.mark.parametrize("ext", [".pt", ".t7"])
@pytest.mark.parametrize("with_prototxt", [True, False], ids=["prototxt", "caffemodel"])
@pytest.mark.parametrize("case,layer,source,target,exact", CASES, ids=IDS)
def test_verify_passes_fork_conversions(case, layer, source, target, exact, with_prototxt, ext,
                                        tmp_path) -> None:
    prototxt, model = files(case, with_prototxt)
    output = tmp_path / f"bn{ext}"
    convert(prototxt, model, output)
    user = fork_outputs(case)[source]
    report = verify_file(prototxt, model, output, user_input=user)
    (row,) = report.chains
    assert report.passed, report.to_json()
    assert row.layers[0] == layer and row.max_rel_err is not None and row.max_rel_err < 3e-7
    assert row.flavour == json.loads(Path(f"{output}.json").read_text())["layers"][0][
        "flavour"]


@pytest.mark.parametrize("case,layer,source,target,exact", CASES, ids=IDS)
def test_verify_passes_fork_pt_without_manifest(case, layer, source, target, exact,
                                                tmp_path) -> None:
    output = tmp_path / "bn.pt"
    convert(*files(case), output, manifest=False)
    report = verify_file(*files(case), output)
    assert report.passed, report.to_json()
    assert report.chains[0].eps_source == "the Caffe files"


def test_verify_cli_passes_a_pspnet_conversion(tmp_path) -> None:
    output = tmp_path / "bn.t7"
    convert(*files("pspnet/psp_conv_bn_relu"), output)
    result = invoke_cli("verify", *map(str, files("pspnet/psp_conv_bn_relu")),
                        str(output), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["chains"]
    assert (row["batch_norm"], row["flavour"], row["status"]) == ("conv1/bn", "yjxiong", "pass")


# --- injected defects fail, naming the layer --------------------------------------------------

def _defect_pspnet_eps(r):
    return replace(r, eps=1e-3)


def _defect_swap_mean_var(r):
    return replace(r, running_mean=r.running_var, running_var=r.running_mean)


def _defect_drop_shift(r):
    return replace(r, bias=np.zeros_like(r.bias))


def _defect_drop_scale(r):
    return replace(r, weight=np.ones_like(r.weight))


def _defect_nvidia_eps_floor_dropped(r):  # max(eps, 1e-5) forgotten: a smaller eps
    return replace(r, eps=1e-8)


DEFECTS = [
    ("pspnet/psp_conv_bn_relu", "conv1/bn", _defect_pspnet_eps),
    ("pspnet/psp_conv_bn_relu", "conv1/bn", _defect_swap_mean_var),
    ("pspnet/psp_fc_bn", "fc1/bn", _defect_swap_mean_var),
    ("segnet/segnet_conv_bn_inference", "conv1_bn", _defect_drop_shift),
    ("segnet/segnet_conv_bn_inference", "conv1_bn", _defect_drop_scale),
    ("nvcaffe/nv_scale_bias_float", "conv1/bn", _defect_drop_scale),
    ("nvcaffe/nv_scale_bias_float", "conv1/bn", _defect_nvidia_eps_floor_dropped),
]


@pytest.mark.parametrize("ext", [".pt", ".t7"])
@pytest.mark.parametrize("case,layer,defect", DEFECTS,
                         ids=[f"{c[0].split('/')[1]}-{c[2].__name__[8:]}" for c in DEFECTS])
def test_injected_defects_fail_naming_the_layer(case, layer, defect, ext, tmp_path) -> None:
    records = [defect(r) for r in load_batch_norms(*files(case))]
    output = tmp_path / f"bn{ext}"
    save(records, output)
    result = invoke_cli("verify", *map(str, files(case)), str(output))
    assert result.exit_code == 1, result.output
    assert f"  {layer}: " in result.stdout and "FAIL" in result.stdout
    (row,) = verify_file(*files(case), output).chains
    assert row.status == "fail" and row.max_rel_err is not None and row.max_rel_err > 1e-5
    assert "channels differ" in (row.reason or "")


# --- self-built cases: each fork's formula written out here ---------------------------------

C = 3


def bn_formula(x, mean, var, eps, weight, bias) -> np.ndarray:
    """y = weight·(x − mean)/sqrt(var + eps) + bias, per channel, in float64."""
    def pc(v):
        return np.asarray(v, np.float64).reshape(1, -1, *(1,) * (x.ndim - 2))
    return pc(weight) * (x.astype(np.float64) - pc(mean)) / np.sqrt(pc(var) + eps) + pc(bias)


X = np.random.default_rng(7).normal(0.5, 3.0, size=(2, C, 4, 4)).astype(np.float32)
MEAN, VAR = [1.0, -2.0, 3.0], [4.0, 5e-6, 6.0]
GAMMA, BETA = [2.0, 0.5, -1.0], [0.1, 0.2, 0.3]
S = 999.98


def intel_blobs(with_beta: bool) -> list:
    s = np.float32(S)
    return [blob(np.float32(MEAN) * s), blob(np.float32(VAR) * s), blob([S]), blob(GAMMA)] + (
        [blob(BETA)] if with_beta else [])


def digits_blobs() -> list:  # legacy DIGITS order: scale, bias, mean, var, reserved
    return [blob(GAMMA), blob(BETA), blob(MEAN), blob(VAR), blob([0.0])]


SELF_BUILT = [  # id, layer type, blobs, params, (mean, var, eps, weight, bias) of the formula
    ("intel-5", "BatchNorm", lambda: intel_blobs(True), "batch_norm_param { eps: 1e-6 }",
     (MEAN, VAR, np.float32(1e-6), GAMMA, BETA)),
    ("intel-4", "BatchNorm", lambda: intel_blobs(False), "",
     (MEAN, VAR, np.float32(1e-5), GAMMA, [0.0] * C)),
    ("nvidia-digits", "BatchNorm", digits_blobs, "batch_norm_param { scale_bias: true eps: 1e-7 }",
     (MEAN, VAR, np.float32(1e-5), GAMMA, BETA)),  # eps = max(eps, 1e-5)
    ("nvidia-digits-batch-stats", "BatchNorm", digits_blobs,
     "batch_norm_param { scale_bias: true use_global_stats: false }",
     (MEAN, VAR, np.float32(1e-5), GAMMA, BETA)),  # NVIDIA ignores use_global_stats in TEST
    ("yjxiong-eps-1e-6", "BN", lambda: [blob(v, [1, C]) for v in (GAMMA, BETA, MEAN, VAR)],
     "bn_param { frozen: true eps: 1e-6 }", (MEAN, VAR, np.float32(1e-6), GAMMA, BETA)),
    ("segnet-inference", "BN", lambda: [blob(GAMMA, [1, C, 1, 1]),
                                                     blob(BETA, [1, C, 1, 1])],
     "bn_param { bn_mode: INFERENCE }", ([0.0] * C, [1.0] * C, 0.0, GAMMA, BETA)),
]


@pytest.mark.parametrize("case", SELF_BUILT, ids=[c[0] for c in SELF_BUILT])
def test_self_built_reference_follows_the_formula(case, tmp_path) -> None:
    _, bn_type, blobs, params, formula = case
    chain = reference_of(*fork_net(tmp_path, bn_type, blobs(), params))
    got = reference_forward(chain, X).output
    want = bn_formula(X, *formula)
    assert np.abs(got - want).max() <= 4e-7 * np.abs(want).max()


@pytest.mark.parametrize("ext", [".pt", ".t7"])
@pytest.mark.parametrize("case", SELF_BUILT, ids=[c[0] for c in SELF_BUILT])
def test_self_built_fork_conversions_verify(case, ext, tmp_path) -> None:
    _, bn_type, blobs, params, _ = case
    prototxt, model = fork_net(tmp_path, bn_type, blobs(), params)
    convert(prototxt, model, tmp_path / f"bn{ext}")
    report = verify_file(prototxt, model, tmp_path / f"bn{ext}")
    assert report.passed, report.to_json()
    assert report.chains[0].max_rel_err < 3e-7


def test_intel_merged_defect_fails(tmp_path) -> None:
    prototxt, model = fork_net(tmp_path, "BatchNorm", intel_blobs(True), "")
    (record,) = load_batch_norms(prototxt, model)
    s = np.float32(S)
    save([replace(record, running_mean=record.running_mean * s)], tmp_path / "bn.pt")
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert (row.flavour, row.status) == ("intel", "fail")


def test_nvidia_use_global_stats_false_is_noted_not_failed(tmp_path) -> None:
    prototxt, model = fork_net(tmp_path, "BatchNorm", digits_blobs(),
                               "batch_norm_param { scale_bias: true use_global_stats: false }")
    convert(prototxt, model, tmp_path / "bn.pt")
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert row.status == "pass"
    assert "NVIDIA Caffe uses the stored statistics in TEST whatever use_global_stats says" \
        in row.notes


# --- SegNet LEARN: batch statistics, cannot match -------------------------------------------

def test_segnet_learn_mode_fails_with_the_reason(tmp_path) -> None:
    prototxt, model = fork_net(tmp_path, "BN", [blob(GAMMA, [1, C, 1, 1]),
                                                blob(BETA, [1, C, 1, 1])], "bn_param { }")
    chain = reference_of(prototxt, model)
    # the fork's LEARN forward: batch mean, biased variance (E[x²] − E[x]²), eps 1e-9
    x64 = X.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    want = bn_formula(X, mean, var, 1e-9, GAMMA, BETA)
    got = reference_forward(chain, X).output
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()
    convert(prototxt, model, tmp_path / "bn.pt")
    result = invoke_cli("verify", str(prototxt), str(model),
                        str(tmp_path / "bn.pt"))
    assert result.exit_code == 1
    assert "  bn: 3 of 3 channels differ" in result.stdout
    assert ("SegNet's BN in bn_mode LEARN (its default) normalizes with each batch's own mean "
            "and variance even in TEST") in result.stdout


# --- PSPNet/yjxiong eps: the fork's own, or the clamp convert --clamp-eps recorded -----------

def _yjxiong(tmp_path: Path) -> tuple[Path, Path]:
    return fork_net(tmp_path, "BN", [blob(v, [1, C]) for v in (GAMMA, BETA, MEAN, VAR)],
                    "bn_param { frozen: true eps: 1e-6 }")


@pytest.mark.parametrize("ext", [".pt", ".t7"])
def test_clamped_eps_recorded_in_the_file_is_checked_as_cudnn_builds(ext, tmp_path) -> None:
    prototxt, model = _yjxiong(tmp_path)
    convert(prototxt, model, tmp_path / f"bn{ext}", clamp_eps=True)
    (row,) = verify_file(prototxt, model, tmp_path / f"bn{ext}").chains
    assert row.status == "pass"
    assert any("raised to 1e-05 as recorded in the converted file (convert --clamp-eps)" in n
               for n in row.notes)


def test_a_state_dict_without_manifest_runs_with_the_forks_eps(tmp_path) -> None:
    # --clamp-eps changes only the eps, which a bare state_dict does not carry
    prototxt, model = _yjxiong(tmp_path)
    convert(prototxt, model, tmp_path / "bn.pt", clamp_eps=True, manifest=False)
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert (row.status, row.eps, row.eps_source) == ("pass", float(np.float32(1e-6)),
                                                     "the Caffe files")
    assert not any("clamp" in n for n in row.notes)


def test_an_eps_other_than_the_clamp_fails(tmp_path) -> None:
    prototxt, model = _yjxiong(tmp_path)
    (record,) = load_batch_norms(prototxt, model)
    save([replace(record, eps=2e-5)], tmp_path / "bn.pt")
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert row.status == "fail" and not any("clamp" in n for n in row.notes)


# --- other references, flavours without a reference -----------------------------------------

def test_opencv_does_not_check_fork_layers(tmp_path) -> None:
    pytest.importorskip("cv2")
    output = tmp_path / "bn.pt"
    convert(*files("pspnet/psp_conv_bn_relu"), output)
    (row,) = verify_file(*files("pspnet/psp_conv_bn_relu"), output, reference="opencv").chains
    assert row.status == "not checked"
    assert row.reason == ("not checked by opencv: opencv runs BVLC layers only; this is a yjxiong "
                          "layer (the numpy reference implements its formula)")


def test_opencv_checks_intel_merged_batch_norm(tmp_path) -> None:
    pytest.importorskip("cv2")
    prototxt, model = fork_net(tmp_path, "BatchNorm", intel_blobs(True), "")
    convert(prototxt, model, tmp_path / "bn.pt")
    report = verify_file(prototxt, model, tmp_path / "bn.pt", reference="opencv")
    assert report.passed, report.to_json()


def test_flavours_without_a_reference_are_not_checked(tmp_path, monkeypatch) -> None:
    import bnconvert.verify.run as run

    output = tmp_path / "bn.pt"
    convert(*files("pspnet/psp_conv_bn_relu"), output)

    def unknown(net, flavour=None):
        return [replace(c, flavour="bn-unknown") for c in walk_chains(net, flavour)]

    monkeypatch.setattr(run, "walk_chains", unknown)
    (row,) = verify_file(*files("pspnet/psp_conv_bn_relu"), output).chains
    assert row.status == "not checked"
    assert row.reason == ("the reference implements bvlc, intel, nvcaffe, nvcaffe-digits, "
                          "segnet, yjxiong; layer 'conv1/bn' (BN) is of flavour 'bn-unknown'")


def test_manifest_flavour_other_than_detected_is_noted(tmp_path) -> None:
    prototxt, model = fork_net(tmp_path, "BatchNorm", [blob(MEAN), blob(VAR), blob([1.0])], "")
    convert(prototxt, model, tmp_path / "bn.pt", flavour="nvcaffe")
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert row.flavour == "bvlc"
    assert any("converted as flavour 'nvcaffe'; checked as 'bvlc'" in n for n in row.notes)
    assert verify_file(prototxt, model, tmp_path / "bn.pt", flavour="nvcaffe").passed



def test_segnet_bn_mode_written_as_a_number_is_inference(tmp_path) -> None:
    # protobuf's text format accepts an enum by number: in the fork `bn_mode: 1` is INFERENCE
    blobs = [blob(GAMMA, [1, C, 1, 1]), blob(BETA, [1, C, 1, 1])]
    prototxt, model = fork_net(tmp_path, "BN", blobs, "bn_param { bn_mode: 1 }")
    assert reference_of(prototxt, model).use_global_stats
    (record,) = load_batch_norms(prototxt, model, strict=True)
    assert record.use_global_stats and record.warnings == ()


def test_intel_merged_batch_norm_with_batch_statistics_warns_and_verify_says_why(tmp_path):
    # Intel's MKL/MKLDNN BatchNorm: use_global_stats = (phase == TEST) unless set, as BVLC's
    prototxt, model = fork_net(tmp_path, "BatchNorm", intel_blobs(True),
                               "batch_norm_param { use_global_stats: false }")
    (record,) = load_batch_norms(prototxt, model)
    assert not record.use_global_stats
    assert any("use_global_stats is false" in w for w in record.warnings)
    convert(prototxt, model, tmp_path / "bn.pt")
    (row,) = verify_file(prototxt, model, tmp_path / "bn.pt").chains
    assert row.status == "fail" and "(use_global_stats: false)" in (row.reason or "")
