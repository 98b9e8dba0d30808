"""The tolerant prototxt reader: real files parse, unknown fields are reported, errors say where.

Ground truth: the corpus's LIST.json (layer counts and BVLC-unknown fields, computed outside
this project) and protobuf's own ``text_format`` parser on the fields the schema knows.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import pytest
from google.protobuf import text_format

from bnconvert._proto import caffe_pb2
from bnconvert.errors import ParseError, PrototxtSyntaxError
from bnconvert.read.prototxt import (
    ParsedPrototxt,
    UnknownField,
    parse_prototxt,
    parse_prototxt_text,
)

from conftest import CORPUS, CORPUS_ADAPTED, CORPUS_ENTRIES, CORPUS_LIST, DATA

NETS = DATA / "nets"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.prototxt"))
V1 = caffe_pb2.V1LayerParameter


def _layer_types(parsed: ParsedPrototxt) -> Counter[str]:
    return Counter(layer.type for layer in parsed.net.layer)


def _unknown_counts(parsed: ParsedPrototxt) -> dict[str, int]:
    """LIST.json's ``unknown_fields`` format: ``{"Message.field": occurrences}``."""
    return dict(Counter(f"{u.message}.{u.field}" for u in parsed.unknown if u.kind == "field"))


# --- the real-world corpus --------------------------------------------------------------


def test_corpus_is_complete() -> None:
    assert len(CORPUS_LIST) == len(CORPUS_ENTRIES)  # one entry per original file
    # no adapted file's name is an original's
    assert len(CORPUS_FILES) == len(CORPUS_LIST) + len(CORPUS_ADAPTED)
    assert {*CORPUS_LIST, *CORPUS_ADAPTED} == set(CORPUS_FILES)


@pytest.mark.parametrize("name", sorted(CORPUS_LIST))
def test_corpus_file_has_listed_layer_counts(name: str) -> None:
    entry = CORPUS_LIST[name]
    counts = entry["counts"]
    parsed = parse_prototxt(CORPUS / name)
    types = _layer_types(parsed)
    assert {k: types[k] for k in ("BatchNorm", "BN", "Scale", "Bias")} == {
        k: counts[k] for k in ("BatchNorm", "BN", "Scale", "Bias")
    }
    assert len(parsed.net.layers) == counts["v1_layers"]
    assert len(parsed.net.layer) + len(parsed.net.layers) == counts["layers"]
    assert parsed.source == ("solver net_param" if entry["solver_embedded_net"] else "net")


@pytest.mark.parametrize("name", sorted(CORPUS_LIST))
def test_corpus_file_reports_listed_unknown_fields(name: str) -> None:
    parsed = parse_prototxt(CORPUS / name)
    assert _unknown_counts(parsed) == CORPUS_LIST[name]["unknown_fields"]


@pytest.mark.parametrize("name", sorted(CORPUS_ADAPTED))
def test_adapted_file_keeps_the_batch_norms_and_drops_the_header(name: str) -> None:
    counts = CORPUS_ADAPTED[name]["counts"]
    parsed = parse_prototxt(CORPUS / name)
    types = _layer_types(parsed)
    assert [types[k] for k in ("BatchNorm", "BN", "Scale")] == [
        counts["BatchNorm"], counts["BN"], counts["Scale"]
    ]
    assert list(parsed.net.input) == []
    assert parsed.source == "net"


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_matches_protobufs_own_parser(name: str) -> None:
    """On what the schema knows, the result equals protobuf's text_format with unknown fields
    skipped (given the V1 enum name where a file writes the V1 type as a string, which
    protobuf rejects)."""
    parsed = parse_prototxt(CORPUS / name)
    text = (CORPUS / name).read_text(encoding="utf-8")
    if parsed.net.layers:
        assert text.count('type: "Softmax"') == 1
        text = text.replace('type: "Softmax"', "type: SOFTMAX")
    root = caffe_pb2.SolverParameter() if parsed.source != "net" else caffe_pb2.NetParameter()
    logging.disable(logging.WARNING)  # text_format logs every skipped field
    try:
        text_format.Parse(text, root, allow_unknown_field=True)
    finally:
        logging.disable(logging.NOTSET)
    expected = root.net_param if isinstance(root, caffe_pb2.SolverParameter) else root
    assert parsed.net == expected


def test_whole_corpus_parses_quickly() -> None:
    start = time.perf_counter()
    for name in CORPUS_FILES:
        parse_prototxt(CORPUS / name)
    elapsed = time.perf_counter() - start
    print(f"parsed {len(CORPUS_FILES)} corpus prototxts in {elapsed:.3f} s")
    assert elapsed < 10  # a sanity bound; the target is well under 1.5 s


def test_unknown_field_is_reported_with_its_layer_and_position() -> None:
    path = CORPUS / "NVIDIA__caffe__models__resnet50__train_val.prototxt"
    parsed = parse_prototxt(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    for u in parsed.unknown:
        assert lines[u.line - 1][u.column - 1 :].startswith(u.field)
    scale_bias = [u for u in parsed.unknown if u.field == "scale_bias"]
    listed = CORPUS_LIST[path.name]["unknown_fields"]["BatchNormParameter.scale_bias"]
    assert len(scale_bias) == listed
    assert scale_bias
    assert all(u.path == f'layer["{u.layer}"].batch_norm_param.scale_bias' for u in scale_bias)
    assert parsed.unknown[0] == UnknownField(
        "net.eltwise_mem_sharing", None, 2, 1, "field", "NetParameter", "eltwise_mem_sharing"
    )


def test_fork_bn_layer_is_skipped_as_one_block() -> None:
    name = "alexgkendall__SegNet-Tutorial__Example_Models__segnet_pascal.prototxt"
    parsed = parse_prototxt(CORPUS / name)
    bn = [u for u in parsed.unknown if u.field == "bn_param"]
    assert len(bn) == _layer_types(parsed)["BN"] == CORPUS_LIST[name]["counts"]["BN"] > 0
    assert all(u.path == f'layer["{u.layer}"].bn_param' for u in bn)
    assert not any(u.field in ("scale_filler", "shift_filler", "bn_mode") for u in parsed.unknown)


# --- V1 layers, legacy headers, solvers ---------------------------------------------------


def test_v1_type_written_as_a_string_is_mapped_to_the_enum() -> None:
    name = "lim0606__caffe-googlenet-bn__deploy.prototxt"
    assert CORPUS_LIST[name]["unknown_enum_values"] == {'V1LayerParameter.type="Softmax"': 1}
    parsed = parse_prototxt(CORPUS / name)
    assert [(layer.name, layer.type) for layer in parsed.net.layers] == [("prob", V1.SOFTMAX)]
    assert parsed.unknown == () and parsed.v1_type_strings == {}


@pytest.mark.parametrize("written,expected", [
    ('"Convolution"', V1.CONVOLUTION), ('"CONVOLUTION"', V1.CONVOLUTION),
    ("CONVOLUTION", V1.CONVOLUTION), ('"InnerProduct"', V1.INNER_PRODUCT),
    ('"SoftmaxWithLoss"', V1.SOFTMAX_LOSS), ('"HDF5Data"', V1.HDF5_DATA), ("4", V1.CONVOLUTION),
])
def test_v1_type_by_enum_name_or_caffe_layer_name(written: str, expected: int) -> None:
    parsed = parse_prototxt_text(f'layers {{ name: "a" type: {written} }}')
    assert parsed.net.layers[0].type == expected
    assert parsed.unknown == ()


def test_v1_type_without_an_enum_value_is_kept_verbatim() -> None:
    text = 'layers { name: "c" type: CONVOLUTION }\nlayers { name: "bn" type: "BatchNorm" }\n'
    parsed = parse_prototxt_text(text + "layers { type: BN }")
    assert parsed.v1_type_strings == {1: "BatchNorm", 2: "BN"}
    assert [layer.HasField("type") for layer in parsed.net.layers] == [True, False, False]
    assert parsed.unknown == (
        UnknownField('layers["bn"].type', "bn", 2, 27, "enum value", "V1LayerParameter", "type",
                     "BatchNorm"),
        UnknownField("layers[2].type", None, 3, 16, "enum value", "V1LayerParameter", "type",
                     "BN"),
    )


def test_legacy_input_dim_header() -> None:
    net = parse_prototxt(NETS / "ResNet-50-deploy.prototxt").net
    assert list(net.input) == ["data"]
    assert list(net.input_dim) == [1, 3, 224, 224]
    with_input_layer = parse_prototxt(NETS / "ResNet-50-deploy-input-layer.prototxt").net.layer
    assert len(net.layer) == len(with_input_layer) - 1


def test_legacy_input_shape_header() -> None:
    net = parse_prototxt(CORPUS / "chuanqi305__MobileNet-SSD__deploy.prototxt").net
    assert list(net.input) == ["data"]
    assert [list(shape.dim) for shape in net.input_shape] == [[1, 3, 300, 300]]


@pytest.mark.parametrize("name", sorted(p.name for p in NETS.rglob("*.prototxt")))
def test_reference_nets_parse(name: str) -> None:
    path = next(NETS.rglob(name))
    parsed = parse_prototxt(path)
    assert len(parsed.net.layer) > 0 and parsed.source == "net"


def test_solver_embedding_a_net_yields_the_net() -> None:
    name = "ducha-aiki__caffenet-benchmark__prototxt__bn_init__bn_before_googlenet128_lsuv_sb"
    parsed = parse_prototxt(CORPUS / f"{name}.prototxt")
    assert parsed.source == "solver net_param"
    assert parsed.net.layer[0].name == "data" and len(parsed.net.layer) == 288


@pytest.mark.parametrize("text,source,layer", [
    ('base_lr: 0.1 train_net_param { layer { name: "t" } }', "solver train_net_param", "t"),
    ('test_net_param { layer { name: "a" } } test_net_param { }', "solver test_net_param[0]",
     "a"),
    ('net_param { layer { name: "n" } } train_net_param { layer { name: "t" } }',
     "solver net_param", "n"),
])
def test_solver_net_choice(text: str, source: str, layer: str) -> None:
    parsed = parse_prototxt_text(text)
    assert (parsed.source, parsed.net.layer[0].name) == (source, layer)


def test_solver_unknown_fields_are_reported_relative_to_the_net() -> None:
    text = 'fancy_lr: 3\nnet_param {\n  mystery: 1\n  layer { name: "a" bn_param { } }\n}\n'
    parsed = parse_prototxt_text(text)
    assert [(u.path, u.line, u.column) for u in parsed.unknown] == [
        ("solver.fancy_lr", 1, 1), ("net.mystery", 3, 3), ('layer["a"].bn_param', 4, 21)
    ]


def test_solver_whose_net_is_another_file() -> None:
    with pytest.raises(ParseError) as err:
        parse_prototxt_text('net: "train_val.prototxt"\nbase_lr: 0.1\n', "solver.prototxt")
    assert str(err.value) == (
        'solver.prototxt: a solver whose net is in another file (net: "train_val.prototxt");'
        " pass that prototxt instead"
    )


# --- text format --------------------------------------------------------------------------


def test_text_format_forms() -> None:
    text = """# comment
name: 'it\\'s' "\\x41\\101\\n"  # adjacent literals
layer {
  name: "a"; type: "Convolution",
  bottom: ["x", 'y'] top: "z"
  convolution_param: { num_output: 0x10 kernel_size: [3, 1] pad: -0 group: 010 }
  param < lr_mult: 1e-5 decay_mult: .5 >
  param { lr_mult: 1. decay_mult: 2.0f }
  propagate_down: [true, False, t, f, 1, 0, True, false]
  power_param { power: -inf scale: nan shift: +3 }
  pooling_param { pool: AVE round_mode: 1 }
}
"""
    net = parse_prototxt_text(text).net
    layer = net.layer[0]
    assert net.name == "it's" + "AA\n"
    assert (layer.name, layer.type, list(layer.bottom), list(layer.top)) == (
        "a", "Convolution", ["x", "y"], ["z"]
    )
    conv = layer.convolution_param
    assert (conv.num_output, list(conv.kernel_size), list(conv.pad)) == (16, [3, 1], [0])
    assert conv.group == 8  # 010 is octal, as in Caffe's C++ parser
    assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [
        (pytest.approx(1e-5), 0.5), (1.0, 2.0)
    ]
    assert list(layer.propagate_down) == [True, False, True, False, True, False, True, False]
    assert layer.power_param.power == float("-inf") and layer.power_param.shift == 3
    assert layer.power_param.scale != layer.power_param.scale  # nan
    assert layer.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert layer.pooling_param.round_mode == caffe_pb2.PoolingParameter.FLOOR


def test_empty_blocks_set_presence() -> None:
    net = parse_prototxt_text("state { } layer { batch_norm_param { } }").net
    assert net.HasField("state") and net.layer[0].HasField("batch_norm_param")


def test_unknown_fields_any_depth_and_unknown_enum_values() -> None:
    text = """top_level: 3
layer {
  bn_param { deep { deeper: 1 } }
  name: "conv1_bn"
  batch_norm_param { scale_bias: true eps: 1e-3 }
  pooling_param { pool: MEDIAN }
}
layer { ceil_list: [1, 2] }
"""
    parsed = parse_prototxt_text(text)
    assert [(u.path, u.layer, u.line, u.column, u.kind, u.value) for u in parsed.unknown] == [
        ("net.top_level", None, 1, 1, "field", None),
        ('layer["conv1_bn"].bn_param', "conv1_bn", 3, 3, "field", None),
        ('layer["conv1_bn"].batch_norm_param.scale_bias', "conv1_bn", 5, 22, "field", None),
        ('layer["conv1_bn"].pooling_param.pool', "conv1_bn", 6, 25, "enum value", "MEDIAN"),
        ("layer[1].ceil_list", None, 8, 21, "field", None),
        ("layer[1].ceil_list", None, 8, 24, "field", None),
    ]
    assert parsed.net.layer[0].batch_norm_param.eps == pytest.approx(1e-3)
    assert not parsed.net.layer[0].pooling_param.HasField("pool")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("text,line,column,problem", [
    ('name: "x"\nlayer {\n  name: "a"\n', 4, 1,
     'expected "}" to close layer opened at line 2, found end of file'),
    ("layer {\n  convolution_param { num_output: \"abc\" }\n}", 2, 35,
     'field "num_output" of ConvolutionParameter takes a uint32 integer (0 or more), found the'
     ' string "abc"'),
    ("layer { convolution_param { num_output: -1 } }", 1, 41,
     'field "num_output" of ConvolutionParameter takes a uint32 integer (0 or more); -1 is out'
     " of range"),
    ("layer { convolution_param { num_output: 1.5 } }", 1, 41,
     'field "num_output" of ConvolutionParameter takes a uint32 integer (0 or more), found 1.5'),
    ("layer { batch_norm_param { use_global_stats: yes } }", 1, 46,
     'field "use_global_stats" of BatchNormParameter takes true or false, found yes'),
    ("layer { bottom: data }", 1, 17,
     'field "bottom" of LayerParameter takes a quoted string, found data'),
    ('layer { pooling_param { pool: "MAX" } }', 1, 31,
     'field "pool" of PoolingParameter takes one of MAX, AVE, STOCHASTIC, found the string "MAX"'),
    ('layer { name "x" }', 1, 14, 'expected ":" or "{" after field name "name", found the string'
     ' "x"'),
    ("layer { name: @ }", 1, 15, 'expected a value after "name:", found "@"'),
    ('layer {\n  name: "abc\n}', 2, 9, 'expected a value after "name:", found an unterminated'
     " string (a quote closes on the same line)"),
    ("}", 1, 1, 'unexpected "}": no block is open here'),
    ('layer { name: "a" >', 1, 19, 'expected "}" to close layer opened at line 1, found ">"'),
    ('layer { name: "a" name: "b" }', 1, 25,
     'non-repeated field "name" of LayerParameter is specified twice'),
    ("layer { convolution_param: 3 }", 1, 28,
     'field "convolution_param" of LayerParameter is a message: write "convolution_param {'
     ' ... }", not a value'),
    ("layer { name { } }", 1, 9,
     'field "name" of LayerParameter takes a quoted string, not a "{ }" block'),
    ("layer { convolution_param { kernel_size: [3, 3,] } }", 1, 48,
     'expected a value, "," or "]" in the list of "kernel_size"'),
    ('layer { name: ["a"] }', 1, 9, 'field "name" of LayerParameter takes a quoted string, not a'
     " list"),
    ('layer { name: "a\\d" }', 1, 15, "unknown escape sequence \\d"),
    ("layer { 3: 4 }", 1, 9, 'expected a field name or "}", found "3"'),
])
def test_syntax_error_says_where_and_what(text: str, line: int, column: int, problem: str) -> None:
    with pytest.raises(PrototxtSyntaxError) as err:
        parse_prototxt_text(text, "net.prototxt")
    assert (err.value.path, err.value.line, err.value.column, err.value.problem) == (
        "net.prototxt", line, column, problem
    )
    assert str(err.value) == f"net.prototxt:{line}:{column}: {problem}"


def test_syntax_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.prototxt"
    path.write_text('layer {\n  name: "a"\n  type: "BatchNorm"\n', encoding="utf-8")
    with pytest.raises(PrototxtSyntaxError) as err:
        parse_prototxt(path)
    assert str(err.value) == (
        f'{path}:4:1: expected "}}" to close layer opened at line 1, found end of file'
    )


def test_binary_caffemodel_passed_as_prototxt(tmp_path: Path) -> None:
    path = tmp_path / "model.caffemodel"
    path.write_bytes(b"\n\x03net\x92\x06\x0c\n\x03bn1\x12\x09BatchNorm")
    with pytest.raises(ParseError) as err:
        parse_prototxt(path)
    assert str(err.value) == (
        f"{path}: not a text prototxt (binary data at byte 1); did you pass a .caffemodel where"
        " a .prototxt was expected?"
    )


def test_invalid_utf8_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "latin1.prototxt"
    path.write_bytes('name: "x"\n# caf\u00e9\n'.encode("latin-1"))
    with pytest.raises(ParseError, match=r"binary data at byte 15\)"):
        parse_prototxt(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.prototxt"
    with pytest.raises(ParseError) as err:
        parse_prototxt(path)
    assert str(err.value) == f"{path}: no such file"
