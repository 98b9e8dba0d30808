"""Issue #11's input-channel check: a learned layer's blob must have the input channels (and an
InnerProduct's K = C·H·W) that Caffe's shape inference gives its bottom. Real fixtures of
``tests/data/whole`` (run by real Caffe) are patched so that one weight has an input channel too
few, for a convolution whose channels come through a Concat, an Eltwise, a Pooling, and for an
InnerProduct after a Flatten; each is a one-line error naming the file, the layer, the shape found
and the shape needed, exit 1, nothing written. The depthwise fork layers have no real fixture
(BVLC Caffe has no such type): those nets are built here.

Where shape inference cannot give a layer's input (no declared input shape, a layer type without a
shape rule upstream, a layer Caffe refuses), the rest is still checked and the output says what was
not checked and why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnconvert._proto import caffe_pb2
from tests.caffe_builder import NetBuilder, blob
from tests.caffe_files import DATA

from conftest import invoke_cli

WHOLE = DATA / "whole"
NEEDS = "Caffe refuses this (shape mismatch): is the caffemodel from this net?"


def _drop_input_channel(model: caffe_pb2.NetParameter, name: str) -> None:
    """Layer ``name``'s weight without its last input channel (axis 1), so C_in/group or K is
    one too small; the other values are kept."""
    weight = next(x for x in model.layer if x.name == name).blobs[0]
    shape = tuple(weight.shape.dim)
    values = np.asarray(weight.data, dtype=np.float32).reshape(shape)[:, :-1]
    weight.shape.dim[:] = values.shape
    weight.data[:] = values.reshape(-1).tolist()


def _patched(tmp_path: Path, fixture: str, layer: str) -> tuple[Path, Path]:
    """A copy of the fixture's prototxt and its caffemodel with ``layer``'s weight missing an
    input channel."""
    case = WHOLE / fixture
    model = caffe_pb2.NetParameter.FromString((case / "model.caffemodel").read_bytes())
    _drop_input_channel(model, layer)
    path = tmp_path / "edited.caffemodel"
    path.write_bytes(model.SerializeToString())
    deploy = tmp_path / "deploy.prototxt"
    shutil.copyfile(case / "deploy.prototxt", deploy)
    return deploy, path


#: vgg_style_lrn with a Flatten between pool3 and fc6 (what Caffe computes is unchanged)
FLATTEN = ('bottom: "pool3"\n  top: "fc6"=>bottom: "flat"\n  top: "fc6"', )
FLATTEN_LAYER = ('layer {\n  name: "fc6"=>layer {\n  name: "flat"\n  type: "Flatten"\n  bottom: '
                 '"pool3"\n  top: "flat"\n}\nlayer {\n  name: "fc6"')


def _flatten_edit(text: str) -> str:
    for edit in (*FLATTEN, FLATTEN_LAYER):
        old, new = edit.split("=>")
        assert old in text
        text = text.replace(old, new, 1)
    return text


CASES = [
    # the Concat's 16 + 8 channels reach conv2_2/x1 through BN, Scale and ReLU
    ("densenet_block", "conv2_2/x1", "Convolution", "[32, 23, 1, 1]", "[32, 24, 1, 1]",
     "num_output 32, kernel 1x1, group 1, bias_term false, 24 input channels"),
    # the Eltwise SUM's 512 channels reach res5_conv1 through BN, Scale and ReLU
    ("preact_resnet_block", "res5_conv1", "Convolution", "[128, 511, 1, 1]",
     "[128, 512, 1, 1]", "num_output 128, kernel 1x1, group 1, bias_term false, "
     "512 input channels"),
    # pool1's 12 channels, group 2: C_in/group = 6
    ("vgg_style_lrn", "conv2", "Convolution", "[16, 5, 3, 3]", "[16, 6, 3, 3]",
     "num_output 16, kernel 3x3, group 2, bias_term true, 12 input channels"),
]


@pytest.mark.parametrize(("fixture", "layer", "kind", "found", "needed", "why"), CASES,
                         ids=["concat", "eltwise", "pooling-grouped"])
def test_wrong_input_channels_of_a_real_net(tmp_path: Path, fixture: str, layer: str,
                                            kind: str, found: str, needed: str,
                                            why: str) -> None:
    deploy, model = _patched(tmp_path, fixture, layer)
    out = tmp_path / "out" / "whole.pt"
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(out), "--whole")
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"bnconvert: error: {model}: layer {layer!r} ({kind}): blob 0 (weight) has shape "
        f"{found} in the caffemodel, the prototxt needs {needed} ({why}); {NEEDS}\n")
    assert not out.parent.exists()


def test_inner_product_after_flatten_needs_c_h_w_inputs(tmp_path: Path) -> None:
    deploy, model = _patched(tmp_path, "vgg_style_lrn", "fc6")
    deploy.write_text(_flatten_edit(deploy.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "whole.pt"
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(out), "--whole")
    assert result.exit_code == 1, result.output
    # pool3 is (2, 16, 8, 8) by Caffe's shape rules: K = 16 * 8 * 8 = 1024
    assert result.output == (
        f"bnconvert: error: {model}: layer 'fc6' (InnerProduct): blob 0 (weight) has shape "
        "[48, 1023] in the caffemodel, the prototxt needs [48, 1024] (num_output 48, transpose "
        f"false, bias_term true, 1024 inputs); {NEEDS}\n")
    assert not out.exists()


def test_unpatched_flatten_net_converts(tmp_path: Path) -> None:
    """The Flatten edit alone keeps the real caffemodel valid (K agrees)."""
    case = WHOLE / "vgg_style_lrn"
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(_flatten_edit((case / "deploy.prototxt").read_text(encoding="utf-8")),
                      encoding="utf-8")
    result = invoke_cli("convert", str(deploy), str(case / "model.caffemodel"), "-o",
                        str(tmp_path / "w.pt"), "--whole")
    assert result.exit_code == 0, result.output
    assert "not checked" not in result.output


def _depthwise_net(tmp_path: Path, kind: str, weight_shape: tuple[int, ...],
                   num_output: int = 8, group: int = 4) -> tuple[Path, Path]:
    net = NetBuilder().input("data", (1, 3, 6, 6))
    net.layer("c1", "Convolution", ["data"], ["a"], [blob(np.ones(12), (4, 3, 1, 1))],
              convolution_param="num_output: 4 kernel_size: 1 bias_term: false")
    values = np.arange(np.prod(weight_shape), dtype=np.float32)
    net.layer("dw", kind, ["a"], ["b"], [blob(values, weight_shape)],
              convolution_param=f"num_output: {num_output} group: {group} kernel_size: 3 pad: 1 "
              "bias_term: false")
    return net.save(tmp_path / "net")


@pytest.mark.parametrize("kind", ["ConvolutionDepthwise", "DepthwiseConvolution"])
@pytest.mark.parametrize(("shape", "num_output", "found", "needed"), [
    ((8, 2, 3, 3), 8, "[8, 2, 3, 3]", "[8, 1, 3, 3]"),  # C_in/group is 1, not 2
    ((4, 1, 3, 3), 8, "[4, 1, 3, 3]", "[8, 1, 3, 3]"),  # multiplier 2: 8 filters, not 4
], ids=["c-in-per-group", "multiplier"])
def test_wrong_depthwise_weight(tmp_path: Path, kind: str, shape: tuple[int, ...],
                                num_output: int, found: str, needed: str) -> None:
    deploy, model = _depthwise_net(tmp_path, kind, shape, num_output)
    out = tmp_path / "w.pt"
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(out), "--whole")
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"bnconvert: error: {model}: layer 'dw' ({kind}): blob 0 (weight) has shape {found} in "
        f"the caffemodel, the prototxt needs {needed} (num_output {num_output}, kernel 3x3, "
        "group 4, bias_term false, 4 input channels, depthwise: group = input channels); "
        f"{NEEDS}\n")
    assert not out.exists()


def test_depthwise_num_output_not_a_multiple_of_the_channels(tmp_path: Path) -> None:
    deploy, model = _depthwise_net(tmp_path, "DepthwiseConvolution", (6, 1, 3, 3), 6, 3)
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(tmp_path / "w.pt"),
                        "--whole")
    assert result.exit_code == 1
    assert result.output == (
        f"bnconvert: error: {model}: layer 'dw' (DepthwiseConvolution): num_output 6 is not a "
        "multiple of its 4 input channels; a depthwise convolution has num_output = k x input "
        "channels (k filters per channel)\n")


def _fork_net(tmp_path: Path, c2_in: int) -> tuple[Path, Path]:
    """c1 -> an unknown parameter-free fork layer -> c2 (whose input shape is then unknown)."""
    net = NetBuilder().input("data", (1, 3, 4, 4))
    net.layer("c1", "Convolution", ["data"], ["a"], [blob(np.ones(12), (4, 3, 1, 1))],
              convolution_param="num_output: 4 kernel_size: 1 bias_term: false")
    net.layer("fork", "MyFork", ["a"], ["f"])
    net.layer("c2", "Convolution", ["f"], ["b"], [blob(np.ones(2 * c2_in), (2, c2_in, 1, 1))],
              convolution_param="num_output: 2 kernel_size: 1 bias_term: false")
    return net.save(tmp_path / "net")


def test_unknown_layer_upstream_is_a_note_not_a_pass(tmp_path: Path) -> None:
    deploy, model = _fork_net(tmp_path, 5)  # 5 input channels: not checkable after MyFork
    out = tmp_path / "w.pt"
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(out), "--whole")
    assert result.exit_code == 0, result.output
    note = ("c2: input channels not checked: blob 'f' comes from layer 'fork' (MyFork), whose "
            "output shape bnconvert cannot infer")
    assert f"bnconvert: warning: {note}\n" in result.output
    assert "c1:" not in result.output  # c1's input is declared: checked, nothing to say
    layers = {x["key"]: x for x in json.loads(Path(f"{out}.json").read_text())["layers"]}
    assert layers["c2"]["warnings"] == [note] and layers["c1"]["warnings"] == []


def test_checks_before_an_unknown_layer_are_still_made(tmp_path: Path) -> None:
    deploy, model = _fork_net(tmp_path, 4)
    proto = caffe_pb2.NetParameter.FromString(model.read_bytes())
    _drop_input_channel(proto, "c1")
    model.write_bytes(proto.SerializeToString())
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(tmp_path / "w.pt"),
                        "--whole")
    assert result.exit_code == 1
    assert "layer 'c1' (Convolution): blob 0 (weight) has shape [4, 2, 1, 1] in the " \
           "caffemodel, the prototxt needs [4, 3, 1, 1]" in result.output


def test_caffemodel_without_declared_input_shape(tmp_path: Path) -> None:
    """A caffemodel alone whose net reads its input from a Data layer: no shape to infer."""
    net = NetBuilder()
    net.layer("data", "Data", [], ["data", "label"])
    net.layer("c1", "Convolution", ["data"], ["a"], [blob(np.ones(12), (4, 3, 1, 1))],
              convolution_param="num_output: 4 kernel_size: 1 bias_term: false")
    net.layer("fc", "InnerProduct", ["a"], ["b"], [blob(np.ones(20), (5, 4)), blob(np.ones(5))],
              inner_product_param="num_output: 5")
    _, model = net.save(tmp_path / "net", prototxt=False)
    out = tmp_path / "w.pt"
    result = invoke_cli("convert", str(model), "-o", str(out), "--whole")
    assert result.exit_code == 0, result.output
    why = "the net declares no shape for blob 'data' (top of layer 'data', Data)"
    assert f"bnconvert: warning: c1: input channels not checked: {why}\n" in result.output
    assert f"bnconvert: warning: fc: input size K not checked: {why}\n" in result.output


def test_a_layer_caffe_refuses_is_named_in_the_note(tmp_path: Path) -> None:
    net = NetBuilder().input("data", (1, 3, 4, 4))
    net.layer("r", "Reshape", ["data"], ["d"],
              reshape_param="shape { dim: 0 dim: 5 dim: -1 dim: 1 }")  # 48 / 5: refused
    net.layer("c1", "Convolution", ["d"], ["a"], [blob(np.ones(15), (3, 5, 1, 1))],
              convolution_param="num_output: 3 kernel_size: 1 bias_term: false")
    deploy, model = net.save(tmp_path / "net")
    result = invoke_cli("convert", str(deploy), str(model), "-o", str(tmp_path / "w.pt"),
                        "--whole")
    assert result.exit_code == 0, result.output
    assert (f"bnconvert: warning: c1: input channels not checked: "
            f"{deploy}: layer 'r' (Reshape): Caffe refuses it: bottom count (48) must be "
            "divisible by the product of the specified dimensions (5)\n") in result.output


def test_unpatched_fixtures_convert_without_notes(tmp_path: Path) -> None:
    for fixture in ("densenet_block", "preact_resnet_block", "vgg_style_lrn", "misc_layers"):
        case = tmp_path / fixture
        shutil.copytree(WHOLE / fixture, case)
        result = invoke_cli("convert", str(case / "deploy.prototxt"),
                            str(case / "model.caffemodel"), "-o", str(case / "w.pt"), "--whole")
        assert result.exit_code == 0, result.output
        assert "not checked" not in result.output, fixture


def test_inspect_whole_says_what_cannot_be_checked(tmp_path: Path) -> None:
    deploy, model = _fork_net(tmp_path, 4)
    result = invoke_cli("inspect", "--whole", str(deploy), str(model))
    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "\nnote: c2: input channels not checked: blob 'f' comes from layer 'fork' (MyFork), "
        "whose output shape bnconvert cannot infer\n")
    result = invoke_cli("inspect", "--whole", "--json", str(deploy), str(model))
    rows = {r["layer"]: r["not_checked"] for r in json.loads(result.output)}
    assert rows["c1"] is None and rows["c2"].startswith("input channels not checked: blob 'f'")
