"""One verdict across the commands (issue #14): contradictory options are usage errors,
verify --json always prints JSON, --strict never claims a conversion, the success line names
the manifest, and fork fields bnconvert reads are not called skipped."""

from __future__ import annotations

import json

import pytest

from conftest import CAFFE, FORKS, RESNET, RESNET_FILES, run_cli


@pytest.mark.parametrize(("options", "message"), [
    (["-o", "x.pt", "--manifest", "m.json", "--no-manifest"],
     "--manifest and --no-manifest contradict each other; give one of them"),
    (["-o", "x.pt", "--t7-layout", "sequential"],
     "--t7-layout only applies to a Torch7 (.t7) output; x.pt is a pt file"),
    (["-o", "x.safetensors", "--cudnn"],
     "--cudnn only applies to a Torch7 (.t7) output; x.safetensors is a safetensors file"),
    (["-o", "x.bin", "--format", "pt", "--t7-layout", "table", "--cudnn"],
     "--t7-layout and --cudnn only apply to a Torch7 (.t7) output; x.bin is a pt file"),
    (["-o", "x.pt", "--format", "t7"],
     "--format t7 disagrees with the output's extension '.pt' (a pt file); rename the output "
     "or drop --format"),
])
def test_contradictory_convert_options_are_usage_errors(tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("convert", *RESNET_FILES, *options)
    assert code == 2 and err.rstrip().endswith(f"Error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_t7_options_with_a_t7_output_and_format_with_an_unknown_extension_are_fine(tmp_path):
    assert run_cli("convert", *RESNET_FILES, "-o", tmp_path / "x.t7", "--t7-layout", "sequential",
                   "--cudnn", "-q")[0] == 0
    code, _, _ = run_cli("convert", *RESNET_FILES, "-o", tmp_path / "x.bin", "--format", "t7", "-q")
    assert code == 0


@pytest.mark.parametrize("option", ["--rtol", "--atol"])
def test_negative_tolerances_are_usage_errors(tmp_path, option):
    code, _, err = run_cli("verify", *RESNET_FILES, RESNET / "deploy.prototxt", option, "-1e-6")
    assert code == 2 and f"Invalid value for '{option}': -1e-06 is not in the range x>=0." in err


def test_verify_manifest_and_no_manifest_contradict(tmp_path):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *RESNET_FILES, "-o", out, "-q")[0] == 0
    code, _, err = run_cli("verify", *RESNET_FILES, out, "--manifest", f"{out}.json",
                           "--no-manifest")
    assert code == 2 and "--manifest and --no-manifest contradict each other" in err


def test_verify_json_prints_an_error_object_on_a_read_error(tmp_path):
    garbage = tmp_path / "bn.pt"
    garbage.write_text("not a model")
    code, stdout, err = run_cli("verify", *RESNET_FILES, garbage, "--json")
    message = f"{garbage}: this is a text file, not a PyTorch .pt file"
    assert code == 2 and err == f"bnconvert: error: {message}\n"
    assert json.loads(stdout) == {"verdict": "error", "error": message, "exit_code": 2}


def test_verify_json_error_object_for_an_unreadable_input(tmp_path):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *RESNET_FILES, "-o", out, "-q")[0] == 0
    (tmp_path / "x.npy").write_bytes(b"garbage")
    code, stdout, _ = run_cli("verify", *RESNET_FILES, out, "--json", "--input",
                              tmp_path / "x.npy")
    assert code == 2 and json.loads(stdout)["verdict"] == "error"


def test_strict_failure_does_not_say_converted(tmp_path):
    folder = CAFFE / "global_stats_false"
    out = tmp_path / "g.pt"
    code, _, err = run_cli("convert", folder / "deploy.prototxt", folder / "model.caffemodel",
                           "-o", out, "--strict")
    assert code == 1 and "converted" not in err and not out.exists()
    assert err.endswith("use_global_stats is false, so Caffe normalizes with each batch's own "
                        "statistics even in TEST, which no eval-mode PyTorch or Torch7 module "
                        "reproduces; nothing was written (--strict)\n")


def test_the_success_line_names_the_manifest(tmp_path):
    out, manifest = tmp_path / "bn.pt", tmp_path / "meta" / "m.json"
    code, stdout, _ = run_cli("convert", *RESNET_FILES, "-o", out, "--manifest", manifest)
    assert code == 0 and stdout == (f"wrote {out} and its manifest {manifest}: 4 BatchNorm "
                                    "layers (4 affine, 0 non-affine)\n")
    code, stdout, _ = run_cli("convert", *RESNET_FILES, "-o", out, "--no-manifest")
    assert stdout == f"wrote {out}: 4 BatchNorm layers (4 affine, 0 non-affine)\n"


@pytest.mark.parametrize("case", ["segnet/segnet_conv_bn_inference",
                                  "nvcaffe/nv_scale_bias_float", "pspnet/psp_conv_bn_relu"])
def test_fork_fields_bnconvert_reads_are_not_called_skipped(case):
    folder = FORKS / case
    code, stdout, _ = run_cli("inspect", folder / "deploy.prototxt", folder / "model.caffemodel")
    assert code == 0 and "does not know, skipped" not in stdout
    report = json.loads(run_cli("inspect", folder / "deploy.prototxt", "--json")[1])
    assert report["unknown_fields"] == []


def test_a_bn_param_on_a_layer_that_does_not_read_it_is_still_listed(tmp_path):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text((FORKS / "segnet/segnet_conv_bn_inference/deploy.prototxt").read_text()
                        .replace('type: "Convolution"', 'type: "Convolution"\n  bn_param { }'))
    report = json.loads(run_cli("inspect", prototxt, "--json")[1])
    assert [f.split(" (")[0] for f in report["unknown_fields"]] == ['layer["conv1"].bn_param']
