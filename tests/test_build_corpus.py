"""Issue #12 on the 70-file corpus (tests/data/corpus): every net whose layer types are all
supported builds without a caffemodel and runs on a random input of its declared shape (batch
1); every other net is refused with one error naming each missing layer type.

Which types are supported comes from the issue's layer list (written out below, not read from
the code); the types of each net are read from its text with a regular expression (layer types
start with an upper-case letter, fillers' types do not; V1 enum names compare case- and
underscore-insensitively). The file used is LIST.json's ``adapted_file`` (data layers replaced
by ``Input`` with a declared shape) where there is one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from bnconvert.build import BuildOptions, build_model
from bnconvert.errors import RefusedByCaffeError, UnsupportedLayerError
from bnconvert.graph.shapes import declared_inputs
from bnconvert.read.net import load_net

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


@pytest.mark.parametrize("name", BUILDABLE)
def test_builds_and_runs(name: str) -> None:
    net = load_net(CORPUS / name, None)
    shapes = {k: (1, *v[1:]) for k, v in declared_inputs(net).items() if v}
    if name in KNOWN_REFUSALS:
        with pytest.raises(RefusedByCaffeError, match=f"layer '{KNOWN_REFUSALS[name]}'"):
            build_model(net, BuildOptions(inputs=shapes))
        return
    built = build_model(net, BuildOptions(inputs=shapes))
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(shapes[n], generator=generator) for n in built.inputs]
    with torch.inference_mode():
        result = built.module(*inputs)
    outputs = result if isinstance(result, tuple) else (result,)
    assert len(outputs) == len(built.outputs) >= 1
    assert all(o.shape[0] == 1 for o in outputs if o.dim())
