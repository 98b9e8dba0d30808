"""Converted BatchNorms reproduce what real Caffe computed, layer by layer.

Ground truth: tests/data/caffe/<case>/outputs.npz (every layer's output as BVLC Caffe computed
it) and expected_bn.* (Caffe's effective parameters). The converted .pt is loaded into real
torch.nn.BatchNorm*d modules with the Caffe eps and run in eval mode on the BatchNorm's input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CAFFE, CAFFE_CASES, cli_convert, invoke_cli

MODULES = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d,
           5: torch.nn.BatchNorm3d}


def expected_chains(case: str) -> list[dict]:
    return json.loads((CAFFE / case / "expected_bn.json").read_text())


def convert_case(case: str, tmp_path: Path, with_prototxt: bool = True,
                 extra: tuple[str, ...] = ()) -> Path:
    return cli_convert(CAFFE / case, tmp_path / f"{case}.pt", with_prototxt, *extra)


def bn_module(state: dict[str, torch.Tensor], key: str, chain: dict) -> torch.nn.Module:
    part = {k[len(key) + 1:]: v for k, v in state.items() if k.startswith(key + ".")}
    affine = "weight" in part
    module = MODULES[chain["rank"]](chain["channels"], eps=chain["eps"], affine=affine)
    module.load_state_dict(part, strict=True)
    return module.eval()


def max_relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


STORED_STATS_CASES = [c for c in CAFFE_CASES if c != "global_stats_false"]


@pytest.mark.parametrize("with_prototxt", [True, False], ids=["prototxt+caffemodel", "caffemodel"])
@pytest.mark.parametrize("case", STORED_STATS_CASES)
def test_eval_forward_matches_caffe_output(case: str, with_prototxt: bool, tmp_path: Path) -> None:
    out = convert_case(case, tmp_path, with_prototxt)
    state = torch.load(out, weights_only=True)
    outputs = np.load(CAFFE / case / "outputs.npz")
    for chain in expected_chains(case):
        module = bn_module(state, chain["bn"], chain)
        x = torch.from_numpy(outputs[chain["producer"]])
        with torch.no_grad():
            y = module(x).numpy()
        assert max_relative_error(y, outputs[chain["chain"][-1]]) <= 1e-5, chain["bn"]


@pytest.mark.parametrize("case", CAFFE_CASES)
def test_parameters_equal_caffe_effective_parameters(case: str, tmp_path: Path) -> None:
    state = torch.load(convert_case(case, tmp_path), weights_only=True)
    expected = np.load(CAFFE / case / "expected_bn.npz")
    for name in expected.files:
        layer, field = name.split("/")
        np.testing.assert_allclose(state[f"{layer}.{field}"].numpy(), expected[name],
                                   rtol=1e-6, atol=0)
    keys = {k.split(".")[0] for k in state}
    assert keys == {c["bn"] for c in expected_chains(case)}


@pytest.mark.parametrize("case", CAFFE_CASES)
def test_manifest_records_caffe_settings(case: str, tmp_path: Path) -> None:
    out = convert_case(case, tmp_path)
    manifest = json.loads(Path(str(out) + ".json").read_text())
    by_key = {entry["key"]: entry for entry in manifest["layers"]}
    for chain in expected_chains(case):
        entry = by_key[chain["bn"]]
        assert entry["eps"] == pytest.approx(chain["eps"], rel=1e-7)
        assert entry["rank"] == chain["rank"]
        assert entry["channels"] == chain["channels"]
        assert entry["affine"] == chain["affine"]
        assert entry["scale_factor"] == pytest.approx(chain["scale_factor"], rel=1e-7)
        layers = [entry["caffe_layers"][k] for k in ("batch_norm", "scale", "bias")]
        assert [n for n in layers if n] == chain["chain"]


def test_batch_statistics_case_warns_and_matches_train_mode(tmp_path: Path) -> None:
    """use_global_stats: false -> Caffe uses batch statistics in TEST; PyTorch's train-mode
    forward does the same (biased variance), eval mode cannot."""
    case = "global_stats_false"
    folder = CAFFE / case
    out = tmp_path / "g.pt"
    result = invoke_cli("convert", str(folder / "deploy.prototxt"),
                        str(folder / "model.caffemodel"), "-o", str(out))
    assert result.exit_code == 0
    assert "use_global_stats is false" in result.output
    state = torch.load(out, weights_only=True)
    chain = expected_chains(case)[0]
    module = bn_module(state, "bn1", chain).train()
    module.momentum = 0.0
    outputs = np.load(folder / "outputs.npz")
    with torch.no_grad():
        y = module(torch.from_numpy(outputs["conv1"])).numpy()
    assert max_relative_error(y, outputs["scale1"]) <= 1e-5


def test_batch_statistics_case_fails_under_strict(tmp_path: Path) -> None:
    folder = CAFFE / "global_stats_false"
    out = tmp_path / "g.pt"
    result = invoke_cli("convert", str(folder / "deploy.prototxt"),
                        str(folder / "model.caffemodel"), "-o", str(out),
                        "--strict")
    assert result.exit_code == 1
    assert "use_global_stats is false" in result.output and "--strict" in result.output
    assert not out.exists() and not Path(str(out) + ".json").exists()


def test_zero_scale_factor_warns(tmp_path: Path) -> None:
    folder = CAFFE / "zero_scale_factor"
    result = invoke_cli("convert", str(folder / "model.caffemodel"),
                        "-o", str(tmp_path / "z.pt"))
    assert result.exit_code == 0
    assert "scale factor is 0" in result.output


def test_affine_flag_gives_identity_weight_to_bn_without_scale(tmp_path: Path) -> None:
    out = convert_case("bn_only", tmp_path, extra=("--affine",))
    state = torch.load(out, weights_only=True)
    assert torch.equal(state["bn1.weight"], torch.ones(5))
    assert torch.equal(state["bn1.bias"], torch.zeros(5))
    outputs = np.load(CAFFE / "bn_only" / "outputs.npz")
    chain = expected_chains("bn_only")[0]
    module = bn_module(state, "bn1", chain)
    with torch.no_grad():
        y = module(torch.from_numpy(outputs["conv1"])).numpy()
    assert max_relative_error(y, outputs["bn1"]) <= 1e-5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_and_prefix(dtype: str, tmp_path: Path) -> None:
    out = convert_case("bn_scale_bias", tmp_path, extra=("--dtype", dtype, "--prefix", "net."))
    state = torch.load(out, weights_only=True)
    assert set(state) == {f"net.bn1.{k}" for k in ("weight", "bias", "running_mean",
                                                   "running_var", "num_batches_tracked")}
    assert state["net.bn1.running_var"].dtype == getattr(torch, dtype)
    assert state["net.bn1.num_batches_tracked"].dtype == torch.int64
