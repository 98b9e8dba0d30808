"""How the net is built before any BN is folded (issue #6): Caffe's TEST-phase include/exclude
rules, nets embedded in solver files, V1 ``layers`` with string types, two-bottom Scale layers,
BatchNorm outputs with several readers, and caffemodels that hold only some layers' weights.

Expected values come from Caffe's rules and README's formula, written here; nets are small
prototxts written in the tests, or corpus files (``tests/data/corpus``, LIST.json).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import bnconvert
from bnconvert.errors import MissingLayerError
from bnconvert.inspect import inspect_net
from bnconvert.read.net import load_net

from caffe_builder import NetBuilder, blob
from conftest import CORPUS, CORPUS_LIST, invoke_cli

_SOLVER_NET = re.compile(r"^(?:train_)?net_param\s*\{", re.M)  # a solver's embedded net
MEAN, VAR, GAMMA, BETA = [1.0, -2.0, 3.0], [4.0, 5.0, 6.0], [0.5, 1.5, 2.5], [0.1, 0.2, 0.3]
SCB = "ducha-aiki__caffenet-benchmark__prototxt__activations__caffenet128_lsuv_BatchNorm_ScB_nononlin.prototxt"  # noqa: E501

HEAD = """name: "rules"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "x"
        convolution_param { num_output: 3 kernel_size: 1 } }
"""  # noqa: E501


def write(tmp_path: Path, text: str, name: str = "net.prototxt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def weights(tmp_path: Path, factor: float = 2.0, scale: bool = True, beta: bool = True,
            bn: bool = True, extra: tuple[str, ...] = ()) -> Path:
    """A caffemodel with weights for "bn" (and "sc") only, plus layers named in ``extra``."""
    b = NetBuilder("weights")
    if bn:
        b.layer("bn", "BatchNorm", [], [], [blob(MEAN), blob(VAR), blob([factor])])
    if scale:
        b.layer("sc", "Scale", [], [], [blob(GAMMA)] + ([blob(BETA)] if beta else []))
    for name in extra:
        b.layer(name, "InnerProduct", [], [], [blob([1.0] * 6, [2, 3])])
    return b.save(tmp_path / "model", prototxt=False)[1]


def f32(values: list[float], factor: float) -> np.ndarray:
    """README: mean = blob0 * (1/s), float32 reciprocal and product."""
    return np.array(values, np.float32) * (np.float32(1) / np.float32(factor))


# --- TEST-phase include/exclude rules ------------------------------------------------------

PER_PHASE = HEAD + """
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" include { phase: TRAIN }
        batch_norm_param { use_global_stats: false eps: 0.5 } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" include { phase: TEST }
        batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
layer { name: "gone" type: "BatchNorm" bottom: "x" top: "y" exclude { phase: TEST } }
layer { name: "kept" type: "BatchNorm" bottom: "x" top: "z" exclude { phase: TRAIN } }
"""


def test_batch_norm_defined_once_per_phase_appears_once(tmp_path: Path) -> None:
    net = load_net(write(tmp_path, PER_PHASE), None)
    assert [(x.name, x.type) for x in net.layers] == [
        ("data", "Input"), ("conv", "Convolution"), ("bn", "BatchNorm"), ("sc", "Scale"),
        ("kept", "BatchNorm")]
    report = inspect_net(net)
    assert [(c.batch_norm, c.scale) for c in report.chains] == [("bn", "sc"), ("kept", None)]
    assert report.chains[0].eps == pytest.approx(np.float32(0.001))  # the TEST definition's
    assert report.chains[0].use_global_stats and not report.chains[0].notes


def test_per_phase_batch_norm_converts_with_the_test_definition(tmp_path: Path) -> None:
    text = PER_PHASE.replace('layer { name: "kept"', '# layer { name: "kept"')
    records = bnconvert.load_batch_norms(write(tmp_path, text), weights(tmp_path))
    (record,) = records
    assert record.key == "bn" and record.eps == float(np.float32(0.001))
    assert record.use_global_stats and record.warnings == ()
    assert np.array_equal(record.running_mean, f32(MEAN, 2.0))


def test_corpus_train_test_file_defines_each_batch_norm_twice() -> None:
    counts = CORPUS_LIST[SCB]["counts"]
    assert counts["BatchNorm"] == 2 * counts["test_phase_BatchNorm"] > 0
    report = inspect_net(load_net(CORPUS / SCB, None))
    assert len(report.chains) == counts["test_phase_BatchNorm"]
    assert len(report.chains) == len({c.batch_norm for c in report.chains})
    assert all(c.use_global_stats and c.scale for c in report.chains)  # TEST's: true


# --- solver-embedded nets ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["net_param", "train_net_param"])
def test_net_embedded_in_a_solver(field: str, tmp_path: Path) -> None:
    net_text = PER_PHASE.replace('name: "rules"\n', "")
    solver = f'base_lr: 0.01\nmax_iter: 10\nsolver_mode: GPU\n{field} {{\n{net_text}\n}}\n'
    path = write(tmp_path, solver, "solver.prototxt")
    net = load_net(path, None)
    assert net.source == f"solver {field}"
    assert [c.batch_norm for c in inspect_net(net).chains] == ["bn", "kept"]
    result = invoke_cli("inspect", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: 2 BatchNorm chain(s): BVLC BatchNorm + Scale x1, "
                                    "BVLC BatchNorm (no Scale) x1\n")


def test_corpus_solver_files_are_read_as_their_net() -> None:
    solvers = [n for n, e in CORPUS_LIST.items() if e["solver_embedded_net"]]
    assert solvers == [n for n in CORPUS_LIST if _SOLVER_NET.search((CORPUS / n).read_text())]
    for name in solvers:
        net = load_net(CORPUS / name, None)
        assert net.source == "solver net_param"
        assert len(inspect_net(net).chains) == CORPUS_LIST[name]["counts"]["test_phase_BatchNorm"]


# --- V1 layers with string types -----------------------------------------------------------

V1_NET = """name: "v1"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "x"
         convolution_param { num_output: 3 kernel_size: 1 } }
layers { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
layers { name: "sc" type: "Scale" bottom: "x" top: "x" }
layers { name: "relu" type: "ReLU" bottom: "x" top: "x" }
layers { name: "prob" type: "Softmax" bottom: "x" top: "prob" }
"""


def test_v1_string_types_name_the_layers(tmp_path: Path) -> None:
    net = load_net(write(tmp_path, V1_NET), None)
    assert [x.type for x in net.layers] == ["Convolution", "BatchNorm", "Scale", "ReLU",
                                            "Softmax"]
    report = inspect_net(net)
    assert [(c.batch_norm, c.scale, c.rank) for c in report.chains] == [("bn", "sc", 4)]


def test_v1_string_types_convert_with_a_v2_caffemodel(tmp_path: Path) -> None:
    """A V1 layer has no scale_param, so the Scale has Caffe's default bias_term: false."""
    model = weights(tmp_path, 95.2, beta=False)
    (record,) = bnconvert.load_batch_norms(write(tmp_path, V1_NET), model)
    assert np.array_equal(record.running_var, f32(VAR, 95.2))
    assert np.array_equal(record.weight, np.array(GAMMA, np.float32))
    assert np.array_equal(record.bias, np.zeros(3, np.float32))


def test_corpus_v1_file_with_a_string_type() -> None:
    """The file's one V1 ``layers`` entry (the final Softmax, type written as a string) sits
    beside 300 V2 layers; the BN chains are in the V2 layers."""
    name = "lim0606__caffe-googlenet-bn__deploy.prototxt"
    assert CORPUS_LIST[name]["counts"]["v1_layers"] == 1
    report = inspect_net(load_net(CORPUS / name, None))
    assert len(report.chains) == CORPUS_LIST[name]["counts"]["test_phase_BatchNorm"] > 0
    assert all(c.scale for c in report.chains)


# --- two-bottom Scale (SE gating) ----------------------------------------------------------

SE_NET = HEAD + """
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: AVE global_pooling: true } }
layer { name: "gate" type: "Sigmoid" bottom: "p" top: "g" }
layer { name: "sc" type: "Scale" bottom: "x" bottom: "g" top: "x" scale_param { axis: 0 } }
"""  # noqa: E501


def test_two_bottom_scale_is_never_folded(tmp_path: Path) -> None:
    prototxt = write(tmp_path, SE_NET)
    report = inspect_net(load_net(prototxt, None))
    assert [(c.batch_norm, c.scale, c.affine) for c in report.chains] == [("bn", None, False)]
    (row,) = report.standalone_affine
    assert (row.layer, row.type) == ("sc", "Scale")
    assert row.reason.startswith("2 bottoms: it takes its factors from another blob")
    (record,) = bnconvert.load_batch_norms(prototxt, weights(tmp_path, scale=False))
    assert record.weight is None and record.bias is None


def test_corpus_mobilenet_v3_gating_scales() -> None:
    name = "eric612__MobileNet-YOLO__models__mobilenetv3_voc__test.prototxt"
    report = inspect_net(load_net(CORPUS / name, None))
    gating = [r for r in report.standalone_affine if r.reason.startswith("2 bottoms")]
    assert len(gating) == CORPUS_LIST[name]["scale_two_bottom"] > 0
    scales = {c.scale for c in report.chains}
    assert not scales & {r.layer for r in gating}


# --- a BatchNorm output with other readers ---------------------------------------------------

MULTI_READER = HEAD + """
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }
layer { name: "sc" type: "Scale" bottom: "y" top: "s" scale_param { bias_term: true } }
layer { name: "sum" type: "Eltwise" bottom: "y" bottom: "s" top: "out" }
"""


def test_multi_reader_batch_norm_is_not_folded_and_says_so(tmp_path: Path) -> None:
    prototxt = write(tmp_path, MULTI_READER)
    result = invoke_cli("inspect", str(prototxt))
    assert result.exit_code == 0, result.output
    note = ("Scale 'sc' not folded: 'bn''s output is also read by 'sum', and folding would "
            "change their input")
    assert f"  bn: {note}\n" in result.output
    assert f"  sc (Scale): {note}\n" in result.output  # the standalone list gives the same why
    model = weights(tmp_path)
    out = tmp_path / "bn.pt"
    result = invoke_cli("convert", str(prototxt), str(model), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"bnconvert: warning: {note}" in result.stderr
    assert "1 BatchNorm layers (0 affine, 1 non-affine)" in result.stdout


# --- why a Scale is standalone --------------------------------------------------------------


@pytest.mark.parametrize("layers,reason", [
    ('layer { name: "sc" type: "Scale" bottom: "data" top: "s" }',
     "reads 'data' (Input), not a BatchNorm: a standalone affine, not part of any BN record"),
    ('layer { name: "sc" type: "Scale" bottom: "x" top: "s" }',
     "reads 'conv' (Convolution), not a BatchNorm: a standalone affine, not part of any BN "
     "record"),
    ('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }\n'
     'layer { name: "sc0" type: "Scale" bottom: "x" top: "x" }\n'
     'layer { name: "sc" type: "Scale" bottom: "x" top: "x" }',
     "follows BatchNorm 'bn''s chain, which already has its Scale: a second affine, not "
     "folded"),
    ('layer { name: "bn" type: "BN" bottom: "x" top: "x" bn_param { bn_mode: INFERENCE } }\n'
     'layer { name: "sc" type: "Scale" bottom: "x" top: "x" }',
     "follows 'bn' (SegNet/ENet BN), which carries its own scale and shift: kept as a "
     "separate affine"),
])
def test_standalone_scale_says_why(layers: str, reason: str, tmp_path: Path) -> None:
    report = inspect_net(load_net(write(tmp_path, HEAD + layers), None))
    row = report.standalone_affine[-1]
    assert (row.layer, row.type, row.reason) == ("sc", "Scale", reason)


# --- partial caffemodels ---------------------------------------------------------------------

PARTIAL = HEAD + """
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" inner_product_param { num_output: 2 } }
"""  # noqa: E501


def test_weights_for_the_batch_norm_layers_only_convert(tmp_path: Path) -> None:
    prototxt, model = write(tmp_path, PARTIAL), weights(tmp_path, 999.98)
    out = tmp_path / "bn.pt"
    result = invoke_cli("convert", str(prototxt), str(model), "-o", str(out))
    assert result.exit_code == 0, result.output
    import torch

    state = torch.load(out, weights_only=True)
    assert np.array_equal(state["bn.running_mean"].numpy(), f32(MEAN, 999.98))
    assert np.array_equal(state["bn.running_var"].numpy(), f32(VAR, 999.98))
    assert np.array_equal(state["bn.weight"].numpy(), np.array(GAMMA, np.float32))


def test_inspect_reports_the_missing_weights_without_failing(tmp_path: Path) -> None:
    prototxt, model = write(tmp_path, PARTIAL), weights(tmp_path, extra=("old_fc",))
    report = inspect_net(load_net(prototxt, model))
    assert report.missing_weights == ("conv", "fc")  # Input has no weights to miss
    assert report.unused_weights == ("old_fc",)
    assert [(c.batch_norm, c.scale, c.channels, c.scale_factor) for c in report.chains] == [
        ("bn", "sc", 3, 2.0)]
    result = invoke_cli("inspect", str(prototxt), str(model))
    assert result.exit_code == 0, result.output
    assert ("layers without weights in the caffemodel (Caffe keeps their initial values; not "
            "needed for BN conversion): conv, fc\n") in result.output
    assert "caffemodel layers the net does not have (ignored, as Caffe does): old_fc" in \
        result.output


def test_missing_batch_norm_weights_fail_naming_the_layer(tmp_path: Path) -> None:
    prototxt = write(tmp_path, PARTIAL)
    model = weights(tmp_path, bn=False, scale=False, extra=("old_fc",))
    with pytest.raises(MissingLayerError, match="layer 'bn' \\(BatchNorm\\) has no weights in "
                                                "the caffemodel"):
        bnconvert.load_batch_norms(prototxt, model)
    result = invoke_cli("inspect", str(prototxt), str(model))
    assert result.exit_code == 0, result.output
    # Issue #14: the chain's own layers are needed; inspect says so as convert does.
    assert "(Caffe keeps their initial values; not needed for BN conversion): conv, fc\n" \
        in result.output
    assert "bn: cannot convert: " in result.output and "layer 'bn' (BatchNorm) has no weights " \
        "in the caffemodel" in result.output


def test_unrecognized_blob_layout_is_listed_as_not_converted(tmp_path: Path) -> None:
    prototxt = write(tmp_path, PARTIAL)
    b = NetBuilder("weights")
    b.layer("bn", "BatchNorm", [], [], [blob(MEAN), blob(VAR)])  # 2 blobs: no known layout
    model = b.save(tmp_path / "model", prototxt=False)[1]
    report = inspect_net(load_net(prototxt, model))
    (chain,) = report.chains
    assert (chain.flavour_id, chain.convertible, chain.scale) == ("unrecognized", False, None)
    (row,) = report.not_converted
    assert (row.layer, row.type) == ("bn", "BatchNorm")
    assert row.reason.startswith("layer 'bn' (BatchNorm) has 2 blobs ([3], [3]): no known "
                                 "BatchNorm layout")
    result = invoke_cli("inspect", str(prototxt), str(model))
    assert result.exit_code == 0, result.output
    assert "  bn: cannot convert: layer 'bn' (BatchNorm) has 2 blobs" in result.output
    assert "not converted (1):\n  BatchNorm x1: bn: layer 'bn'" in result.output


def test_mixed_layer_and_v1_layers_is_refused_like_caffe(tmp_path: Path) -> None:
    """Caffe will not build a file with both V2 'layer' and V1 'layers' entries."""
    prototxt = tmp_path / "mixed.prototxt"
    prototxt.write_text('layer { name: "data" type: "Input" top: "data" input_param { shape '
                        '{ dim: 1 dim: 3 dim: 2 dim: 2 } } }\n'
                        'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }\n'
                        'layers { name: "prob" type: SOFTMAX bottom: "data" top: "prob" }\n')
    inspected = invoke_cli("inspect", str(prototxt))
    assert inspected.exit_code == 0
    message = ("the file mixes 2 V2 'layer' and 1 V1 'layers' entries, which Caffe refuses to "
               "build; only the 'layer' entries were read (rewrite the V1 ones as 'layer')")
    assert f"warning: {message}\n" in inspected.output
    builder = NetBuilder().input("data", [1, 3, 2, 2])
    builder.batch_norm("bn", "data", "data", [0.0] * 3, [1.0] * 3, 1.0)
    _, model = builder.save(tmp_path / "m", prototxt=False)
    converted = invoke_cli("convert", str(prototxt), str(model), "-o",
                           str(tmp_path / "o.pt"))
    assert converted.exit_code == 1
    assert converted.output == f"bnconvert: error: {prototxt} + {model}: {message}\n"
