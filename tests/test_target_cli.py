"""``convert --target`` end to end (#13): the user's model gets Caffe's weights in its own names
only when it computes Caffe's numbers; otherwise the first module that differs is named, with
the reason, and nothing is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bnconvert._proto import caffe_pb2
from bnconvert.graph.shapes import infer_shapes
from bnconvert.layers.learned import ConvolutionParams, InnerProductParams
from bnconvert.read.net import load_net

from conftest import CORPUS, DATA, invoke_cli
from torchvision_shim import import_torchvision_models

PREACT = DATA / "whole" / "preact_resnet_block"
USER = DATA / "target" / "preact_user.py"
RESNET50 = CORPUS / "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt"


def _preact(tmp_path: Path, stride_on_1x1: bool, *extra: str):
    out = tmp_path / "user.pt"
    result = invoke_cli(*["convert", str(PREACT / "deploy.prototxt"),
                         str(PREACT / "model.caffemodel"), "-o", str(out), "--target",
                         f"{USER}:TwoUnits", "--target-kwargs",
                         json.dumps({"stride_on_1x1": stride_on_1x1}), *extra])
    return result, out


def test_a_model_that_computes_caffe_gets_the_weights_in_its_own_names(tmp_path: Path) -> None:
    result, out = _preact(tmp_path, False, "-v")
    assert result.exit_code == 0, result.output
    assert "res4_match_conv -> unit1.project [structure]" in result.output
    assert "(checked: equal to Caffe within float32 rounding)" in result.output
    manifest = json.loads(Path(f"{out}.json").read_text())
    rows = {row["target"]: row for row in manifest["layers"]}
    assert rows["unit1.pre"]["caffe_layers"] == ["res4_bn", "res4_scale"]
    state = torch.load(out, weights_only=True)
    import importlib.util

    spec = importlib.util.spec_from_file_location("preact_user", USER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TwoUnits(False)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():  # the written weights reproduce Caffe's recorded output
        got = model(torch.from_numpy(np.load(PREACT / "input.npy"))).numpy()
    expected = np.load(PREACT / "outputs.npz")["res5_eletwise"]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_a_model_that_strides_elsewhere_is_refused_naming_the_convolutions(tmp_path) -> None:
    result, out = _preact(tmp_path, True)
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr.startswith(
        f"bnconvert: error: {out}: not written: the target does not compute what Caffe computes: "
        "target module 'unit1.reduce': output shape 2x128x4x4 where Caffe's 'res4_conv1' has "
        "2x128x8x8; stride placement: Caffe's 'res4_conv1' has stride 1x1 (1x1 kernel)")
    unchecked, out = _preact(tmp_path, True, "--no-check")
    assert unchecked.exit_code == 0 and out.exists()
    assert "--no-check: the target was not run against Caffe's numbers" in unchecked.stderr


def _caffemodel_for(prototxt: Path, path: Path) -> Path:
    """Random weights for every learned layer of ``prototxt``, in Caffe's blob shapes (the
    channel counts from Caffe's shape inference); BN statistics positive, scale factor 1."""
    net = load_net(prototxt, None)
    shapes = infer_shapes(net)
    writer: dict[str, int] = {}
    rng = np.random.default_rng(5)
    model = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        bottom = shapes.get((layer.bottoms[0], writer.get(layer.bottoms[0], -1))) \
            if layer.bottoms else None
        blobs = _blobs(layer, bottom, rng)
        if blobs:
            stored = model.layer.add(name=layer.name, type=layer.type)
            for values in blobs:
                blob = stored.blobs.add()
                blob.shape.dim.extend(values.shape)
                blob.data.extend(values.ravel().tolist())
        writer.update((top, layer.index) for top in layer.tops)
    path.write_bytes(model.SerializeToString())
    return path


def _blobs(layer, bottom, rng) -> list[np.ndarray]:
    params = layer.params
    if isinstance(params, ConvolutionParams):
        k = params.kernel * 2 if len(params.kernel) == 1 else params.kernel
        n = params.num_output
        weight = rng.normal(0, (2 / (bottom[1] * k[0] * k[1])) ** 0.5, (n, bottom[1], *k))
        return [weight.astype(np.float32)] + ([rng.normal(0, 0.1, n).astype(np.float32)]
                                              if params.bias_term else [])
    if isinstance(params, InnerProductParams):
        fan_in = int(np.prod(bottom[1:]))
        return [rng.normal(0, fan_in ** -0.5, (params.num_output, fan_in)).astype(np.float32),
                np.zeros(params.num_output, np.float32)]
    if layer.type == "BatchNorm":
        c = bottom[1]
        return [rng.normal(0, 0.1, c).astype(np.float32),
                rng.uniform(0.5, 1.5, c).astype(np.float32), np.ones(1, np.float32)]
    if layer.type == "Scale":
        c = bottom[1]
        return [rng.uniform(0.5, 1.5, c).astype(np.float32),
                rng.normal(0, 0.1, c).astype(np.float32)]
    return []


@pytest.fixture(scope="module")
def resnet50_caffemodel(tmp_path_factory) -> Path:
    return _caffemodel_for(RESNET50, tmp_path_factory.mktemp("r50") / "model.caffemodel")


def test_kaiminghe_resnet50_onto_torchvision_maps_every_weight_and_the_check_says_why_not(
        resnet50_caffemodel: Path, tmp_path: Path) -> None:
    import_torchvision_models()
    out = tmp_path / "tv.pt"
    refused = invoke_cli(*["convert", str(RESNET50), str(resnet50_caffemodel), "-o", str(out),
                          "--target", "torchvision.models:resnet50"])
    assert refused.exit_code == 1 and not out.exists()
    # First the pooling: Caffe's pool1 rounds up without padding, torchvision's pads. (The size
    # of the error depends on the random weights; a real difference, not float32 rounding.)
    found = re.search(r"not written: the target does not compute what Caffe computes: target "
                      r"module 'layer1\.0\.conv1': output differs from Caffe's "
                      r"'res2a_branch2a' by up to ([0-9.e+-]+); the operations between 'bn1' "
                      r"and 'layer1\.0\.conv1' differ \(a missing or moved ReLU, a different "
                      r"pooling or padding\): its input agreed with Caffe's\n$", refused.stderr)
    assert found is not None, refused.stderr
    assert float(found.group(1)) > 0.1
    # With Caffe's pooling written into the model, the next difference: where the stride sits.
    pooled = invoke_cli(*["convert", str(RESNET50), str(resnet50_caffemodel), "-o", str(out),
                          "--target", f"{DATA / 'target' / 'resnet50_caffe_pool.py'}:model"])
    assert pooled.exit_code == 1 and not out.exists()
    assert pooled.stderr.endswith(
        "target module 'layer2.0.conv1': output shape 1x128x56x56 where Caffe's "
        "'res3a_branch2a' has 1x128x28x28; stride placement: Caffe's 'res3a_branch2a' has "
        "stride 2x2 (1x1 kernel), the target's 'layer2.0.conv1' has stride 1x1 (1x1 kernel); "
        "stride placement: Caffe's 'res3a_branch2b' has stride 1x1 (3x3 kernel), the target's "
        "'layer2.0.conv2' has stride 2x2 (3x3 kernel)\n")
    mapped = invoke_cli(*["convert", str(RESNET50), str(resnet50_caffemodel), "-o", str(out),
                         "--target", "torchvision.models:resnet50", "--no-check", "-v"])
    assert mapped.exit_code == 0, mapped.output
    assert "res2a_branch1 -> layer1.0.downsample.0 [structure]" in mapped.output
    assert "bn_conv1 + scale_conv1 -> bn1 [structure]" in mapped.output
    model = import_torchvision_models().resnet50(weights=None)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)


EPS = DATA / "caffe" / "eps_custom"  # conv1 -> bn1 (eps 0.001) -> scale1
_USER_EPS = '''
from torch import nn


def model():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))  # eps 1e-5
'''


def test_verify_target_checks_what_the_user_ships_bn_eps_included(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(_USER_EPS)
    files = [str(EPS / "deploy.prototxt"), str(EPS / "model.caffemodel")]
    mapped = tmp_path / "mapped.pt"
    done = invoke_cli(*["convert", *files, "-o", str(mapped), "--target", f"{user}:model", "-v"])
    assert done.exit_code == 0, done.output
    assert "running_var" in done.output  # the eps difference folded into the variance
    good = invoke_cli(*["verify", *files, str(mapped), "--target", f"{user}:model"])
    assert good.exit_code == 0 and "PASS" in good.output
    # A state_dict with Caffe's statistics as they are, loaded into BatchNorm2d(eps=1e-5): the
    # classic silent 4e-4 error; verify names the BatchNorm and the eps.
    naive = tmp_path / "naive.pt"
    state = torch.load(mapped, weights_only=True)
    state["1.running_var"] = torch.load(mapped, weights_only=True)["1.running_var"] \
        - (0.001 - 1e-5)
    torch.save(state, naive)
    bad = invoke_cli(*["verify", *files, str(naive), "--target", f"{user}:model"])
    assert bad.exit_code == 1 and "FAIL: target module '1'" in bad.output
    assert "eps" in bad.output, bad.output


@pytest.mark.parametrize(("prototxt", "spec"), [
    ("soeaver__caffe-model__cls__vgg__deploy_vgg16bn-pytorch.prototxt",
     "torchvision.models:vgg16_bn"),
    ("shicai__DenseNet-Caffe__DenseNet_121.adapted.prototxt", "torchvision.models:densenet121"),
])
def test_same_networks_map_and_compute_caffes_numbers(prototxt: str, spec: str,
                                                       tmp_path: Path) -> None:
    import_torchvision_models()
    files = [str(CORPUS / prototxt), str(_caffemodel_for(CORPUS / prototxt,
                                                         tmp_path / "model.caffemodel"))]
    out = tmp_path / "tv.pt"
    done = invoke_cli(*["convert", *files, "-o", str(out), "--target", spec])
    assert done.exit_code == 0, done.output
    assert "(checked: equal to Caffe within float32 rounding)" in done.output
    assert invoke_cli(*["verify", *files, str(out), "--target", spec]).exit_code == 0
