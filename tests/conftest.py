"""Shared test paths and helpers. Every fixture lives under tests/data (a fresh clone has no
../shared). Helpers used by more than one test module live here, once."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from bnconvert._proto import caffe_pb2
from bnconvert.cli import main

DATA = Path(__file__).parent / "data"
CAFFE = DATA / "caffe"
FORKS = DATA / "forks"
CORPUS = DATA / "corpus"
TORCH7 = DATA / "torch7"
CAFFE_CASES = sorted(p.name for p in CAFFE.iterdir() if p.is_dir())

#: the real-Caffe fixture most CLI tests convert, and its two files as CLI arguments
RESNET = CAFFE / "resnet_block"
RESNET_FILES = [str(RESNET / "deploy.prototxt"), str(RESNET / "model.caffemodel")]

#: the corpus's LIST.json (ground truth computed outside this project); by original file name
CORPUS_ENTRIES: list[dict[str, Any]] = json.loads((CORPUS / "LIST.json").read_text(
    encoding="utf-8"))
CORPUS_LIST = {entry["local_file"]: entry for entry in CORPUS_ENTRIES}
#: the adapted files (header changed so that BVLC Caffe builds them), by their own name
CORPUS_ADAPTED = {e["adapted_file"]: e for e in CORPUS_LIST.values() if e["adapted_file"]}

# The module parameters every Torch7 sample uses (tests/data/torch7/README.md, "Module
# parameters in the samples").
T7_MEAN = np.array([0.1, -0.2, 0.3, -0.4], dtype=np.float32)
T7_VAR = np.array([0.5, 1, 1.5, 2], dtype=np.float32)
T7_WEIGHT = np.array([1, 0.5, -1, 2], dtype=np.float32)
T7_BIAS = np.array([0, 0.1, -0.2, 0.3], dtype=np.float32)

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return DATA


def caffe_files(case: str) -> tuple[Path, Path]:
    """The prototxt and caffemodel of a real-Caffe fixture case (tests/data/caffe/<case>)."""
    return CAFFE / case / "deploy.prototxt", CAFFE / case / "model.caffemodel"


def invoke_cli(*args: object) -> Result:
    """Run the CLI in process (arguments as strings). An exception the CLI did not turn into an
    exit (a traceback for the user) fails the test."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def run_cli(*args: object) -> tuple[int, str, str]:
    """``invoke_cli``'s (exit code, stdout, stderr)."""
    result = invoke_cli(*args)
    return result.exit_code, result.stdout, result.stderr


def cli_convert(folder: Path, out: Path, with_prototxt: bool = True, *extra: str) -> Path:
    """``bnconvert convert`` of ``folder``'s deploy.prototxt (unless not ``with_prototxt``) and
    model.caffemodel to ``out``, which must succeed."""
    files = ([str(folder / "deploy.prototxt")] if with_prototxt else []) + [
        str(folder / "model.caffemodel")]
    result = invoke_cli("convert", *files, "-o", out, *extra)
    assert result.exit_code == 0, result.output
    return out


def fork_outputs(case: str) -> dict[str, np.ndarray]:
    """What the real fork recorded for a tests/data/forks case (or its expected output)."""
    folder = FORKS / case
    name = "outputs.npz" if (folder / "outputs.npz").exists() else "expected.npz"
    return dict(np.load(folder / name))


def fork_net(tmp_path: Path, bn_type: str, blobs: Sequence[caffe_pb2.BlobProto],
             param_text: str, shape: Sequence[int] = (2, 3, 4, 4)) -> tuple[Path, Path]:
    """An Input and one BN-like layer ``bn`` of ``bn_type``, with ``param_text`` written as is
    (fork fields BVLC's schema lacks): the prototxt written by hand, the caffemodel with the
    blobs only."""
    from caffe_builder import NetBuilder

    builder = NetBuilder().input("data", list(shape))
    builder.layer("bn", bn_type, ["data"], ["data"], blobs)
    _, model = builder.save(tmp_path, prototxt=False)
    dims = " ".join(f"dim: {d}" for d in shape)
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape '
                        f'{{ {dims} }} }} }}\n'
                        f'layer {{ name: "bn" type: "{bn_type}" bottom: "data" top: "data" '
                        f'{param_text} }}\n')
    return prototxt, model


def bn_caffemodel(tmp_path: Path, shape: Sequence[int], blobs: Sequence[Sequence[float]], *,
                  scale: tuple[Sequence[float], Sequence[float]] | None = None,
                  double: bool = False) -> Path:
    """A caffemodel alone: Input ``data`` of ``shape``, BatchNorm ``bn`` with ``blobs`` (in
    ``double_data`` when ``double``) and, given ``scale`` = (gamma, beta), a Scale ``sc``."""
    from caffe_builder import NetBuilder, blob

    builder = NetBuilder("t").input("data", shape)
    builder.layer("bn", "BatchNorm", ["data"], ["data"], [blob(v, double=double) for v in blobs])
    if scale is not None:
        builder.scale("sc", "data", "data", *scale)
    return builder.save(tmp_path, prototxt=False)[1]


class CorpusTrials:
    """Each corpus file built and run once per test session (``bnconvert.build.trial``), by file
    name: ``tests/test_build_corpus.py`` checks every run, and README's table is compared with
    the same runs (``tests/test_corpus.py``) instead of building the 70 nets twice."""

    def __init__(self) -> None:
        self._runs: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        """The ``TrialRun`` of ``tests/data/corpus/<name>`` (built on first use)."""
        if name not in self._runs:
            from bnconvert.build.trial import trial_run
            from bnconvert.read.net import load_net

            self._runs[name] = trial_run(load_net(CORPUS / name, None))
        return self._runs[name]


@pytest.fixture(scope="session")
def corpus_trials() -> CorpusTrials:
    """The session's shared build-and-run of the corpus files."""
    return CorpusTrials()
