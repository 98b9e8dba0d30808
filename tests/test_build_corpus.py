"""Issue #12 on the 70-file corpus (tests/data/corpus): every net whose layer types are all
supported builds without a caffemodel and runs on a random input of its declared shape (batch
1); every other net is refused with one error naming each missing layer type.

Which types are supported comes from the issue's layer list (written out below, not read from
the code); the types of each net are read from its text with a regular expression (layer types
start with an upper-case letter, fillers' types do not; V1 enum names compare case- and
underscore-insensitively). The file used is LIST.json's ``adapted_file`` (data layers replaced
by ``Input`` with a declared shape) where there is one.

Each net is built and run once per session (``corpus_trials``, ``bnconvert.build.trial``); the
README's "Builds and runs" column is checked against what these tests expect of each file, and
``tests/test_corpus.py`` checks that README holds the table generated from the same runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bnconvert.build import build_model
from bnconvert.errors import UnsupportedLayerError
from bnconvert.read.net import load_net

from conftest import CorpusTrials

CORPUS = Path(__file__).parent / "data" / "corpus"
ENTRIES = json.loads((CORPUS / "LIST.json").read_text(encoding="utf-8"))
FILES = sorted(e["adapted_file"] or e["local_file"] for e in ENTRIES)

#: issue #12's "Layers" list, plus the train/test types it leaves out (losses, Accuracy)
ISSUE_TYPES = """Input Convolution Deconvolution InnerProduct Pooling LRN ReLU PReLU ELU Sigmoid
TanH AbsVal BNLL Power Exp Log Threshold Clip Swish Dropout BatchNorm BN Scale Bias Eltwise
Concat Slice Split Flatten Reshape Softmax Crop Tile Reduction ArgMax MVN Embed Silence SPP
ConvolutionDepthwise DepthwiseConvolution ReLU6 ShuffleChannel Axpy Interp Upsample DummyData
Accuracy""".split()

#: Caffe itself refuses these nets at their declared shape (layer, why)
KNOWN_REFUSALS = {
    # reshape_param { shape { dim: [-1, 1, 3, 101] } } on fc (1, 101): TSN needs a batch of
    # 3 segments; 101 is not divisible by 303.
    "yjxiong__temporal-segment-networks__models__ucf101__tsn_bn_inception_flow_train_val"
    ".adapted.prototxt": "reshape_fc",
}

_TYPE = re.compile(r"""\btype\s*:\s*["']?([A-Za-z0-9_]+)""")


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


_SUPPORTED = {_norm(t) for t in ISSUE_TYPES}


def missing_types(path: Path) -> set[str]:
    """Layer types of the file that the issue does not list (losses are left out)."""
    types = {t for t in _TYPE.findall(path.read_text(encoding="utf-8")) if t[0].isupper()}
    return {t for t in types if _norm(t) not in _SUPPORTED and not t.endswith("Loss")
            and not _norm(t).endswith("loss")}


BUILDABLE = [f for f in FILES if not missing_types(CORPUS / f)]
NOT_BUILDABLE = [f for f in FILES if missing_types(CORPUS / f)]


def test_partition() -> None:
    assert len(FILES) == 70
    assert len(NOT_BUILDABLE) == 15 and len(BUILDABLE) == 55


@pytest.mark.parametrize("name", NOT_BUILDABLE)
def test_unsupported_types_are_named(name: str) -> None:
    with pytest.raises(UnsupportedLayerError) as caught:
        build_model(load_net(CORPUS / name, None))
    listed = re.search(r"of type\(s\) (.*?):", str(caught.value))
    assert listed is not None
    assert set(listed.group(1).split(", ")) == missing_types(CORPUS / name)


@pytest.mark.parametrize("name", NOT_BUILDABLE)
def test_trial_names_the_missing_types(name: str, corpus_trials: CorpusTrials) -> None:
    run = corpus_trials(name)
    assert run.status == "needs" and set(run.missing) == missing_types(CORPUS / name)


@pytest.mark.parametrize("name", BUILDABLE)
def test_builds_and_runs(name: str, corpus_trials: CorpusTrials) -> None:
    """Built without weights and run on a random input of the declared shapes, batch 1."""
    run = corpus_trials(name)
    if name in KNOWN_REFUSALS:
        assert run.status == "refused"
        assert run.reason.startswith(f"layer '{KNOWN_REFUSALS[name]}'")
        return
    assert run.status == "runs", run
    assert len(run.output_shapes) == len(run.outputs) >= 1
    assert all(shape[0] == 1 for shape in run.output_shapes if shape)


def expected_cell(name: str) -> str:
    """What README's "Builds and runs" column must say of a file, from this test's partition."""
    if name in NOT_BUILDABLE:
        return "needs: " + ", ".join(sorted(missing_types(CORPUS / name)))
    if name in KNOWN_REFUSALS:
        return f"Caffe refuses: layer '{KNOWN_REFUSALS[name]}'"
    return "builds and runs"


def _readme_cells() -> dict[str, str]:
    """README's "Builds and runs" cell of each corpus file, found by its GitHub URL."""
    lines = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8").splitlines()
    header = next(x for x in lines if x.startswith("| Family |"))
    column = [c.strip() for c in header.strip("|").split("|")].index("Builds and runs (#12)")
    cells = {}
    for entry in ENTRIES:
        url = f"https://github.com/{entry['repo']}/blob/{entry['commit']}/{entry['path']})"
        (row,) = [x for x in lines if x.startswith("| ") and url in x]
        cells[entry["adapted_file"] or entry["local_file"]] = \
            [c.strip() for c in row.strip("|").split(" | ")][column]
    return cells


def test_readme_column_agrees_with_the_corpus_builds() -> None:
    cells = _readme_cells()
    assert sorted(cells) == FILES
    for name, cell in cells.items():
        assert cell.startswith(expected_cell(name)), (name, cell)
    runs = [n for n, c in cells.items() if c == "builds and runs"]
    assert len(runs) == len(BUILDABLE) - len(KNOWN_REFUSALS)
