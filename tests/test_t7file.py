"""The Torch7 codec (``bnconvert.t7``) against files written by real Torch7.

Expected values come from ``tests/data/torch7/README.md`` (what the samples hold) and from the
files themselves; ``torchfile`` (PyPI) is the independent reader of what we write.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torchfile
from hypothesis import given, settings
from hypothesis import strategies as st

from bnconvert.errors import ParseError
from bnconvert.t7 import (
    T7FormatError,
    T7Function,
    T7Object,
    T7Storage,
    T7Table,
    T7Tensor,
    dumps_t7,
    load_t7,
    loads_t7,
)

from conftest import T7_BIAS, T7_MEAN, T7_VAR, T7_WEIGHT, TORCH7

SAMPLES = sorted((TORCH7 / "samples").glob("*.t7"))
SAMPLE_OUTPUTS = sorted((TORCH7 / "sample-outputs").glob("*.t7"))
CHAIN = sorted((TORCH7 / "chain").glob("*.t7"))
BINARY_SAMPLES = [p for p in SAMPLES if p.name.endswith("_binary.t7")]
ALL_FILES = SAMPLES + SAMPLE_OUTPUTS + CHAIN
# The sample-outputs files are all binary; "_ascii" in their names names the sample they ran.
BINARY_FILES = BINARY_SAMPLES + SAMPLE_OUTPUTS + CHAIN



def ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def write_to(tmp_path: Path, value: Any, name: str = "out.t7") -> Path:
    path = tmp_path / name
    path.write_bytes(dumps_t7(value))
    return path


# --- reading the real files ---------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=ids(ALL_FILES))
def test_every_real_torch7_file_reads(path: Path) -> None:
    assert isinstance(load_t7(path), T7Table | T7Object | T7Tensor)


@pytest.mark.parametrize("binary", BINARY_SAMPLES, ids=ids(BINARY_SAMPLES))
def test_binary_and_ascii_of_one_sample_parse_to_equal_objects(binary: Path) -> None:
    ascii_path = binary.with_name(binary.name.replace("_binary", "_ascii"))
    assert ascii_path.read_bytes()[:1].isdigit(), "the ascii twin is really ascii"
    assert load_t7(binary, mode="binary") == load_t7(ascii_path, mode="ascii")


@pytest.mark.parametrize("binary", [p for p in SAMPLE_OUTPUTS if "_binary" in p.name],
                         ids=ids([p for p in SAMPLE_OUTPUTS if "_binary" in p.name]))
def test_torch7_computed_the_same_for_binary_and_ascii_samples(binary: Path) -> None:
    from_binary = load_t7(binary)
    from_ascii = load_t7(binary.with_name(binary.name.replace("_binary", "_ascii")))
    assert from_binary["meta"]["model"] != from_ascii["meta"]["model"]
    for key in ("order", "inputs", "outputs", "modules"):
        assert from_binary[key] == from_ascii[key]


def test_float_tensor_sample_holds_one_to_six() -> None:
    tensor = load_t7(TORCH7 / "samples" / "float_tensor_2x3_ascii.t7")
    assert (tensor.class_name, tensor.version, tensor.size, tensor.stride) == (
        "torch.FloatTensor", 1, (2, 3), (3, 1))
    assert tensor.storage_offset == 1
    assert tensor.storage.class_name == "torch.FloatStorage"
    expected = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(tensor.to_numpy(), expected)
    assert tensor.to_numpy().dtype == np.float32


@pytest.mark.parametrize(("kind", "dtype"), [("float", np.float32), ("double", np.float64)])
def test_input_x4_sample_holds_the_documented_values(kind: str, dtype: type) -> None:
    # README: x4 = (range(1,48) - 24) / 10 as (2,4,2,3); Lua's range is inclusive (48 values),
    # computed in the tensor's own type.
    expected = ((np.arange(1, 49, dtype=dtype) - dtype(24)) / dtype(10)).reshape(2, 4, 2, 3)
    for mode in ("binary", "ascii"):
        tensor = load_t7(TORCH7 / "samples" / f"input_x4_{kind}_{mode}.t7")
        assert tensor.class_name == f"torch.{kind.capitalize()}Tensor"
        np.testing.assert_array_equal(tensor.to_numpy(), expected)


@pytest.mark.parametrize(("sample", "class_name", "version"), [
    ("bn4_float_fresh", "nn.BatchNormalization", 2),
    ("sbn4_float_fresh", "nn.SpatialBatchNormalization", 2),
    ("vbn4_float_fresh", "nn.VolumetricBatchNormalization", 1),
    ("sbn4_float_legacy_v1_running_std", "nn.SpatialBatchNormalization", 1),
    ("sequential_sbn_relu_sbn_float", "nn.Sequential", 1),
])
def test_class_names_and_versions_are_read(sample: str, class_name: str, version: int) -> None:
    module = load_t7(TORCH7 / "samples" / f"{sample}_binary.t7")
    assert (module.class_name, module.version) == (class_name, version)
    assert isinstance(module.payload, T7Table)


def test_module_fields_have_their_lua_types() -> None:
    fields = load_t7(TORCH7 / "samples" / "sbn4_float_fresh_binary.t7").payload
    assert set(fields) == {"_type", "affine", "eps", "momentum", "train", "running_mean",
                           "running_var", "weight", "bias", "gradWeight", "gradBias", "output",
                           "gradInput"}
    assert fields["_type"] == "torch.FloatTensor"
    assert fields["affine"] is True and fields["train"] is False
    assert type(fields["eps"]) is float and fields["eps"] == 1e-5
    assert type(fields["momentum"]) is float and fields["momentum"] == 0.1
    for name, expected in (("running_mean", T7_MEAN), ("running_var", T7_VAR),
                           ("weight", T7_WEIGHT), ("bias", T7_BIAS)):
        np.testing.assert_array_equal(fields[name].to_numpy(), expected)
    np.testing.assert_array_equal(fields["gradWeight"].to_numpy(), np.zeros(4, np.float32))


def test_empty_tensor_has_no_dimensions_and_no_storage() -> None:
    output = load_t7(TORCH7 / "samples" / "sbn4_float_fresh_binary.t7").payload["output"]
    assert output == T7Tensor("torch.FloatTensor", (), (), 1, None, 1)
    assert output.to_numpy().shape == (0,)


def test_integer_valued_numbers_read_as_float() -> None:
    relu = load_t7(TORCH7 / "samples" / "sequential_sbn_relu_sbn_float_binary.t7").payload[
        "modules"][2.0]
    assert relu.class_name == "nn.ReLU"
    assert type(relu.payload["threshold"]) is float and relu.payload["threshold"] == 0.0


def test_sequential_sample_list_keys_are_floats_and_index_like_ints() -> None:
    modules = load_t7(TORCH7 / "samples" / "sequential_sbn_relu_sbn_float_binary.t7").payload[
        "modules"]
    assert list(modules) == [1.0, 2.0, 3.0]
    assert modules[1] is modules[1.0]
    assert [m.class_name for m in modules.list_items()] == [
        "nn.SpatialBatchNormalization", "nn.ReLU", "nn.SpatialBatchNormalization"]


@pytest.mark.parametrize("mode", ["binary", "ascii"])
def test_an_object_stored_twice_comes_back_as_one_python_object(mode: str) -> None:
    # nn.Sequential:add shares the last module's output and the first module's gradInput.
    seq = load_t7(TORCH7 / "samples" / f"sequential_sbn_relu_sbn_float_{mode}.t7").payload
    first, _, last = seq["modules"].list_items()
    assert seq["output"] is last.payload["output"]
    assert seq["gradInput"] is first.payload["gradInput"]
    assert first.payload["output"] is not last.payload["output"]


def test_string_that_is_not_utf8_reads_as_bytes() -> None:
    data = dumps_t7(T7Table(name=b"\xff\xfe"))
    assert loads_t7(data) == T7Table(name=b"\xff\xfe")


# --- writing: round trips -----------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=ids(ALL_FILES))
def test_round_trip_of_a_real_file_gives_an_equal_object(path: Path) -> None:
    original = load_t7(path)
    again = loads_t7(dumps_t7(original))
    assert again == original
    assert _structure(again) == _structure(original)


@pytest.mark.parametrize("path", BINARY_FILES, ids=ids(BINARY_FILES))
def test_writing_a_real_binary_file_again_reproduces_its_bytes(path: Path) -> None:
    # Our tables keep file order, so the bytes match torch.save's exactly.
    assert dumps_t7(load_t7(path)) == path.read_bytes()


def test_round_trip_keeps_shared_references_and_cycles() -> None:
    tensor = T7Tensor.from_array(np.ones(3, np.float32))
    table = T7Table(a=tensor, b=tensor)
    table["self"] = table
    again = loads_t7(dumps_t7(table))
    assert again["a"] is again["b"]
    assert again["self"] is again


def test_round_trip_keeps_tensor_geometry_of_a_view() -> None:
    storage = T7Storage("torch.DoubleStorage", np.arange(12, dtype=np.float64))
    view = T7Tensor("torch.DoubleTensor", (2, 2), (1, 3), 4, storage)  # transposed, offset
    again = loads_t7(dumps_t7(T7Table(v=view, s=storage)))
    assert again["v"] == view and again["v"].storage is again["s"]
    np.testing.assert_array_equal(again["v"].to_numpy(), [[3, 6], [4, 7]])


@pytest.mark.parametrize("tag", [6, 7, 8])
def test_functions_round_trip_as_opaque_values(tag: int) -> None:
    function = T7Function(b"\x1bLJ\x02\x00fake bytecode", T7Table({1.0: T7Table(name="x")}), tag)
    again = loads_t7(dumps_t7(T7Table(f=function, g=function)))
    assert again["f"] == function
    assert (again["f"] is again["g"]) == (tag != 6)


def _structure(value: Any) -> Any:
    """Class names, versions, dtypes, shapes, strides and keys, for a readable diff."""
    if isinstance(value, T7Object):
        return (value.class_name, value.version, _structure(value.payload))
    if isinstance(value, T7Tensor):
        dtype = None if value.storage is None else value.storage.data.dtype.str
        return (value.class_name, value.size, value.stride, value.storage_offset, dtype)
    if isinstance(value, T7Table):
        return {key: _structure(item) for key, item in value.items()}
    return type(value).__name__


# --- an independent reader reads what we write --------------------------------------------


@pytest.mark.parametrize("path", BINARY_FILES, ids=ids(BINARY_FILES))
def test_torchfile_reads_our_rewrite_of_every_real_file(path: Path, tmp_path: Path) -> None:
    ours = torchfile.load(str(write_to(tmp_path, load_t7(path))))
    theirs = torchfile.load(str(path))
    _assert_torchfile_equal(ours, theirs)


def test_torchfile_reads_every_value_kind_we_write(tmp_path: Path) -> None:
    value = T7Table(number=2.5, integer=3, text="é", flag=False, nested=T7Table(x=-1.0),
                    sequence=["a", "b"], long=np.arange(6, dtype=np.int64).reshape(2, 3),
                    byte=np.array([0, 255], np.uint8), short=np.array([-3], np.int16),
                    empty=T7Tensor("torch.DoubleTensor"),
                    module=T7Object("nn.Identity", 1, T7Table(train=True)))
    read = torchfile.load(str(write_to(tmp_path, value)), utf8_decode_strings=True)
    assert (read["number"], read["integer"], read["text"], read["flag"]) == (2.5, 3, "é", False)
    assert read["nested"]["x"] == -1 and read["sequence"] == ["a", "b"]
    np.testing.assert_array_equal(read["long"], [[0, 1, 2], [3, 4, 5]])
    assert read["byte"].dtype == np.uint8 and read["short"].dtype == np.int16
    assert read["empty"].size == 0 and read["empty"].dtype == np.float64
    assert read["module"].torch_typename() == b"nn.Identity"


def _assert_torchfile_equal(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    elif isinstance(ours, torchfile.TorchObject):
        assert ours.torch_typename() == theirs.torch_typename()
        _assert_torchfile_equal(ours._obj, theirs._obj)
    elif isinstance(ours, dict):
        assert set(ours) == set(theirs)
        for key in ours:
            _assert_torchfile_equal(ours[key], theirs[key])
    elif isinstance(ours, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _assert_torchfile_equal(a, b)
    else:
        assert ours == theirs or (ours != ours and theirs != theirs)


# --- property: anything we write reads back equal -----------------------------------------

_scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8)
_arrays = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int32, np.int16,
                                np.int8, np.uint8]).flatmap(
    lambda dtype: st.lists(st.integers(0, 100), max_size=6).map(
        lambda xs: np.array(xs, dtype=dtype)))
_keys = st.text(max_size=6) | st.integers(1, 5).map(float)
_values = st.recursive(
    _scalars | _arrays,
    lambda children: st.dictionaries(_keys, children.filter(lambda v: v is not None),
                                     max_size=4).map(T7Table),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_property_round_trip(value: Any) -> None:
    assert loads_t7(dumps_t7(value)) == _as_t7(value)


def _as_t7(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return T7Tensor.from_array(value)
    if isinstance(value, T7Table):
        return T7Table({k: _as_t7(v) for k, v in value.items()})
    return value


# --- malformed input ----------------------------------------------------------------------

TRUNCATION_FILES = SAMPLES + SAMPLE_OUTPUTS
# Every offset of a few files holding every kind of item, a spread of offsets of the rest.
EVERY_OFFSET = {"sequential_sbn_relu_sbn_float_binary.t7", "sequential_sbn_relu_sbn_float_ascii.t7",
                "float_tensor_2x3_binary.t7", "float_tensor_2x3_ascii.t7"}


@pytest.mark.parametrize("path", TRUNCATION_FILES, ids=ids(TRUNCATION_FILES))
def test_truncation_anywhere_raises_parse_error_with_file_and_offset(path: Path) -> None:
    data = path.read_bytes()
    if path.parent.name == "samples" and path.name in EVERY_OFFSET:
        lengths = list(range(len(data)))
    else:
        lengths = sorted({*range(0, len(data), 7), *range(max(0, len(data) - 24), len(data))})
    for length in lengths:
        with pytest.raises(ParseError) as caught:
            loads_t7(data[:length], name=path.name)
        error = caught.value
        assert isinstance(error, T7FormatError)
        assert str(error).startswith(f"{path.name}: byte {error.offset}: ")
        assert 0 <= error.offset <= length


def test_truncated_storage_message() -> None:
    data = (TORCH7 / "samples" / "float_tensor_2x3_binary.t7").read_bytes()
    with pytest.raises(T7FormatError) as caught:
        loads_t7(data[:-1], name="x.t7")
    assert str(caught.value) == (
        "x.t7: byte 125: truncated: a torch.FloatStorage's data needs 6 x 4 bytes, 23 left")


def _int(value: int) -> bytes:
    return int(value).to_bytes(4, "little", signed=True)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "f.t7: byte 0: truncated: a type tag needs 4 bytes, 0 left"),
    (_int(9), "f.t7: byte 0: unknown type tag 9"),
    (_int(5) + _int(2), "f.t7: byte 4: a boolean must be 0 or 1, found 2"),
    (_int(2) + _int(-1), "f.t7: byte 4: negative length -1 of a string"),
    (_int(3) + _int(1) + _int(-5), "f.t7: byte 8: impossible table size -5"),
    (_int(3) + _int(1) + _int(1) + _int(0) + _int(1) + b"\0" * 8,
     "f.t7: byte 12: table key of type NoneType is not supported"),
    (_int(0) + b"x", "f.t7: byte 4: 1 unexpected bytes after the object"),
    (b"4\n1\n3\nV 1\n7\nnn.ReLU\n", "f.t7: byte 20: truncated: expected a type tag, found the "
                                    "end of the file"),
    (b"1\nabc\n", "f.t7: byte 2: expected a number (float64), found b'abc'"),
    (b"1\n0.5", "f.t7: byte 5: truncated: an ascii .t7 file ends with a newline"),
])
def test_malformed_input_names_file_offset_and_problem(data: bytes, message: str) -> None:
    with pytest.raises(T7FormatError) as caught:
        loads_t7(data, name="f.t7")
    assert str(caught.value) == message


def test_tensor_with_a_storage_of_another_type_is_rejected() -> None:
    bad = T7Table(t=T7Tensor("torch.FloatTensor", (2,), (1,), 1,
                             T7Storage("torch.FloatStorage", np.zeros(2, np.float32))))
    data = dumps_t7(bad).replace(b"torch.FloatStorage", b"torch.ShortStorage")
    with pytest.raises(T7FormatError, match="a torch.FloatTensor needs a torch.FloatStorage, "
                                            "found torch.ShortStorage"):
        loads_t7(data)


def test_tensor_reaching_outside_its_storage_is_rejected() -> None:
    view = T7Tensor("torch.FloatTensor", (3,), (1,), 2,
                    T7Storage("torch.FloatStorage", np.zeros(3, np.float32)))
    with pytest.raises(T7FormatError, match="reaches outside a storage of 3 elements"):
        loads_t7(dumps_t7(view))


def test_deep_nesting_is_a_parse_error_not_a_recursion_error() -> None:
    data = b"".join(_int(3) + _int(i + 1) + _int(1) + _int(1) + b"\0" * 6 + b"\xf0\x3f"
                    for i in range(1000))
    with pytest.raises(T7FormatError, match="nested deeper than 128 levels"):
        loads_t7(data)


def test_writer_rejects_values_torch7_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot write a set to a .t7 file"):
        dumps_t7({1, 2})
    with pytest.raises(ValueError, match="has no exact float64 value"):
        dumps_t7(2**53 + 1)
    assert math.isnan(loads_t7(dumps_t7(float("nan"))))
