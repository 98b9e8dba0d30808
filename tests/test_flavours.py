"""The flavour registry (``bnconvert.flavours``): every command's ``--flavor`` offers exactly the
selectable flavours, at most one flavour claims any BN-like layer, and ``inspect`` imports
neither numpy nor torch, with or without a caffemodel.

The layers are self-built (``fork_net``), one for each layout the flavour modules document:
BVLC (3 blobs), NVIDIA (``scale_bias`` or its fillers; 3 or 5 blobs; DIGITS' legacy order, whose
fifth blob has one element), Intel (4 or 5 blobs, no NVIDIA field), SegNet (2 blobs or its
``bn_param`` fields), PSPNet/yjxiong (4 blobs or its fields), a ``BN`` that nothing decides
without blobs, each without a caffemodel where the layout allows it, and layouts no flavour
has. The expected flavour of each comes from those documented layouts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bnconvert.cli import main
from bnconvert.flavours import FLAVOURS, Flavour, detect_flavour, selectable_ids
from bnconvert.read.net import Layer, load_net

from caffe_builder import blob
from conftest import CAFFE, FORKS, fork_net

ROOT = Path(__file__).resolve().parent.parent
C = 3  # channels of fork_net's input
SCALE_BIAS = "batch_norm_param { scale_bias: true }"
NV_FILLERS = ('batch_norm_param { scale_filler { type: "constant" value: 1 } '
              'bias_filler { type: "constant" value: 0 } }')
SEGNET_FIELD = 'bn_param { scale_filler { type: "constant" value: 1 } }'
YJXIONG_FIELD = "bn_param { frozen: true }"
AMBIGUOUS = "two fields' flavours: which one wins is not documented, only that one does"

#: (case, layer type, param text, blob sizes (None: no caffemodel), expected flavour id or None
#: for a layout no flavour has, or AMBIGUOUS)
LAYOUTS: list[tuple[str, str, str, list[int] | None, str | None]] = [
    ("bvlc, prototxt only", "BatchNorm", "", None, "bvlc"),
    ("bvlc, 3 blobs", "BatchNorm", "", [C, C, 1], "bvlc"),
    ("bvlc, use_global_stats false", "BatchNorm",
     "batch_norm_param { use_global_stats: false }", [C, C, 1], "bvlc"),
    ("nvcaffe scale_bias, prototxt only", "BatchNorm", SCALE_BIAS, None, "nvcaffe"),
    ("nvcaffe fillers, prototxt only", "BatchNorm", NV_FILLERS, None, "nvcaffe"),
    ("nvcaffe, 3 blobs", "BatchNorm", SCALE_BIAS, [C, C, 1], "nvcaffe"),
    ("nvcaffe, 5 blobs", "BatchNorm", SCALE_BIAS, [C, C, 1, C, C], "nvcaffe"),
    ("nvcaffe fillers, 5 blobs", "BatchNorm", NV_FILLERS, [C, C, 1, C, C], "nvcaffe"),
    ("nvcaffe, DIGITS order", "BatchNorm", SCALE_BIAS, [C, C, C, C, 1], "nvcaffe-digits"),
    ("DIGITS order without the field", "BatchNorm", "", [C, C, C, C, 1], "nvcaffe-digits"),
    ("intel, 4 blobs", "BatchNorm", "", [C, C, 1, C], "intel"),
    ("intel, 5 blobs", "BatchNorm", "", [C, C, 1, C, C], "intel"),
    ("BatchNorm, 2 blobs", "BatchNorm", "", [C, C], None),
    ("BatchNorm, 6 blobs", "BatchNorm", "", [C, C, 1, C, C, C], None),
    ("nvcaffe field, 4 blobs", "BatchNorm", SCALE_BIAS, [C, C, 1, C], None),
    ("BN, prototxt only, no field", "BN", "", None, "bn-unknown"),
    ("BN, prototxt only, empty bn_param", "BN", "bn_param { }", None, "bn-unknown"),
    ("segnet field, prototxt only", "BN", SEGNET_FIELD, None, "segnet"),
    ("segnet bn_mode, prototxt only", "BN", "bn_param { bn_mode: 1 }", None, "segnet"),
    ("segnet, 2 blobs", "BN", "", [C, C], "segnet"),
    ("segnet field, 2 blobs", "BN", SEGNET_FIELD, [C, C], "segnet"),
    ("yjxiong field, prototxt only", "BN", YJXIONG_FIELD, None, "yjxiong"),
    ("yjxiong eps, prototxt only", "BN", "bn_param { eps: 1e-4 }", None, "yjxiong"),
    ("yjxiong, 4 blobs", "BN", "", [C, C, C, C], "yjxiong"),
    ("yjxiong field, 4 blobs", "BN", YJXIONG_FIELD, [C, C, C, C], "yjxiong"),
    ("yjxiong field, 2 blobs", "BN", YJXIONG_FIELD, [C, C], None),
    ("segnet field, 4 blobs", "BN", SEGNET_FIELD, [C, C, C, C], None),
    ("BN, 3 blobs", "BN", "", [C, C, C], None),
    ("BN, both forks' fields, prototxt only", "BN", "bn_param { bn_mode: 1 frozen: true }",
     None, AMBIGUOUS),
]
IDS = [case[0] for case in LAYOUTS]


def built_layer(tmp_path: Path, layer_type: str, param_text: str,
                sizes: list[int] | None) -> Layer:
    """The layer ``bn`` as ``load_net`` reads it (with its blobs when ``sizes`` is given)."""
    blobs = [blob([0.5] * size) for size in sizes or ()]
    prototxt, model = fork_net(tmp_path, layer_type, blobs, param_text)
    net = load_net(prototxt, model if sizes is not None else None)
    (layer,) = [x for x in net.layers if x.name == "bn"]
    return layer


def claimants(layer: Layer) -> list[Flavour]:
    """Every registered flavour of the layer's type that claims it."""
    return [f for f in FLAVOURS.values() if f.layer_type == layer.type and f.claims(layer)]


# --- the CLI's list --------------------------------------------------------------------------


def flavor_choices(command: str) -> tuple[str, ...]:
    """The values a command's ``--flavor`` accepts, as click holds them."""
    assert isinstance(main, click.Group)
    (option,) = [p for p in main.commands[command].params if p.name == "flavor"]
    assert isinstance(option.type, click.Choice)
    return tuple(option.type.choices)


@pytest.mark.parametrize("command", ["convert", "inspect", "verify"])
def test_cli_flavor_choices_are_the_selectable_flavours_in_order(command: str) -> None:
    assert flavor_choices(command) == selectable_ids()


def test_every_selectable_flavour_is_registered_and_variants_are_not_offered() -> None:
    offered = flavor_choices("convert")
    assert offered and set(offered) <= set(FLAVOURS)
    assert all(FLAVOURS[i].selectable for i in offered)
    assert {i for i, f in FLAVOURS.items() if not f.selectable}.isdisjoint(offered)


# --- claims exclude each other -----------------------------------------------------------------


@pytest.mark.parametrize(("layer_type", "param_text", "sizes", "expected"),
                         [case[1:] for case in LAYOUTS], ids=IDS)
def test_at_most_one_flavour_claims_a_layer(tmp_path: Path, layer_type: str, param_text: str,
                                           sizes: list[int] | None,
                                           expected: str | None) -> None:
    layer = built_layer(tmp_path, layer_type, param_text, sizes)
    found = [f.id for f in claimants(layer)]
    assert len(found) <= 1, found
    if expected is None:
        assert found == []
    elif expected is not AMBIGUOUS:
        assert found == [expected]
        assert detect_flavour(layer).id == expected


def test_the_layouts_cover_every_registered_flavour() -> None:
    assert {case[4] for case in LAYOUTS} - {None, AMBIGUOUS} == set(FLAVOURS)


# --- inspect pays for neither numpy nor torch --------------------------------------------------
# With a caffemodel, inspect runs convert's checks on the weights (bnconvert/fold/checks.py),
# which need no numpy either.

_INSPECT = """
import json, sys
from bnconvert.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "torch"))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def inspect_imports(*args: object) -> tuple[object, set[str]]:
    """``bnconvert inspect ARGS`` in a fresh interpreter: its exit code and the top-level
    packages of numpy/torch it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", _INSPECT, "inspect", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.stderr.strip(), done.stdout
    outcome = json.loads(done.stderr.strip().splitlines()[-1])
    return outcome["code"], {m.split(".")[0] for m in outcome["heavy"]}


@pytest.mark.parametrize("args", [
    [CAFFE / "resnet_block" / "deploy.prototxt"],
    [CAFFE / "resnet_block" / "deploy.prototxt", "--json"],
    [FORKS / "segnet" / "segnet_conv_bn_inference" / "deploy.prototxt"],
    [FORKS / "nvcaffe" / "nv_scale_bias_float" / "deploy.prototxt"],
    [CAFFE / "resnet_block" / "deploy.prototxt", CAFFE / "resnet_block" / "model.caffemodel",
     "--json"],
    [CAFFE / "global_stats_false" / "deploy.prototxt",
     CAFFE / "global_stats_false" / "model.caffemodel"],
    [FORKS / "segnet" / "segnet_conv_bn_inference" / "model.caffemodel"],
    [FORKS / "pspnet" / "psp_conv_bn_relu" / "model.caffemodel"],
    [FORKS / "nvcaffe" / "nv_scale_bias_float" / "model.caffemodel"],
], ids=["prototxt", "prototxt json", "segnet prototxt", "nvcaffe prototxt", "both json",
        "global stats false", "segnet", "pspnet", "nvcaffe"])
def test_inspect_imports_neither_numpy_nor_torch(args: list[object]) -> None:
    code, heavy = inspect_imports(*args)
    assert code == 0
    assert heavy == set()
