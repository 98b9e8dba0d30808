"""The command line as a user meets it: help, version, output formats and the manifest."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from bnconvert import __version__

from conftest import RESNET, RESNET_FILES, invoke_cli


def test_version() -> None:
    result = invoke_cli("--version")
    assert result.exit_code == 0 and result.output == f"bnconvert, version {__version__}\n"


@pytest.mark.parametrize("command", [[], ["convert"], ["inspect"], ["verify"]])
def test_help_on_every_command(command: list[str]) -> None:
    result = invoke_cli(*command, "--help")
    assert result.exit_code == 0 and "Usage: bnconvert" in result.output


def test_default_manifest_beside_output(tmp_path: Path) -> None:
    out = tmp_path / "bn.pt"
    result = invoke_cli("convert", *RESNET_FILES, "-o", str(out))
    assert result.exit_code == 0
    assert result.output == (f"wrote {out} and its manifest {out}.json: 4 BatchNorm layers "
                             "(4 affine, 0 non-affine)\n")
    manifest = json.loads((tmp_path / "bn.pt.json").read_text())
    assert manifest["format"] == "pt" and manifest["file"] == "bn.pt"
    assert [b["key"] for b in manifest["layers"]] == [
        "bn2a_branch1", "bn2a_branch2a", "bn2a_branch2b", "bn2a_branch2c"]
    assert manifest["sources"] == {"prototxt": RESNET_FILES[0], "caffemodel": RESNET_FILES[1]}


def test_manifest_path_and_no_manifest(tmp_path: Path) -> None:
    chosen = tmp_path / "meta" / "m.json"
    chosen.parent.mkdir()
    assert invoke_cli("convert", *RESNET_FILES, "-o", str(tmp_path / "a.pt"), "--manifest",
                      str(chosen)).exit_code == 0
    assert chosen.exists() and not (tmp_path / "a.pt.json").exists()
    assert invoke_cli("convert", *RESNET_FILES, "-o", str(tmp_path / "b.pt"), "--no-manifest",
                      "-q").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "meta"]


def test_explicit_format_wins_over_extension(tmp_path: Path) -> None:
    out = tmp_path / "weights.bin"
    result = invoke_cli("convert", *RESNET_FILES, "-o", str(out), "--format", "pt", "-q")
    assert result.exit_code == 0
    assert set(torch.load(out, weights_only=True)) >= {"bn2a_branch1.running_var"}


def test_safetensors_holds_the_same_state_dict(tmp_path: Path) -> None:
    for name in ("a.pt", "a.safetensors"):
        assert invoke_cli("convert", *RESNET_FILES, "-o", tmp_path / name, "-q").exit_code == 0
    pt = torch.load(tmp_path / "a.pt", weights_only=True)
    st = load_file(str(tmp_path / "a.safetensors"))
    assert set(pt) == set(st)
    for key, value in pt.items():
        assert np.array_equal(value.numpy(), st[key]) and value.numpy().dtype == st[key].dtype


def test_safetensors_is_written_without_the_extra(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """bnconvert streams .safetensors itself (``write.safetensors_stream``); the optional
    package is only needed to read them back (verify)."""
    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name.startswith("safetensors"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    out = tmp_path / "a.safetensors"
    result = invoke_cli("convert", *RESNET_FILES, "-o", str(out))
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(builtins, "__import__", real_import)
    from safetensors.torch import load_file

    written = load_file(str(out))
    expected = invoke_cli("convert", *RESNET_FILES, "-o", str(tmp_path / "b.pt"))
    assert expected.exit_code == 0
    reference = torch.load(tmp_path / "b.pt", weights_only=True)
    assert written.keys() == reference.keys()
    assert all(torch.equal(written[k], reference[k]) for k in reference)


def test_inspect_prototxt_alone_shows_structure() -> None:
    result = invoke_cli("inspect", RESNET_FILES[0], "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    rows = [(c["batch_norm"], c["scale"], c["channels"], c["rank"]) for c in report["chains"]]
    assert rows == [(f"bn2a_{b}", f"scale2a_{b}", None, 4)
                    for b in ("branch1", "branch2a", "branch2b", "branch2c")]


def test_inspect_with_weights_shows_channels_and_scale_factor() -> None:
    report = json.loads(invoke_cli("inspect", *RESNET_FILES, "--json").output)
    expected = json.loads((RESNET / "expected_bn.json").read_text())
    got = [(c["batch_norm"], c["channels"], c["scale_factor"]) for c in report["chains"]]
    assert got == [(e["bn"], e["channels"], pytest.approx(e["scale_factor"])) for e in expected]


def test_convert_notes_layers_without_weights(tmp_path: Path) -> None:
    """Caffe keeps layers the caffemodel lacks at their initial values: not fatal, but said."""
    from caffe_builder import NetBuilder

    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.batch_norm("bn", "data", "data", [0.0] * 3, [1.0] * 3, 1.0)
    _, model = builder.save(tmp_path / "m", prototxt=False)
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 '
        'dim: 4 dim: 4 } } }\n'
        'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        'inner_product_param { num_output: 2 } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }\n')
    result = invoke_cli("convert", str(prototxt), str(model), "-o", str(tmp_path / "o.pt"))
    assert result.exit_code == 0
    assert ("bnconvert: note: 1 layer(s) have no weights in the caffemodel (Caffe keeps their "
            "initial values; not needed here): fc\n") in result.output
