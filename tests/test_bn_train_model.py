"""#15 in the built models: ``load_model`` carries the momentum that continues Caffe's running
averages, and ``bn_train="caffe"`` (``convert --module --bn-train caffe``) builds BatchNorms that
continue them exactly at every TRAIN step, checked against real Caffe's recorded steps
(tests/data/caffe_train)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from caffe_train_cases import load_case, worst_relative

import bnconvert

from conftest import DATA, invoke_cli

TRAIN = DATA / "caffe_train"
CASES = sorted(p.name for p in TRAIN.iterdir() if (p / "model.caffemodel").exists())
TOLERANCE = 1e-6


def _files(name: str) -> tuple[str, str]:
    return str(TRAIN / name / "deploy.prototxt"), str(TRAIN / name / "model.caffemodel")


def _batch_norm(model: torch.nn.Module) -> torch.nn.modules.batchnorm._BatchNorm:
    (found,) = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return found


@pytest.mark.parametrize("name", CASES)
def test_bn_train_caffe_continues_every_step(name: str) -> None:
    case = load_case(name)
    model = bnconvert.load_model(*_files(name), bn_train="caffe").train()
    bn = _batch_norm(model)
    assert type(bn).__name__.startswith("CaffeBatchNorm")
    for step in range(1, len(case.batches) + 1):
        with torch.no_grad():
            model(torch.from_numpy(case.batches[step - 1]))
        assert worst_relative(bn.running_mean.numpy(), case.steps["mean_eff"][step]) <= TOLERANCE
        assert worst_relative(bn.running_var.numpy(), case.steps["var_eff"][step]) <= TOLERANCE
        assert bn.scale_factor.item() == case.steps["blob2"][step]  # bit for bit


@pytest.mark.parametrize("name", CASES)
def test_the_plain_model_carries_the_continuing_momentum(name: str) -> None:
    case = load_case(name)
    bn = _batch_norm(bnconvert.load_model(*_files(name)))
    maf, s = case.maf, case.scale_factor
    if maf == 1:  # PyTorch's cumulative average with num_batches_tracked = s
        assert bn.momentum is None and bn.num_batches_tracked.item() == s
    else:  # 1/(maf·s + 1), Caffe's next step (maf·s rounded to float32 as Caffe does)
        expected = 1.0 / (float(torch.tensor(maf * s, dtype=torch.float32)) + 1.0)
        assert bn.momentum == pytest.approx(expected, rel=1e-6)


def test_generated_file_with_bn_train_runs_with_torch_only(tmp_path: Path) -> None:
    prototxt, caffemodel = _files("short_trained")
    out, source = tmp_path / "m.pt", tmp_path / "model.py"
    result = invoke_cli("convert", prototxt, caffemodel, "-o", str(out), "--module",
                        str(source), "--bn-train", "caffe", "--class-name", "Net")
    assert result.exit_code == 0, result.output
    assert "class CaffeBatchNorm2d" in source.read_text()
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import torch\n"
              "from model import Net\n"
              f"net = Net(); net.load_state_dict(torch.load({str(out)!r}, weights_only=True), "
              "strict=True)\nprint(type(net.bn1).__name__, float(net.bn1.scale_factor))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "CaffeBatchNorm2d"
    assert float(done.stdout.split()[1]) == load_case("short_trained").scale_factor
