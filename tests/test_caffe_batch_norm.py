"""CaffeBatchNorm*d (bnconvert.modules.caffe_batch_norm) continues Caffe's running averages at
every step: against real Caffe's TRAIN steps (tests/data/caffe_train) and, for 5-D input and
other dtypes, against Caffe's documented blob update written independently here."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from caffe_train_cases import CASES, effective_stats, load_case, worst_relative

from bnconvert.modules import caffe_batch_norm
from bnconvert.modules.caffe_batch_norm import CaffeBatchNorm1d, CaffeBatchNorm2d, CaffeBatchNorm3d

TOLERANCE = 1e-6
CAFFE = {2: CaffeBatchNorm1d, 4: CaffeBatchNorm2d, 5: CaffeBatchNorm3d}  # by input rank


def caffe_module(case) -> torch.nn.Module:
    mean, var = effective_stats(case.mean_acc, case.var_acc, case.scale_factor)
    module = CAFFE[case.batches.ndim - 1](mean.size, eps=case.eps,
                                          moving_average_fraction=case.maf,
                                          scale_factor=case.scale_factor)
    with torch.no_grad():
        for name, value in (("weight", case.gamma), ("bias", case.beta),
                            ("running_mean", mean), ("running_var", var)):
            getattr(module, name).copy_(torch.from_numpy(value))
    return module.train()


@pytest.mark.parametrize("name", CASES)
def test_continues_caffe_at_every_step(name: str) -> None:
    case = load_case(name)
    module = caffe_module(case)
    for step in range(1, len(case.batches) + 1):
        batch = torch.from_numpy(case.batches[step - 1])
        with torch.no_grad():
            out = module(batch)
            eval_out = module.eval()(batch)
        module.train()
        errors = {"mean": worst_relative(module.running_mean.numpy(), case.steps["mean_eff"][step]),
                  "var": worst_relative(module.running_var.numpy(), case.steps["var_eff"][step]),
                  "out": worst_relative(out.numpy(), case.steps["out"][step - 1]),
                  "eval": worst_relative(eval_out.numpy(), case.steps["eval_after"][step - 1])}
        assert max(errors.values()) <= TOLERANCE, (step, errors)
        assert module.scale_factor.item() == case.steps["blob2"][step]  # bit for bit
        assert module.num_batches_tracked.item() == step


@pytest.mark.parametrize("name", CASES)
def test_eval_mode_is_torch_batch_norm(name: str) -> None:
    case = load_case(name)
    module = caffe_module(case).eval()
    plain = {2: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[case.batches.ndim - 1](
        module.num_features, eps=case.eps).eval()
    plain.load_state_dict(module.state_dict(), strict=False)
    batch = torch.from_numpy(case.batches[0])
    assert torch.equal(module(batch), plain(batch))
    assert worst_relative(module(batch).detach().numpy(), case.steps["eval_start"]) <= TOLERANCE
    assert module.scale_factor.item() == np.float32(case.scale_factor)  # eval changes nothing


def caffe_train_step(blobs: list[np.ndarray], x: np.ndarray, maf: float) -> list[np.ndarray]:
    """BVLC batch_norm_layer.cpp's TRAIN update (fixture README), float32, over axes ≠ 1."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes, dtype=np.float64)
    var = ((x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
    f32 = np.float32
    return [(f32(maf) * blobs[0] + mean.astype(f32)).astype(f32),
            (f32(maf) * blobs[1] + (m / (m - 1) * var).astype(f32)).astype(f32),
            (f32(f32(maf) * blobs[2]) + f32(1)).astype(f32)]


@pytest.mark.parametrize("dtype, rel", [(torch.float32, 1e-6), (torch.float64, 1e-6)])
@pytest.mark.parametrize("s0", [0.0, 3.0, 999.98236])
def test_5d_input_against_caffes_formula(dtype: torch.dtype, rel: float, s0: float) -> None:
    rng = np.random.default_rng(15)
    channels, maf = 3, 0.95
    blobs = [rng.normal(size=channels).astype(np.float32) * np.float32(s0),
             rng.uniform(0.5, 2, size=channels).astype(np.float32) * np.float32(s0),
             np.array([s0], np.float32)]
    mean, var = effective_stats(blobs[0], blobs[1], s0)
    module = CaffeBatchNorm3d(channels, moving_average_fraction=maf, scale_factor=s0,
                              affine=False, dtype=dtype).train()
    module.running_mean.copy_(torch.from_numpy(mean))
    module.running_var.copy_(torch.from_numpy(var))
    for _ in range(4):
        x = (rng.normal(size=(2, channels, 3, 2, 4)) * 2 + 1).astype(np.float32)
        blobs = caffe_train_step(blobs, x, maf)
        module(torch.from_numpy(x).to(dtype))
        want_mean, want_var = effective_stats(blobs[0], blobs[1], float(blobs[2][0]))
        assert worst_relative(module.running_mean.numpy(), want_mean) <= rel
        assert worst_relative(module.running_var.numpy(), want_var) <= rel
        assert module.scale_factor.item() == pytest.approx(float(blobs[2][0]), rel=1e-7)


def test_state_dict_round_trip_strict(tmp_path: Path) -> None:
    case = load_case("short_trained")
    module = caffe_module(case)
    module(torch.from_numpy(case.batches[0]))
    path = tmp_path / "bn.pt"
    torch.save(module.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert set(state) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked",
                          "moving_average_fraction", "scale_factor"}
    fresh = CaffeBatchNorm2d(module.num_features, eps=case.eps)
    fresh.load_state_dict(state, strict=True)
    for name, value in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    del state["scale_factor"]  # a state_dict of this module must be complete
    with pytest.raises(RuntimeError, match="Missing key.*scale_factor"):
        CaffeBatchNorm2d(module.num_features).load_state_dict(state, strict=True)


def test_plain_state_dict_keeps_the_constructors_caffe_buffers() -> None:
    """A converted .pt (plain BatchNorm keys, no metadata) loads strictly; the manifest's maf and
    scale factor come in through the constructor."""
    plain = torch.nn.BatchNorm2d(4)
    keys = {k: v.clone() for k, v in plain.state_dict().items()}  # a plain dict, no metadata
    module = CaffeBatchNorm2d(4, moving_average_fraction=0.9, scale_factor=9.99973)
    module.load_state_dict(keys, strict=True)
    assert module.moving_average_fraction.item() == np.float32(0.9)
    assert module.scale_factor.item() == np.float32(9.99973)
    module.load_state_dict(plain.state_dict(), strict=True)  # version-2 metadata
    assert module.scale_factor.item() == np.float32(9.99973)


def test_modules_are_torch_batch_norms_on_any_device_and_dtype() -> None:
    module = CaffeBatchNorm1d(6, scale_factor=95.2079, dtype=torch.float64)
    assert isinstance(module, torch.nn.BatchNorm1d)
    assert module.scale_factor.dtype == torch.float64
    assert module.scale_factor.item() == np.float32(95.2079)
    module.to(torch.float32)
    assert module.scale_factor.dtype == module.running_mean.dtype == torch.float32
    assert module.caffe_momentum() == pytest.approx(1 / (0.999 * 95.2079 + 1), rel=1e-6)
    assert "scale_factor=95.2079" in repr(module)
    devices = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        moved = CaffeBatchNorm2d(2, device=device)
        assert moved.scale_factor.device.type == moved.running_mean.device.type == device


def test_source_imports_only_torch() -> None:
    """The file is copied into generated model files: torch is its only dependency."""
    source = Path(caffe_batch_norm.__file__).read_text(encoding="utf-8")
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots == {"__future__", "torch"}
    namespace: dict = {}
    exec(compile(source, "generated_model.py", "exec"), namespace)  # runs outside bnconvert
    buffer = io.BytesIO()
    torch.save(namespace["CaffeBatchNorm2d"](3).state_dict(), buffer)
