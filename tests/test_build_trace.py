"""Issue #12: the built module is plain PyTorch — torch.fx, torch.jit.trace, ONNX (with
onnxruntime), float64 and the meta device — and its generated source runs with torch alone.

Reference: the eager float32 module, which test_build_whole.py checks against real Caffe.
"""

from __future__ import annotations

import copy
import io
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from whole_fixtures import NETS, WHOLE

from bnconvert.build import BuiltNet, build_model
from bnconvert.build.source import module_source
from bnconvert.read.net import load_net


@cache
def _built(net: str) -> BuiltNet:
    folder = WHOLE / net
    return build_model(load_net(folder / "deploy.prototxt", folder / "model.caffemodel"))


def _input(net: str) -> torch.Tensor:
    return torch.from_numpy(np.load(WHOLE / net / "input.npy"))


def _as_tuple(result: object) -> tuple[torch.Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)  # type: ignore[return-value]


def _eager(net: str) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return _as_tuple(_built(net).module(_input(net)))


def _close(got: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]) -> None:
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        scale = float(b.abs().max()) or 1.0
        assert float((a.double() - b.double()).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize("net", NETS)
def test_fx_symbolic_trace(net: str) -> None:
    traced = torch.fx.symbolic_trace(_built(net).module)
    with torch.no_grad():
        _close(_as_tuple(traced(_input(net))), _eager(net))


@pytest.mark.parametrize("net", NETS)
def test_jit_trace(net: str) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(_built(net).module, (_input(net),))
        _close(_as_tuple(traced(_input(net))), _eager(net))


@pytest.mark.parametrize("net", NETS)
def test_float64_and_meta(net: str) -> None:
    reference = _eager(net)
    module = copy.deepcopy(_built(net).module)
    with torch.no_grad():
        _close(_as_tuple(module.double()(_input(net).double())), reference)
        meta = _as_tuple(module.to("meta")(_input(net).double().to("meta")))
    assert [m.shape for m in meta] == [e.shape for e in reference]


@pytest.mark.parametrize("net", NETS)
def test_onnx_export(net: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    buffer = io.BytesIO()
    torch.onnx.export(_built(net).module, (_input(net),), buffer, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue())
    feed = {session.get_inputs()[0].name: _input(net).numpy()}
    got = tuple(torch.from_numpy(v) for v in session.run(None, feed))
    _close(got, _eager(net))


_LOADER = textwrap.dedent("""
    import importlib.abc, sys
    class NoBnconvert(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "bnconvert" or name.startswith("bnconvert."):
                raise ImportError("bnconvert must not be needed")
            return None
    sys.meta_path.insert(0, NoBnconvert())
    sys.path = [p for p in sys.path if "site-packages" in p or (
        p not in ("", ".") and "bnconvert" not in p and not p.startswith({root!r}))]
    sys.path.insert(0, {folder!r})
    import numpy as np, torch
    from model import {cls} as Model
    net = Model()
    net.load_state_dict(torch.load({weights!r}, weights_only=True), strict=True)
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(np.load({x!r})))
    out = out if isinstance(out, tuple) else (out,)
    torch.save(out, {result!r})
""")


@pytest.mark.parametrize("net", NETS)
def test_generated_source_runs_with_torch_only(net: str, tmp_path: Path) -> None:
    built = _built(net)
    (tmp_path / "model.py").write_text(module_source(built, f"{net}/deploy.prototxt"))
    torch.save(built.module.state_dict(), tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", _input(net).numpy())
    script = _LOADER.format(root=str(Path(__file__).parent.parent), folder=str(tmp_path),
                            cls=type(built.module).__name__, weights=str(tmp_path / "model.pt"),
                            x=str(tmp_path / "x.npy"), result=str(tmp_path / "out.pt"))
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    for a, b in zip(got, _eager(net), strict=True):
        assert torch.equal(a, b)
    source = (tmp_path / "model.py").read_text()
    assert "bnconvert" not in "".join(x for x in source.splitlines() if "import" in x)
