"""inspect runs the checks convert runs on a chain's weights, so it never calls "convertible" a
chain that convert refuses (issue #14): the same message, and a chain layer without weights is
not listed as "not needed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bnconvert.cli import main

from caffe_builder import NetBuilder, blob
from conftest import DATA

CAFFE = DATA / "caffe"


def _made(tmp_path: Path, bn_blobs: list, gamma: list[float]) -> Path:
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.layer("bn1", "BatchNorm", ["data"], ["data"], bn_blobs)
    builder.scale("scale1", "data", "data", gamma, [0.0] * len(gamma))
    return builder.save(tmp_path / "made", prototxt=False)[1]


def _cases(tmp_path: Path) -> dict[str, list[str]]:
    good = [blob([1, 2, 3]), blob([1, 1, 1]), blob([1])]
    return {
        "channels_vs_producer": [str(CAFFE / "bn_only" / "deploy.prototxt"),
                                 str(CAFFE / "bn_scale_bias" / "model.caffemodel")],
        "chain_layer_without_weights": [str(CAFFE / "resnet_block" / "deploy.prototxt"),
                                        str(CAFFE / "bn_scale_bias" / "model.caffemodel")],
        "nan": [str(_made(tmp_path / "nan", [blob([1, 2, 3]), blob([1, float("nan"), 1]),
                                             blob([1])], [1.0, 1.0, 1.0]))],
        "negative_variance": [str(_made(tmp_path / "neg", [blob([1, 2, 3]), blob([1, 1, -2]),
                                                           blob([2])], [1.0, 1.0, 1.0]))],
        "scale_channels": [str(_made(tmp_path / "sc", good, [1.0, 1.0]))],
    }


@pytest.mark.parametrize("case", ["channels_vs_producer", "chain_layer_without_weights", "nan",
                                  "negative_variance", "scale_channels"])
def test_inspect_refuses_what_convert_refuses(case: str, tmp_path: Path) -> None:
    files = _cases(tmp_path)[case]
    runner = CliRunner()
    out = tmp_path / "out.pt"
    converted = runner.invoke(main, ["convert", *files, "-o", str(out)])
    assert converted.exit_code == 1 and not out.exists()
    message = converted.stderr.removeprefix("bnconvert: error: ").strip()
    shown = runner.invoke(main, ["inspect", *files, "--json"])
    assert shown.exit_code == 0
    report = json.loads(shown.output)
    refused = [row for row in report["chains"] if not row["convertible"]]
    assert refused, "inspect called every chain convertible"
    assert message in [problem for row in refused for problem in row["problems"]]
    text = runner.invoke(main, ["inspect", *files]).output
    assert "  NO" in text or " NO\n" in text


def test_chain_layers_without_weights_are_not_called_unneeded(tmp_path: Path) -> None:
    files = _cases(tmp_path)["chain_layer_without_weights"]
    report = json.loads(CliRunner().invoke(main, ["inspect", *files, "--json"]).output)
    chain_layers = {n for row in report["chains"] for n in (row["batch_norm"], row["scale"])}
    assert chain_layers and not chain_layers & set(report["missing_weights"])
    assert all(not row["convertible"] for row in report["chains"])
