"""Issue #6: every public Caffe net of the corpus parses, inspects and converts.

Ground truth is ``tests/data/corpus/LIST.json``, computed outside this project (with protobuf,
BVLC Caffe and a per-layer census of the original files). Which LIST.json fields each check uses:

- chain count: ``counts.test_phase_BatchNorm + counts.test_phase_BN`` (TEST-phase BN-like
  layers, each one chain);
- layer type of each chain: ``counts.test_phase_BatchNorm`` / ``counts.test_phase_BN``;
- flavour and pairing: ``flavour_counts`` (LIST.json's flavour names, mapped to our flavour ids
  and "paired with a Scale or not" by ``LIST_FLAVOURS`` below);
- Scale layers: ``counts.test_phase_Scale`` = paired + standalone; standalone =
  ``scale_two_bottom`` (reason: two bottoms) + ``scale_not_after_batchnorm``;
- Bias layers: ``counts.Bias`` (0 everywhere: no chain has a Bias);
- EltwiseAffine not converted: ``flavour_counts["BatchNorm+EltwiseAffine (fork)"]`` and
  ``unknown_layer_types``;
- eps of BatchNorm layers: ``batchnorm_eps_values`` (``default(1e-5)`` = unset);
- conversion: ``bvlc_loadable`` (the nets BVLC Caffe builds in TEST), ``bvlc_tested_file``
  (the file Caffe built: the ``.adapted.prototxt`` where the original needs a header change),
  ``bvlc_detail.n_bn`` / ``n_scale`` (layer counts in Caffe's built net) and
  ``bvlc_detail.bn_blob_shapes_sample`` (blob shapes Caffe allocated: checks the channel counts
  this test derives from the net).

The caffemodels for the conversion test are made here with protobuf: blobs only for the
BatchNorm/Scale/Bias layers of the TEST-phase net (so every convolution's weights are missing,
as in a partial caffemodel), channel counts derived from the net by this module's own walk over
``num_output`` (not bnconvert's code), and the expected values from the formula in README
("What it computes"), computed here in float32.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from google.protobuf import text_format

import bnconvert
from bnconvert._proto import caffe_pb2
from bnconvert.inspect import InspectReport, inspect_net
from bnconvert.read.net import Net, load_net

from conftest import CORPUS, CORPUS_ADAPTED, CORPUS_ENTRIES, CORPUS_LIST, invoke_cli

ROOT = Path(__file__).parent.parent
ORIGINALS = sorted(CORPUS_LIST)
LOADABLE = sorted(name for name, e in CORPUS_LIST.items() if e["bvlc_loadable"])

#: LIST.json's flavour names -> (our flavour id, a Scale is paired with the BN layer).
LIST_FLAVOURS = {
    "BVLC BatchNorm+Scale(bias_term:true)": ("bvlc", True),
    "BVLC BatchNorm without Scale": ("bvlc", False),
    "NVCaffe BatchNorm scale_bias:true (fused affine)": ("nvcaffe", False),
    "NVCaffe BatchNorm with scale_filler/bias_filler (scale_bias unset)": ("nvcaffe", False),
    "caffe-segnet-fork BN (bn_param scale_filler/shift_filler/bn_mode, fused affine)":
        ("segnet", False),
    "yjxiong/PSPNet-fork BN (bn_param slope_filler/bias_filler, fused affine)":
        ("yjxiong", False),
    # A BVLC BatchNorm with no Scale; the EltwiseAffine after it is reported as not converted.
    "BatchNorm+EltwiseAffine (fork)": ("bvlc", False),
}
ELTWISE_AFFINE = "BatchNorm+EltwiseAffine (fork)"


@functools.cache
def net_of(name: str) -> Net:
    return load_net(CORPUS / name, None)


@functools.cache
def report_of(name: str) -> InspectReport:
    return inspect_net(net_of(name))


def test_list_json_flavours_are_all_mapped() -> None:
    assert {f for e in CORPUS_ENTRIES for f in e["flavour_counts"]} == set(LIST_FLAVOURS)
    assert len(ORIGINALS) == len(CORPUS_ENTRIES)  # one entry per original file
    assert ORIGINALS == sorted(p.name for p in CORPUS.glob("*.prototxt")
                               if not p.name.endswith(".adapted.prototxt"))
    tested = [CORPUS / CORPUS_LIST[name]["bvlc_tested_file"] for name in LOADABLE]
    assert tested and all(path.is_file() for path in tested)


# --- parse, chain count, pairing, flavour --------------------------------------------------


@pytest.mark.parametrize("name", ORIGINALS)
def test_chain_count_and_layer_types(name: str) -> None:
    counts = CORPUS_LIST[name]["counts"]
    report = report_of(name)
    assert len(report.chains) == counts["test_phase_BatchNorm"] + counts["test_phase_BN"]
    assert Counter(c.layer_type for c in report.chains) == Counter(
        {"BatchNorm": counts["test_phase_BatchNorm"], "BN": counts["test_phase_BN"]}) - Counter()
    assert all(c.convertible for c in report.chains)
    assert sum(c.bias is not None for c in report.chains) == counts["Bias"] == 0


@pytest.mark.parametrize("name", ORIGINALS)
def test_flavour_and_pairing(name: str) -> None:
    expected: Counter[tuple[str, bool]] = Counter()
    for flavour, n in CORPUS_LIST[name]["flavour_counts"].items():
        expected[LIST_FLAVOURS[flavour]] += n
    report = report_of(name)
    assert Counter((c.flavour_id, c.scale is not None) for c in report.chains) == expected
    assert sum(report.flavour_counts.values()) == len(report.chains)


@pytest.mark.parametrize("name", ORIGINALS)
def test_paired_scale_reads_its_batch_norms_output(name: str) -> None:
    """In the file, every paired Scale's bottom is its BatchNorm's top (names checked against
    the net as written, independently of the blob-version walk that paired them)."""
    layers = {layer.name: layer for layer in net_of(name).layers}
    for chain in report_of(name).chains:
        if chain.scale is not None:
            scale, bn = layers[chain.scale], layers[chain.batch_norm]
            assert scale.type == "Scale" and scale.bottoms == (bn.tops[0],)
            assert scale.index > bn.index


@pytest.mark.parametrize("name", ORIGINALS)
def test_scale_layers_not_paired_are_standalone_with_a_reason(name: str) -> None:
    entry = CORPUS_LIST[name]
    report = report_of(name)
    paired = sum(c.scale is not None for c in report.chains)
    standalone = [r for r in report.standalone_affine if r.type == "Scale"]
    assert paired + len(standalone) == entry["counts"]["test_phase_Scale"]
    assert len(standalone) == entry["scale_two_bottom"] + entry["scale_not_after_batchnorm"]
    two_bottom = [r for r in standalone if r.reason.startswith("2 bottoms")]
    assert len(two_bottom) == entry["scale_two_bottom"]
    assert all(r.reason for r in standalone)


@pytest.mark.parametrize("name", ORIGINALS)
def test_only_eltwise_affine_is_not_converted(name: str) -> None:
    entry = CORPUS_LIST[name]
    report = report_of(name)
    expected = entry["flavour_counts"].get(ELTWISE_AFFINE, 0)
    assert expected == entry["unknown_layer_types"].get("EltwiseAffine", 0)
    assert [r.type for r in report.not_converted] == ["EltwiseAffine"] * expected
    after_chains = {c.batch_norm for c in report.chains} if expected else set()
    assert {r.after for r in report.not_converted} == after_chains


def _listed_eps(value: str) -> float:
    return 1e-5 if value == "default(1e-5)" else float(value)


@pytest.mark.parametrize("name", ORIGINALS)
def test_batch_norm_eps_as_listed(name: str) -> None:
    """BVLC uses eps as written (float32); NVIDIA Caffe raises it to at least 1e-5 (its CUDNN
    minimum), so there the effective eps is max(listed, 1e-5)."""
    listed = {np.float32(_listed_eps(v)) for v in CORPUS_LIST[name]["batchnorm_eps_values"]}
    rows = [c for c in report_of(name).chains if c.layer_type == "BatchNorm"]
    if any(c.flavour_id == "nvcaffe" for c in rows):
        listed = {max(v, np.float32(1e-5)) for v in listed}
    assert {np.float32(c.eps) for c in rows} == listed


def test_eltwise_affine_file_says_what_is_not_converted_and_why() -> None:
    name = next(n for n in ORIGINALS if ELTWISE_AFFINE in CORPUS_LIST[n]["flavour_counts"])
    result = invoke_cli("inspect", str(CORPUS / name))
    assert result.exit_code == 0, result.output
    assert ": 7 BatchNorm chain(s): BVLC BatchNorm (no Scale) x7\n" in result.output
    assert ("  conv1_BN: EltwiseAffine 'ea_BN1' after 'conv1_BN' is not folded (a fork layer "
            "with no reference semantics): the BatchNorm is converted without it, port it "
            "separately\n") in result.output
    assert ("not converted (7):\n  EltwiseAffine x7: ea_BN1 (after conv1_BN), ea_BN2 (after "
            "conv2_BN),") in result.output
    assert "unmerged Caffe pull request (BVLC/caffe#2996" in result.output


def test_se_gating_scales_are_named_with_their_reason() -> None:
    name = "hujie-frank__SENet__models__SE-BN-Inception.prototxt"
    result = invoke_cli("inspect", str(CORPUS / name))
    assert result.exit_code == 0, result.output
    assert "Scale/Bias not part of a BatchNorm (10; not converted" in result.output
    assert ("  inception_3a_scale (Scale): 2 bottoms: it takes its factors from another blob "
            "(e.g. SE gating), it is not a BatchNorm's affine\n") in result.output


def test_scale_on_the_net_input_is_a_standalone_affine() -> None:
    name = "hszhao__ICNet__evaluation__prototxt__icnet_cityscapes_bnnomerge.prototxt"
    (row,) = report_of(name).standalone_affine
    assert (row.layer, row.type) == ("data_sub1", "Scale")
    assert row.reason == "reads the net input 'data': a standalone affine, no BatchNorm feeds it"


# --- the command line on every file ------------------------------------------------------


@pytest.mark.parametrize("name", sorted([*ORIGINALS, *CORPUS_ADAPTED]))
def test_cli_inspect_lists_every_chain(name: str) -> None:
    entry = CORPUS_LIST.get(name) or CORPUS_ADAPTED[name]
    counts = entry["counts"]
    result = invoke_cli("inspect", str(CORPUS / name))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    chains = counts["test_phase_BatchNorm"] + counts["test_phase_BN"]
    assert lines[0].startswith(f"{CORPUS / name}: {chains} BatchNorm chain(s): ")
    table = lines[2 : 2 + chains]
    for row, chain in zip(table, report_of(entry["local_file"]).chains, strict=True):
        layers = " -> ".join(x for x in (chain.batch_norm, chain.scale) if x)
        assert row.split("  ")[0] == chain.key and f"  {layers}  " in row
        assert f"  {chain.flavour}  " in row


@pytest.mark.parametrize("name", ORIGINALS)
def test_cli_inspect_json_names_each_flavour(name: str) -> None:
    result = invoke_cli("inspect", "--json", str(CORPUS / name))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ids = Counter(LIST_FLAVOURS[f][0] for f, n in CORPUS_LIST[name]["flavour_counts"].items()
                  for _ in range(n))
    assert Counter(c["flavour_id"] for c in data["chains"]) == ids
    assert all(c["flavour"] for c in data["chains"])


# --- README ------------------------------------------------------------------------------


def test_readme_tested_on_section_is_the_generated_table(corpus_trials: Any) -> None:
    """README's "Tested on" is ``scripts/tested_on_table.py``'s output for the code as it is
    (its build-and-run column from the session's runs, which ``test_build_corpus`` checks)."""
    spec = importlib.util.spec_from_file_location(
        "tested_on_table", ROOT / "scripts" / "tested_on_table.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = script.render(corpus_trials)
    assert section in readme, "run: python scripts/tested_on_table.py --write"
    assert readme.index(section) < readme.index("## Development")


# --- parse time --------------------------------------------------------------------------


def test_all_original_files_load_in_well_under_ten_seconds() -> None:
    """A loose guard; benchmarks/parse_corpus.py measures it (README: under 2 s)."""
    start = time.perf_counter()
    for name in ORIGINALS:
        load_net(CORPUS / name, None)
    assert time.perf_counter() - start < 10


# --- convert: the nets BVLC Caffe builds ------------------------------------------------


def _meets(rule: caffe_pb2.NetStateRule) -> bool:
    assert not (rule.HasField("min_level") or rule.HasField("max_level") or rule.stage
                or rule.not_stage), "the corpus uses phase rules only"
    return not rule.HasField("phase") or rule.phase == caffe_pb2.TEST


def _test_phase(net: caffe_pb2.NetParameter) -> list[caffe_pb2.LayerParameter]:
    """Caffe's StateMeetsRule for phase TEST (include: any rule met; exclude: none met)."""
    return [x for x in net.layer
            if (any(_meets(r) for r in x.include) if x.include
                else not any(_meets(r) for r in x.exclude))]


def _input_channels(layer: caffe_pb2.LayerParameter) -> list[int | None]:
    """Axis 1 of each top's declared shape (one shape for all tops, or one per top)."""
    if layer.type == "MemoryData":
        return [layer.memory_data_param.channels, None]
    param = layer.input_param if layer.type == "Input" else layer.dummy_data_param
    shapes = [list(shape.dim) for shape in param.shape]
    if len(shapes) == 1:
        shapes = shapes * len(layer.top)
    return [dims[1] if len(dims) > 1 else None for dims in shapes]


def _channels(net: caffe_pb2.NetParameter,
              layers: list[caffe_pb2.LayerParameter]) -> dict[str, int | None]:
    """Channel count of every blob, by walking the net: producers set it (Input shapes,
    num_output, Concat on axis 1 sums), every other layer keeps its first bottom's."""
    channels: dict[str, int | None] = {}
    for i, name in enumerate(net.input):
        channels[name] = (net.input_shape[i].dim[1] if i < len(net.input_shape)
                          else net.input_dim[4 * i + 1])
    for layer in layers:
        if layer.type in ("Input", "DummyData", "MemoryData"):
            out = _input_channels(layer)
        elif layer.type in ("Convolution", "Deconvolution"):
            out = [layer.convolution_param.num_output] * len(layer.top)
        elif layer.type == "InnerProduct":
            out = [layer.inner_product_param.num_output] * len(layer.top)
        elif layer.type == "Concat" and layer.concat_param.axis == 1:
            parts = [channels.get(b) for b in layer.bottom]
            out = [None if None in parts else sum(parts)]  # type: ignore[arg-type]
        elif layer.type in ("Concat", "Reshape", "Flatten"):
            out = [None] * len(layer.top)
        else:
            out = [channels.get(layer.bottom[0]) if layer.bottom else None] * len(layer.top)
        channels.update(zip(layer.top, out, strict=False))
    return channels


def _sole_scale_reader(layers: list[caffe_pb2.LayerParameter], at: int):
    """The one-bottom Scale that is the only reader of layer ``at``'s top (until the blob is
    written again), else None: Caffe's BN + Scale pattern."""
    top = layers[at].top[0]
    readers = []
    for layer in layers[at + 1 :]:
        if top in layer.bottom:
            readers.append(layer)
        if top in layer.top:
            break
    if len(readers) == 1 and readers[0].type == "Scale" and len(readers[0].bottom) == 1:
        return readers[0]
    return None


def expected_key(name: str) -> str:
    """README "Keys": an identifier without ``__`` stays, else every character other than a
    letter or digit becomes ``__<utf-8 hex>__``."""
    if name.isidentifier() and "__" not in name:
        return name
    return "".join(c if c.isascii() and c.isalnum() else f"__{c.encode().hex()}__" for c in name)


@functools.cache
def corpus_net(name: str) -> tuple[Path, caffe_pb2.NetParameter, tuple, dict]:
    path = CORPUS / CORPUS_LIST[name]["bvlc_tested_file"]
    net = caffe_pb2.NetParameter()
    text_format.Parse(path.read_text(encoding="utf-8"), net)  # Caffe parsed it: no fork fields
    layers = _test_phase(net)
    return path, net, tuple(layers), _channels(net, layers)


def _blobs(values: list[np.ndarray]) -> list[caffe_pb2.BlobProto]:
    out = []
    for array in values:
        proto = caffe_pb2.BlobProto()
        proto.shape.dim.append(array.size)
        proto.data.extend(array.tolist())
        out.append(proto)
    return out


def _make_model(name: str, factor: float) -> tuple[caffe_pb2.NetParameter, dict]:
    """Weights for the BatchNorm/Scale/Bias layers only, and the expected state_dict (arrays)."""
    _, _, layers, channels = corpus_net(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    s = np.float32(factor)
    f = np.float32(1) / s  # README: f = 1 / s as a float32 reciprocal
    model = caffe_pb2.NetParameter(name="made-by-test_corpus")
    expected: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        if layer.type != "BatchNorm":
            continue
        c = channels[layer.bottom[0]]
        assert c, f"{layer.name}: channel count not derived"
        mean_acc = (rng.normal(0, 2, c) * s).astype(np.float32)  # Caffe stores mean * s
        var_acc = (rng.uniform(0.1, 3, c) * s).astype(np.float32)
        bn = model.layer.add(name=layer.name, type="BatchNorm")
        bn.blobs.extend(_blobs([mean_acc, var_acc, np.array([s], np.float32)]))
        key = expected_key(layer.name)
        expected[f"{key}.running_mean"] = mean_acc * f
        expected[f"{key}.running_var"] = var_acc * f
        expected[f"{key}.num_batches_tracked"] = np.array(0)
        scale = _sole_scale_reader(list(layers), i)
        if scale is not None:
            gamma = rng.uniform(0.5, 2, c).astype(np.float32)
            beta = rng.normal(0, 1, c).astype(np.float32)
            blobs = [gamma, beta] if scale.scale_param.bias_term else [gamma]
            model.layer.add(name=scale.name, type="Scale").blobs.extend(_blobs(blobs))
            expected[f"{key}.weight"] = gamma
            expected[f"{key}.bias"] = beta if scale.scale_param.bias_term else np.zeros_like(gamma)
    return model, expected


def test_channel_walk_agrees_with_the_blob_shapes_caffe_allocated() -> None:
    for name in LOADABLE:
        _, _, layers, channels = corpus_net(name)
        by_name = {x.name: x for x in layers}
        detail = CORPUS_LIST[name]["bvlc_detail"]
        assert sum(x.type == "BatchNorm" for x in layers) == detail["n_bn"]
        assert sum(x.type == "Scale" for x in layers) == detail["n_scale"]
        for layer_name, kind, shapes in detail["bn_blob_shapes_sample"]:
            assert channels[by_name[layer_name].bottom[0]] == shapes[0][0], (name, kind)


@pytest.mark.parametrize("factor", [1.0, 95.2, 999.98])
@pytest.mark.parametrize("name", LOADABLE)
def test_convert_gives_the_formulas_state_dict(name: str, factor: float,
                                               tmp_path: Path) -> None:
    prototxt = corpus_net(name)[0]
    model, expected = _make_model(name, factor)
    caffemodel = tmp_path / "model.caffemodel"
    caffemodel.write_bytes(model.SerializeToString())
    out = tmp_path / "bn.pt"
    records = bnconvert.convert(prototxt, caffemodel, out).records
    assert len(records) == CORPUS_LIST[name]["bvlc_detail"]["n_bn"]
    state = torch.load(out, weights_only=True)
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        got = state[key].numpy()
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert np.array_equal(got, value), key
