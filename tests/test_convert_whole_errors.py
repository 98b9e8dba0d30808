"""Bad inputs to convert --whole: one line on stderr naming the file, the layer and the problem,
exit 1, nothing written. And --skip-unknown: the rest converted, the skipped layers named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bnconvert._proto import caffe_pb2
from tests.caffe_builder import NetBuilder, blob
from tests.caffe_files import DATA

from conftest import CAFFE, invoke_cli

CASE = CAFFE / "bn_scale_bias"


def run(args: list[str]) -> tuple[int, str]:
    """The exit code and the whole output (stdout and stderr as the user sees them)."""
    result = invoke_cli(*args)
    return result.exit_code, result.output


def _edited(tmp_path: Path, edit: Callable[[caffe_pb2.LayerParameter], None]) -> Path:
    """bn_scale_bias's caffemodel with its conv1 layer edited."""
    model = caffe_pb2.NetParameter.FromString((CASE / "model.caffemodel").read_bytes())
    edit(next(x for x in model.layer if x.name == "conv1"))
    path = tmp_path / "edited.caffemodel"
    path.write_bytes(model.SerializeToString())
    return path


def _wrong_shape(layer: caffe_pb2.LayerParameter) -> None:
    layer.blobs[0].shape.dim[:] = [4, 3, 9, 1]


def _one_blob(layer: caffe_pb2.LayerParameter) -> None:
    del layer.blobs[1]


def _no_blobs(layer: caffe_pb2.LayerParameter) -> None:
    del layer.blobs[:]


def _nan(layer: caffe_pb2.LayerParameter) -> None:
    layer.blobs[0].data[5] = float("nan")


WHERE = "edited.caffemodel: layer 'conv1' (Convolution)"


@pytest.mark.parametrize(("edit", "message"), [
    (_wrong_shape, f"{WHERE}: blob 0 (weight) has shape [4, 3, 9, 1] in the caffemodel, the "
     "prototxt needs [4, 3, 3, 3] (num_output 4, kernel 3x3, group 1, bias_term true, 3 input "
     "channels); Caffe refuses this (shape mismatch): is the caffemodel from this net?"),
    (_one_blob, f"{WHERE} has 1 blobs in the caffemodel, the prototxt needs 2 (weight, bias; "
     "num_output 4, kernel 3x3, group 1, bias_term true, 3 input channels)"),
    (_no_blobs, f"{WHERE} has no weights in the caffemodel, so Caffe would run it with its "
     "initial (filler) values; is the caffemodel from this net?"),
    (_nan, f"{WHERE}: blob 0 (weight) holds NaN at flat index 5; the model is corrupt or "
     "diverged"),
], ids=["wrong-shape", "missing-blob", "no-weights", "nan"])
def test_bad_caffemodel_is_one_line_and_writes_nothing(
        tmp_path: Path, edit: Callable[[caffe_pb2.LayerParameter], None], message: str) -> None:
    model = _edited(tmp_path, edit)
    out = tmp_path / "out" / "whole.pt"
    code, output = run(["convert", str(CASE / "deploy.prototxt"), str(model), "-o", str(out),
                        "--whole"])
    assert code == 1, output
    assert output == f"bnconvert: error: {str(tmp_path)}/{message}\n"
    assert not out.parent.exists() or not list(out.parent.iterdir())


def _unknown_net(tmp_path: Path) -> tuple[Path, Path]:
    net = NetBuilder().input("data", (1, 3, 4, 4))
    net.layer("conv", "Convolution", ["data"], ["c"], [blob(np.ones(6), (2, 3, 1, 1))],
              convolution_param="num_output: 2 kernel_size: 1 bias_term: false")
    net.layer("norm", "Normalize", ["c"], ["n"], [blob([1.0, 2.0])])
    net.layer("lstm", "LSTM", ["n"], ["l"], [blob(np.ones(8), (4, 2)), blob(np.ones(4))])
    return net.save(tmp_path / "net")


def test_unknown_learned_layers_are_listed_at_once(tmp_path: Path) -> None:
    deploy, model = _unknown_net(tmp_path)
    out = tmp_path / "whole.pt"
    code, output = run(["convert", str(deploy), str(model), "-o", str(out), "--whole"])
    assert code == 1
    assert output == (f"bnconvert: error: {model}: 2 layer(s) with learned blobs of a type "
                      "bnconvert does not convert: 'norm' (Normalize, 1 blobs), 'lstm' (LSTM, 2 "
                      "blobs); --skip-unknown converts the rest\n")
    assert not out.exists()


def test_skip_unknown_converts_the_rest(tmp_path: Path) -> None:
    deploy, model = _unknown_net(tmp_path)
    out = tmp_path / "whole.pt"
    code, output = run(["convert", str(deploy), str(model), "-o", str(out), "--whole",
                        "--skip-unknown"])
    assert code == 0, output
    assert "bnconvert: warning: lstm: skipped (LSTM, 2 learned blobs): its weights are not in " \
           "the output" in output
    layers = json.loads(Path(str(out) + ".json").read_text())["layers"]
    assert [(x["key"], x["kind"]) for x in layers] == [("conv", "conv"), ("norm", "skipped"),
                                                      ("lstm", "skipped")]
    import torch

    assert set(torch.load(out, weights_only=True)) == {"conv.weight"}


def test_input_channels_from_the_producer(tmp_path: Path) -> None:
    net = NetBuilder().input("data", (1, 3, 4, 4))
    net.layer("c1", "Convolution", ["data"], ["a"], [blob(np.ones(12), (4, 3, 1, 1))],
              convolution_param="num_output: 4 kernel_size: 1 bias_term: false")
    net.layer("relu", "ReLU", ["a"], ["a"])
    net.layer("c2", "Convolution", ["a"], ["b"], [blob(np.ones(6), (2, 3, 1, 1))],
              convolution_param="num_output: 2 kernel_size: 1 bias_term: false")
    deploy, model = net.save(tmp_path / "net")
    code, output = run(["convert", str(deploy), str(model), "-o", str(tmp_path / "w.pt"),
                        "--whole"])
    assert code == 1
    assert "layer 'c2' (Convolution): blob 0 (weight) has shape [2, 3, 1, 1] in the " \
           "caffemodel, the prototxt needs [2, 4, 1, 1]" in output


def test_t7_and_usage(tmp_path: Path) -> None:
    files = [str(CASE / "deploy.prototxt"), str(CASE / "model.caffemodel")]
    code, output = run(["convert", *files, "-o", str(tmp_path / "w.t7"), "--whole"])
    assert code == 1 and "Torch7 .t7 output holds BatchNorm modules only" in output
    code, output = run(["convert", *files, "-o", str(tmp_path / "w.pt"), "--fold", "fuse"])
    assert code == 2 and "--fold and --skip-unknown apply to --whole or --module only" in output
    assert list(tmp_path.iterdir()) == []


def test_whole_safetensors_and_inspect(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from safetensors.numpy import load_file

    case = tmp_path / "case"
    shutil.copytree(DATA / "whole" / "misc_layers", case)
    out = tmp_path / "w.safetensors"
    code, output = run(["convert", str(case / "deploy.prototxt"), str(case / "model.caffemodel"),
                        "-o", str(out), "--whole", "--fold", "fuse"])
    assert code == 0, output
    assert load_file(str(out))["prelu2.weight"].shape == ()
    code, output = run(["inspect", "--whole", str(case / "deploy.prototxt"),
                        str(case / "model.caffemodel")])
    assert code == 0
    assert "deconv2   Deconvolution  6x1x4x4 6  ConvTranspose2d" in output
