"""Issue #12 on the command line: ``convert --module`` and ``verify --whole --expected``
against the real Caffe dumps of tests/data/whole (blobs.npz)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from whole_fixtures import WHOLE, LRNWithK

from bnconvert.build import build_model
from bnconvert.build.verify_whole import compare_blobs
from bnconvert.cli import main
from bnconvert.naming import key_for_layer_name
from bnconvert.read.net import load_net


def _files(net: str) -> tuple[str, str, str]:
    folder = WHOLE / net
    return (str(folder / "deploy.prototxt"), str(folder / "model.caffemodel"),
            str(folder / "blobs.npz"))


def _convert(net: str, tmp_path: Path) -> Path:
    prototxt, caffemodel, _ = _files(net)
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(main, ["convert", prototxt, caffemodel, "-o", str(out),
                                       "--module", str(tmp_path / "model.py")])
    assert result.exit_code == 0, result.output
    return out


def _verify(net: str, weights: Path, *extra: str) -> tuple[int, str]:
    prototxt, caffemodel, blobs = _files(net)
    result = CliRunner().invoke(main, ["verify", "--whole", prototxt, caffemodel, str(weights),
                                       "--expected", blobs, *extra])
    return result.exit_code, result.output


def test_convert_module_then_verify_whole_passes(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    assert "class DensenetBlock" in (tmp_path / "model.py").read_text()
    code, output = _verify("densenet_block", weights)
    assert code == 0 and output.startswith("match: 15 blobs within 1e-05"), output
    code, output = _verify("densenet_block", weights, "--json")
    report = json.loads(output)
    assert code == 0 and report["verdict"] == "match" and report["first_diverging"] is None


def test_module_over_a_whole_conversion_leaves_no_stale_manifest(tmp_path: Path) -> None:
    """--module writes no manifest; one left by an earlier --whole conversion to the same
    output would describe a file that is gone (verify would refuse it), so it is removed."""
    prototxt, caffemodel, _ = _files("densenet_block")
    out, other = tmp_path / "model.pt", tmp_path / "notes.json"
    other.write_text('{"mine": true}')
    done = CliRunner().invoke(main, ["convert", prototxt, caffemodel, "-o", str(out), "--whole"])
    assert done.exit_code == 0 and (tmp_path / "model.pt.json").exists(), done.output
    before = out.read_bytes()
    assert _convert("densenet_block", tmp_path) == out and out.read_bytes() != before
    assert not (tmp_path / "model.pt.json").exists()
    assert other.read_text() == '{"mine": true}'  # other JSON files are never touched
    code, output = _verify("densenet_block", out)
    assert code == 0, output


def test_one_weight_changed_is_named(tmp_path: Path) -> None:
    weights = _convert("densenet_block", tmp_path)
    state = torch.load(weights, weights_only=True)
    state[f"{key_for_layer_name('conv2_2/x1')}.weight"][3, 5, 0, 0] += 1e-3
    torch.save(state, weights)
    code, output = _verify("densenet_block", weights, "--json")
    first = json.loads(output)["first_diverging"]
    assert code == 1 and (first["blob"], first["layer"]) == ("conv2_2/x1", "conv2_2/x1")
    code, output = _verify("densenet_block", weights)
    assert code == 1 and "first diverging blob 'conv2_2/x1', written by layer" in output


@pytest.mark.parametrize(("net", "layer", "wrong"), [
    ("pooling_semantics", "ave_k4s3p1", nn.AvgPool2d(4, 3, 1)),  # floor rounding
    ("vgg_style_lrn", "norm2", None),
])
def test_wrong_semantics_are_named(net: str, layer: str, wrong: nn.Module | None) -> None:
    prototxt, caffemodel, blobs = _files(net)
    built = build_model(load_net(prototxt, caffemodel))
    import numpy as np

    with np.load(blobs) as npz:
        expected = {k: npz[k] for k in npz.files}
    assert compare_blobs(built, expected).passed
    if wrong is None:  # the WITHIN_CHANNEL LRN (k: 2) with k honoured
        lrn = getattr(built.module, layer)
        wrong = LRNWithK(lrn.local_size, lrn.alpha, lrn.beta, 2.0)
    setattr(built.module, layer, wrong)
    first = compare_blobs(built, expected).first_failure
    assert first is not None and first.layer == layer


def test_verify_whole_errors(tmp_path: Path) -> None:
    weights = _convert("misc_layers", tmp_path)
    prototxt, caffemodel, _ = _files("misc_layers")
    runner = CliRunner()
    result = runner.invoke(main, ["verify", "--whole", prototxt, caffemodel, str(weights)])
    assert result.exit_code == 2 and "--whole needs --expected" in result.output
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = runner.invoke(main, ["verify", "--whole", prototxt, caffemodel, str(weights),
                                  "--expected", str(bad), "--json"])
    assert result.exit_code == 2 and '"verdict": "error"' in result.output
    other = _convert("densenet_block", tmp_path / "other")
    result = runner.invoke(main, ["verify", "--whole", prototxt, caffemodel, str(other),
                                  "--expected", _files("misc_layers")[2]])
    assert result.exit_code == 2 and "does not fit the net" in result.output


def test_convert_module_usage(tmp_path: Path) -> None:
    prototxt, caffemodel, _ = _files("misc_layers")
    runner = CliRunner()
    result = runner.invoke(main, ["convert", prototxt, caffemodel, "-o", str(tmp_path / "m.t7"),
                                  "--module", str(tmp_path / "m.py")])
    assert result.exit_code == 1 and "name the output *.pt" in result.output
    assert not (tmp_path / "m.py").exists()
    result = runner.invoke(main, ["convert", prototxt, caffemodel, "-o", str(tmp_path / "m.pt"),
                                  "--until", "bn0"])
    assert result.exit_code == 2
    assert "--class-name, --until and --bn-train need --module" in result.output
    result = runner.invoke(main, ["convert", prototxt, caffemodel, "-o", str(tmp_path / "m.pt"),
                                  "--module", str(tmp_path / "m.py"), "--until", "prelu2",
                                  "--class-name", "Head"])
    assert result.exit_code == 0, result.output
    assert "class Head" in (tmp_path / "m.py").read_text()
    assert "forward(data) -> prelu2" in result.output


def test_convert_module_fuse_verifies(tmp_path: Path) -> None:
    prototxt, caffemodel, _ = _files("preact_resnet_block")
    out = tmp_path / "fused.pt"
    result = CliRunner().invoke(main, ["convert", prototxt, caffemodel, "-o", str(out),
                                       "--module", str(tmp_path / "fused.py"), "--fold", "fuse"])
    assert result.exit_code == 0, result.output
    assert not any(k.startswith("res4_conv1_bn.") for k in torch.load(out, weights_only=True))
    code, output = _verify("preact_resnet_block", out)
    assert code == 0 and output.startswith("match:"), output
