"""inspect runs the checks convert runs on a chain's weights, so it never calls "convertible" a
chain that convert refuses (issue #14): the same message, and a chain layer without weights is
not listed as "not needed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffe_builder import NetBuilder, blob
from conftest import CAFFE, invoke_cli


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
    out = tmp_path / "out.pt"
    converted = invoke_cli("convert", *files, "-o", str(out))
    assert converted.exit_code == 1 and not out.exists()
    message = converted.stderr.removeprefix("bnconvert: error: ").strip()
    shown = invoke_cli("inspect", *files, "--json")
    assert shown.exit_code == 0
    report = json.loads(shown.output)
    refused = [row for row in report["chains"] if not row["convertible"]]
    assert refused, "inspect called every chain convertible"
    assert message in [problem for row in refused for problem in row["problems"]]
    text = invoke_cli("inspect", *files).output
    assert "  NO" in text or " NO\n" in text


def test_chain_layers_without_weights_are_not_called_unneeded(tmp_path: Path) -> None:
    files = _cases(tmp_path)["chain_layer_without_weights"]
    report = json.loads(invoke_cli("inspect", *files, "--json").output)
    chain_layers = {n for row in report["chains"] for n in (row["batch_norm"], row["scale"])}
    assert chain_layers and not chain_layers & set(report["missing_weights"])
    assert all(not row["convertible"] for row in report["chains"])


def test_undecodable_layer_parameters_are_never_silent(tmp_path: Path) -> None:
    """A caffemodel-only net whose layer parameters do not decode (a fork's clashing field
    numbers): inspect warns, convert refuses naming the layer, and with the prototxt it works."""
    from bnconvert._proto import caffe_pb2

    case = CAFFE / "bn_scale_bias"
    model = caffe_pb2.NetParameter.FromString((case / "model.caffemodel").read_bytes())
    conv = next(layer for layer in model.layer if layer.type == "Convolution")
    raw = bytearray(model.SerializeToString())
    broken = tmp_path / "broken.caffemodel"
    # Append a truncated convolution_param (field 106) to the convolution layer's bytes.
    layer_bytes = conv.SerializeToString()
    start = bytes(raw).index(layer_bytes)
    patched = layer_bytes + b"\xd2\x06\x01\x08"  # convolution_param {field 1, no value}
    from bnconvert.read.wire import encode_varint

    old_header = b"\xa2\x06" + encode_varint(len(layer_bytes))  # field 100, its length
    new_header = b"\xa2\x06" + encode_varint(len(patched))
    head = start - len(old_header)
    assert bytes(raw[head:start]) == old_header
    broken.write_bytes(bytes(raw[:head]) + new_header + patched + bytes(raw[start +
                                                                            len(layer_bytes):]))
    shown = invoke_cli("inspect", str(broken))
    assert shown.exit_code == 0, shown.output
    assert f"warning: not read faithfully: layer {conv.name!r} (Convolution): parameters not " \
           "decoded" in shown.output
    out = tmp_path / "out.pt"
    refused = invoke_cli("convert", str(broken), "-o", str(out))
    assert refused.exit_code == 1 and not out.exists()
    assert refused.stderr.startswith(
        f"bnconvert: error: {broken}: the net's definition in the caffemodel was not read "
        f"faithfully (layer {conv.name!r} (Convolution): parameters not decoded")
    assert refused.stderr.rstrip().endswith("pass the prototxt too")
    ok = invoke_cli("convert", str(case / "deploy.prototxt"), str(broken), "-o",
                    str(out))
    assert ok.exit_code == 0 and out.exists()
