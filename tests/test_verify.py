"""``bnconvert verify``: passes the files ``convert`` writes, fails injected defects naming the
layer, and tells why ``use_global_stats: false`` cannot be reproduced. Driven by the real Caffe
fixtures; the converted files are written by ``bnconvert.api.convert``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert.api import convert
from bnconvert.verify import DEFAULT_ATOL, DEFAULT_RTOL, verify_file
from bnconvert.write.fingerprint import fingerprint

from conftest import CAFFE, bn_caffemodel, caffe_files, invoke_cli, run_cli

CASES = sorted(p.name for p in CAFFE.iterdir() if (p / "model.caffemodel").exists())
PASSING = [c for c in CASES if c != "global_stats_false"]
RESNET = ["bn2a_branch1", "bn2a_branch2a", "bn2a_branch2b", "bn2a_branch2c"]
S = 95.20792388916016  # the fixtures' scale factor


def _convert(case: str, output: Path, **kwargs) -> Path:
    convert(*caffe_files(case), output, **kwargs)
    return output


def _cli(*args: object) -> tuple[int, str, str]:
    return run_cli("verify", *args)


def _statuses(report) -> dict[str, str]:
    return {row.layers[0]: row.status for row in report.chains}


# --- the files convert writes pass -----------------------------------------------------------

@pytest.mark.parametrize("ext", [".pt", ".safetensors", ".t7"])
@pytest.mark.parametrize("case", PASSING)
def test_verify_passes_every_file_convert_wrote(tmp_path, case, ext):
    output = _convert(case, tmp_path / f"bn{ext}")
    report = verify_file(*caffe_files(case), output)
    assert report.passed, report.to_json()
    assert report.manifest == str(output) + ".json"
    for row in report.chains:
        assert row.max_rel_err is not None and row.max_rel_err < 3e-7  # float32 rounding only


def test_verify_passes_a_torch7_sequential_and_names_modules_by_index(tmp_path):
    output = _convert("resnet_block", tmp_path / "bn.t7",
                      t7_layout="sequential")
    report = verify_file(*caffe_files("resnet_block"), output)
    assert report.passed and [r.key for r in report.chains] == ["1", "2", "3", "4"]
    assert all(r.eps_source == "the .t7 module" for r in report.chains)


@pytest.mark.parametrize("case", PASSING)
def test_cli_exit_0_and_one_row_per_chain(tmp_path, case):
    output = _convert(case, tmp_path / "bn.pt")
    code, out, _ = _cli(*caffe_files(case), output)
    assert code == 0, out
    expected = json.loads((CAFFE / case / "expected_bn.json").read_text())
    for entry in expected:
        assert " -> ".join(entry["chain"]) in out
    assert out.rstrip().endswith(f"verdict: PASS ({len(expected)} pass, 0 fail, 0 not checked)")


def test_a_state_dict_without_manifest_takes_eps_and_rank_from_caffe(tmp_path):
    output = _convert("eps_custom", tmp_path / "bn.pt", manifest=False)
    report = verify_file(*caffe_files("eps_custom"), output)
    assert report.passed and report.manifest is None
    (row,) = report.chains
    assert row.eps == pytest.approx(1e-3, rel=1e-7) and row.eps_source == "the Caffe files"


def test_fc_bn_runs_as_batchnorm1d_on_2d_inputs(tmp_path):
    report = verify_file(*caffe_files("fc_bn"), _convert("fc_bn", tmp_path / "bn.pt"))
    (row,) = report.chains
    assert row.status == "pass" and row.inputs == ("random [64, 6] (seed 0)",)


# --- use_global_stats: false cannot be reproduced --------------------------------------------

def test_global_stats_false_fails_and_says_why(tmp_path):
    output = _convert("global_stats_false", tmp_path / "bn.pt")
    code, out, _ = _cli(*caffe_files("global_stats_false"), output)
    assert code == 1
    assert "bn1 -> scale1  bn1" in out and "FAIL" in out
    assert ("Caffe normalizes this layer with each batch's own mean and variance "
            "(use_global_stats: false), while an eval-mode BatchNorm uses the stored running "
            "statistics") in " ".join(out.split())


# --- injected defects: each fails, naming the right layer ------------------------------------

@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor], dict]:
    folder = tmp_path_factory.mktemp("resnet")
    output = _convert("resnet_block", folder / "bn.pt")
    state = torch.load(output, weights_only=True)
    return output, state, json.loads(Path(str(output) + ".json").read_text())


def _inject(tmp_path, resnet, edit, manifest_edit=None) -> Path:
    _, state, manifest = resnet
    state = {k: v.clone() for k, v in state.items()}
    manifest = json.loads(json.dumps(manifest))
    edit(state)
    if manifest_edit:
        manifest_edit(manifest)
    path = tmp_path / "injected.pt"
    torch.save(state, path)
    # As a defective converter would write it: a manifest that describes its own output.
    manifest["file_fingerprint"] = fingerprint(path)
    Path(str(path) + ".json").write_text(json.dumps(manifest))
    return path


def _scale_stats(layer):
    def edit(sd):
        sd[f"{layer}.running_mean"] *= S
        sd[f"{layer}.running_var"] *= S
    return edit


def _drop_scale(layer):
    def edit(sd):
        sd[f"{layer}.weight"].fill_(1)
        sd[f"{layer}.bias"].fill_(0)
    return edit


def _swap_stats(layer):
    def edit(sd):
        mean = sd[f"{layer}.running_mean"].clone()
        sd[f"{layer}.running_mean"].copy_(sd[f"{layer}.running_var"])
        sd[f"{layer}.running_var"].copy_(mean)
    return edit


def _permute(layer):
    def edit(sd):
        for name in ("weight", "bias", "running_mean", "running_var"):
            tensor = sd[f"{layer}.{name}"]
            tensor[[0, 1]] = tensor[[1, 0]].clone()
    return edit


def _manifest_eps(layer, eps):
    def edit(manifest):
        (entry,) = [e for e in manifest["layers"] if e["key"] == layer]
        entry["eps"] = eps
    return edit


DEFECTS = {
    "a_stats_times_scale_factor": ("bn2a_branch1", _scale_stats, None),
    "b_eps_1e-3_in_manifest": ("bn2a_branch2a", None, lambda layer: _manifest_eps(layer, 1e-3)),
    "c_scale_dropped": ("bn2a_branch2b", _drop_scale, None),
    "d_mean_and_var_swapped": ("bn2a_branch2c", _swap_stats, None),
    "e_two_channels_permuted": ("bn2a_branch2b", _permute, None),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_injected_defect_fails_naming_its_layer(tmp_path, resnet, defect):
    layer, edit, manifest_edit = DEFECTS[defect]
    path = _inject(tmp_path, resnet, edit(layer) if edit else (lambda sd: None),
                   manifest_edit(layer) if manifest_edit else None)
    report = verify_file(*caffe_files("resnet_block"), path)
    assert _statuses(report) == {name: "fail" if name == layer else "pass" for name in RESNET}
    code, out, _ = _cli(*caffe_files("resnet_block"), path)
    assert code == 1
    failing = [line for line in out.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(failing) == 1 and failing[0].startswith(f"{layer} -> ")
    assert f"  {layer}: " in out and "channels differ" in out


@pytest.mark.parametrize("field", ["weight", "bias", "running_mean", "running_var"])
@pytest.mark.parametrize("layer", RESNET)
def test_one_value_off_by_one_part_in_1e3_fails_that_layer(tmp_path, resnet, layer, field):
    _, state, _ = resnet
    channel = int(state[f"{layer}.{field}"].abs().argmax())  # a value that matters

    def edit(sd):
        sd[f"{layer}.{field}"][channel] *= 1 + 1e-3

    report = verify_file(*caffe_files("resnet_block"), _inject(tmp_path, resnet, edit))
    assert _statuses(report) == {name: "fail" if name == layer else "pass" for name in RESNET}
    (row,) = [r for r in report.chains if r.layers[0] == layer]
    assert row.worst_channel == channel and f"differ ({channel})" in row.reason


def test_the_untouched_file_passes_after_a_round_trip(tmp_path, resnet):
    report = verify_file(*caffe_files("resnet_block"), _inject(tmp_path, resnet, lambda sd: None))
    assert report.passed and _statuses(report) == dict.fromkeys(RESNET, "pass")


# --- the tolerance sits between float32 rounding and eps-in-std ------------------------------

def test_float32_rounding_of_every_parameter_passes(tmp_path, resnet):
    def edit(sd):  # every stored value moved by one ulp, away from zero
        for tensor in sd.values():
            if tensor.is_floating_point():
                values = tensor.numpy()
                tensor.copy_(torch.from_numpy(np.nextafter(values, values * 2 + np.sign(values))))

    assert verify_file(*caffe_files("resnet_block"), _inject(tmp_path, resnet, edit)).passed


@pytest.mark.parametrize("layer", RESNET)
def test_eps_added_to_the_std_instead_of_the_variance_fails(tmp_path, resnet, layer):
    eps = float(np.float32(1e-5))

    def edit(sd):  # sqrt(var' + eps) == sqrt(var) + eps
        var = sd[f"{layer}.running_var"].double()
        sd[f"{layer}.running_var"].copy_(((var.sqrt() + eps) ** 2 - eps).float())

    report = verify_file(*caffe_files("resnet_block"), _inject(tmp_path, resnet, edit))
    assert _statuses(report) == {name: "fail" if name == layer else "pass" for name in RESNET}
    (row,) = [r for r in report.chains if r.layers[0] == layer]
    assert 2e-6 < row.max_rel_err < 1e-5


def test_rtol_override_lets_a_larger_error_pass(tmp_path, resnet):
    path = _inject(tmp_path, resnet, lambda sd: sd["bn2a_branch1.bias"].mul_(1 + 1e-3))
    assert _cli(*caffe_files("resnet_block"), path)[0] == 1
    assert _cli(*caffe_files("resnet_block"), path, "--rtol", "1e-2")[0] == 0
    assert _cli(*caffe_files("resnet_block"), path, "--atol", "1")[0] == 0


# --- inputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["zero_scale_factor", "scale_nobias_then_bias"])
def test_user_input_is_used_where_the_bn_reads_the_net_input(tmp_path, case):
    output = _convert(case, tmp_path / "bn.pt")
    user = np.load(CAFFE / case / "input.npy")
    report = verify_file(*caffe_files(case), output, user_input=user)
    (row,) = report.chains
    assert row.status == "pass" and row.inputs[1] == f"--input {list(user.shape)}"


def test_user_input_is_not_propagated_through_other_layers(tmp_path):
    output = _convert("resnet_block", tmp_path / "bn.pt")
    code, out, _ = _cli(*caffe_files("resnet_block"), output, "--input",
                        CAFFE / "resnet_block" / "input.npy")
    assert code == 0
    for layer in RESNET:
        assert (f"{layer}: --input not used: this BatchNorm's input is computed by layers "
                "verify does not run") in out


def test_inputs_are_seeded(tmp_path):
    output = _convert("bn_scale_bias", tmp_path / "bn.pt")
    first = verify_file(*caffe_files("bn_scale_bias"), output, seed=3).chains[0]
    again = verify_file(*caffe_files("bn_scale_bias"), output, seed=3).chains[0]
    other = verify_file(*caffe_files("bn_scale_bias"), output, seed=4).chains[0]
    assert first == again and first.inputs == ("random [4, 4, 6, 6] (seed 3)",)
    assert other.inputs == ("random [4, 4, 6, 6] (seed 4)",)


# --- report, exit codes, read errors ---------------------------------------------------------

def test_json_report(tmp_path, resnet):
    path = _inject(tmp_path, resnet, _drop_scale("bn2a_branch2b"))
    code, out, _ = _cli(*caffe_files("resnet_block"), path, "--json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "fail"
    assert report["summary"] == {"pass": 3, "fail": 1, "not checked": 0}
    assert (report["rtol"], report["atol"], report["reference"]) == (1e-6, 0.0, "numpy")
    row = report["chains"][2]
    assert row["caffe_layers"] == ["bn2a_branch2b", "scale2a_branch2b"]
    assert row["status"] == "fail" and row["max_rel_err"] > 0.1 and row["key"] == "bn2a_branch2b"


def test_a_missing_module_fails_its_layer(tmp_path, resnet):
    path = _inject(tmp_path, resnet, lambda sd: None,
                   lambda m: m["layers"][3].update(key="renamed"))
    report = verify_file(*caffe_files("resnet_block"), path)
    assert report.chains[3].status == "fail"
    assert report.chains[3].reason == f"no 'renamed.running_mean' in {path}"
    assert report.notes == ("modules no Caffe BatchNorm accounts for (not checked): "
                            "bn2a_branch2c",)


def test_a_module_that_cannot_be_loaded_fails_with_the_torch_message(tmp_path, resnet):
    path = _inject(tmp_path, resnet, lambda sd: sd.pop("bn2a_branch1.weight"))
    row = verify_file(*caffe_files("resnet_block"), path).chains[0]
    assert row.status == "fail"
    assert row.reason.startswith("bn2a_branch1: load_state_dict into BatchNorm2d(16) failed")


def test_caffemodel_alone_defines_the_net(tmp_path):
    output = _convert("resnet_block", tmp_path / "bn.pt")
    code, out, _ = _cli(CAFFE / "resnet_block" / "model.caffemodel", output)
    assert code == 0 and "verdict: PASS (4 pass" in out


@pytest.mark.parametrize("args, message", [
    (["one.caffemodel"], "expected [PROTOTXT] CAFFEMODEL CONVERTED (two or three files)"),
    (["missing.caffemodel", "bn.pt"], "does not exist"),
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    Path("one.caffemodel").write_bytes(b"")
    Path("bn.pt").write_bytes(b"")
    code, _, err = _cli(*args)
    assert code == 2 and message in " ".join(err.split())


def test_read_errors_exit_2(tmp_path):
    garbage = tmp_path / "bn.pt"
    garbage.write_bytes(b"not a torch file")
    code, out, err = _cli(*caffe_files("bn_only"), garbage)
    assert code == 2 and out == ""
    assert err == f"bnconvert: error: {garbage}: this is a text file, not a PyTorch .pt file\n"
    unknown = tmp_path / "bn.bin"
    unknown.write_bytes(b"")
    code, _, err = _cli(*caffe_files("bn_only"), unknown)
    assert code == 2 and "cannot tell the format from the manifest, the file's first bytes or " \
        "the extension; verify reads .pt, .pth, .safetensors, .t7" in err


def test_unreadable_manifest_and_input_exit_2(tmp_path):
    output = _convert("bn_only", tmp_path / "bn.pt")
    Path(str(output) + ".json").write_text("{not json")
    code, _, err = _cli(*caffe_files("bn_only"), output)
    assert code == 2 and err.startswith(f"bnconvert: error: {output}.json: cannot read the "
                                        "manifest")
    assert _cli(*caffe_files("bn_only"), output, "--no-manifest")[0] == 0
    (tmp_path / "x.npy").write_bytes(b"garbage")
    code, _, err = _cli(*caffe_files("bn_only"), output, "--no-manifest", "--input",
                        tmp_path / "x.npy")
    assert code == 2 and "not a readable .npy array" in err


def test_input_with_the_wrong_channel_count_exits_2(tmp_path):
    output = _convert("zero_scale_factor", tmp_path / "bn.pt")
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 4, 4), np.float32))
    code, _, err = _cli(*caffe_files("zero_scale_factor"), output, "--input", tmp_path / "x.npy")
    assert code == 2
    assert "--input has shape [2, 5, 4, 4]; layer 'bn1' reads it directly and has 3 channels" \
        in err


def test_help_states_the_library_defaults():
    result = invoke_cli("verify", "--help")
    text = " ".join(result.stdout.split())
    assert f"(default {DEFAULT_RTOL:g})" in text and f"(default {DEFAULT_ATOL:g})" in text


def test_inspect_and_cli_start_up_do_not_import_torch():
    prototxt = CAFFE / "bn_only" / "deploy.prototxt"
    code = ("import sys; from click.testing import CliRunner; from bnconvert.cli import main; "
            f"r = CliRunner().invoke(main, ['inspect', r'{prototxt}']);"
            " assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- self-built nets for what the fixtures lack (ranks 3 and 5, large mean/std) ---------------

def _bn_scale_model(tmp_path, shape, mean, var) -> Path:
    return bn_caffemodel(tmp_path, shape, (mean, var, [1.0]),
                         scale=([1.5, 0.5, -1], [0.1, 0.2, 0.3]))


@pytest.mark.parametrize("shape, module", [([2, 3], "BatchNorm1d"), ([2, 3, 5], "BatchNorm1d"),
                                           ([2, 3, 2, 3, 4], "BatchNorm3d")])
@pytest.mark.parametrize("ext", [".pt", ".t7"])
def test_every_rank_runs_in_its_module(tmp_path, shape, module, ext):
    model = _bn_scale_model(tmp_path, shape, [1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    convert(None, model, tmp_path / f"bn{ext}")
    manifest = json.loads((tmp_path / f"bn{ext}.json").read_text())
    assert manifest["layers"][0]["module"] == module
    user = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    report = verify_file(None, model, tmp_path / f"bn{ext}", user_input=user)
    assert report.passed and len(report.chains[0].inputs) == 2


@pytest.mark.parametrize("mean", [10.0, 1e3, 1e5])
def test_large_mean_to_std_ratios_pass_despite_pytorchs_folded_arithmetic(tmp_path, mean):
    # PyTorch's CPU kernel computes x*a + (b - mean*a): it rounds at the size of mean/std.
    model = _bn_scale_model(tmp_path, [2, 3, 4, 4], [mean, -mean, mean / 2], [1.0, 0.01, 4.0])
    convert(None, model, tmp_path / "bn.pt")
    assert verify_file(None, model, tmp_path / "bn.pt").passed


# --- the .pt writer keeps num_batches_tracked 0-d, as nn.BatchNorm*d saves it ----

def test_pt_num_batches_tracked_has_the_shape_nn_batchnorm_saves(tmp_path):
    output = _convert("bn_only", tmp_path / "bn.pt")
    saved = torch.load(output, weights_only=True)["bn1.num_batches_tracked"]
    assert saved.shape == torch.nn.BatchNorm2d(3).state_dict()["num_batches_tracked"].shape
