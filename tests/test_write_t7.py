"""``write_t7``: the written modules equal what real Torch7 built, and compute what it computed.

Ground truth: ``tests/data/torch7/chain/<case>.t7`` (modules real Torch7 built from Caffe's
effective parameters, with Caffe's BatchNorm inputs and Torch7's evaluate-mode outputs) and
``tests/data/torch7/sample-outputs/`` (Torch7's outputs for the samples).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torchfile

import bnconvert
from bnconvert.errors import OutputError
from bnconvert.records import ChainLayers, FoldedBatchNorm
from bnconvert.t7 import T7Object, T7Table, T7Tensor, load_t7, loads_t7
from bnconvert.write.registry import WriteOptions, writer_for
from bnconvert.write.t7 import read_t7_batch_norms, write_t7

from conftest import CAFFE, T7_BIAS, T7_MEAN, T7_VAR, T7_WEIGHT, TORCH7

CHAIN_CASES = ["bn_only", "bn_scale_bias", "eps_custom", "fc_bn", "resnet_block",
               "scale_nobias_then_bias", "zero_scale_factor"]



# --- building records ---------------------------------------------------------------------


def load_case_records(case: str, **settings: Any) -> list[FoldedBatchNorm]:
    """The FoldedBatchNorm records bnconvert reads and folds from one Caffe fixture case."""
    folder = CAFFE / case
    return bnconvert.load_batch_norms(folder / "deploy.prototxt", folder / "model.caffemodel",
                                      **settings)


def sample_record(key: str = "bn", rank: int | None = 4, eps: float = 1e-5,
                  affine: bool = True) -> FoldedBatchNorm:
    """A record with the samples' parameters."""
    return FoldedBatchNorm(layers=ChainLayers(key), channels=4, rank=rank, eps=eps,
                           running_mean=T7_MEAN, running_var=T7_VAR,
                           weight=T7_WEIGHT if affine else None,
                           bias=T7_BIAS if affine else None)


def written(records: list[FoldedBatchNorm], **options: Any) -> Any:
    stream = io.BytesIO()
    write_t7(records, stream, WriteOptions(**options))
    return loads_t7(stream.getvalue(), name="written.t7", mode="binary")


def save(records: list[FoldedBatchNorm], path: Path, **options: Any) -> Path:
    with path.open("wb") as stream:
        write_t7(records, stream, WriteOptions(**options))
    return path


# --- Torch7's evaluate-mode forward (torch7 README), written independently of the writer ----


def torch7_forward(x: np.ndarray, fields: dict[str, Any]) -> np.ndarray:
    """``invstd = T(1/sqrt(double(var) + eps))``, ``y = ((x - mean) * invstd) * w + b`` in T."""
    t = x.dtype.type
    shape = (1, -1) + (1,) * (x.ndim - 2)
    invstd = (1.0 / np.sqrt(fields["running_var"].astype(np.float64) + fields["eps"])).astype(t)
    weight = fields["weight"] if fields["affine"] else np.ones_like(invstd)
    bias = fields["bias"] if fields["affine"] else np.zeros_like(invstd)
    centred = x - fields["running_mean"].astype(t).reshape(shape)
    return (centred * invstd.reshape(shape)) * weight.astype(t).reshape(shape) + bias.astype(
        t).reshape(shape)


# --- comparing with real Torch7 modules ----------------------------------------------------


def assert_same_module(ours: T7Object, real: T7Object) -> None:
    """Same class, version, field names, field types, tensor classes, shapes and values."""
    assert (ours.class_name, ours.version) == (real.class_name, real.version)
    assert set(ours.payload) == set(real.payload)
    for name, real_value in real.payload.items():
        value = ours.payload[name]
        assert type(value) is type(real_value), name
        if isinstance(real_value, T7Tensor):
            assert (value.class_name, value.size, value.stride, value.storage_offset) == (
                real_value.class_name, real_value.size, real_value.stride,
                real_value.storage_offset), name
            assert (value.storage is None) == (real_value.storage is None), name
            np.testing.assert_array_equal(value.to_numpy(), real_value.to_numpy(), err_msg=name)
        else:
            assert value == real_value, name


@pytest.mark.parametrize("case", CHAIN_CASES)
def test_chain_case_is_written_as_the_module_real_torch7_built(case: str) -> None:
    """Real Torch7 built its modules with its default momentum 0.1: ``--momentum default``."""
    real = load_t7(TORCH7 / "chain" / f"{case}.t7")["modules"]
    ours = written(load_case_records(case, momentum="default"))
    assert set(ours) == set(real)
    for name in real:
        assert_same_module(ours[name], real[name])


@pytest.mark.parametrize("case", ["bn_only", "zero_scale_factor"])
def test_chain_case_carries_caffes_momentum_by_default(case: str) -> None:
    """Without ``--momentum`` only the momentum differs: Caffe's next one, 1/(maf·s + 1)
    (maf 0.999 unwritten in these fixtures; s = 0 gives 1, the batch statistics)."""
    real = load_t7(TORCH7 / "chain" / f"{case}.t7")["modules"]
    records = {r.name: r for r in load_case_records(case)}
    ours = written(list(records.values()))
    for name in real:
        s = np.float32(records[name].scale_factor)
        expected = 1 / (float(np.float32(s * np.float32(0.999))) + 1)
        assert ours[name].payload["momentum"] == pytest.approx(expected, rel=1e-12)
        ours[name].payload["momentum"] = real[name].payload["momentum"]
        assert_same_module(ours[name], real[name])


@pytest.mark.parametrize("case", CHAIN_CASES)
def test_chain_case_computes_what_torch7_computed(case: str, tmp_path: Path) -> None:
    chain = load_t7(TORCH7 / "chain" / f"{case}.t7")
    ours = read_t7_batch_norms(save(load_case_records(case), tmp_path / f"{case}.t7"))
    assert set(ours) == set(chain["outputs"])
    for name, fields in ours.items():
        x = chain["inputs"][name].to_numpy()
        expected = chain["outputs"][name].to_numpy()
        assert x.dtype == expected.dtype == np.float32
        np.testing.assert_array_equal(torch7_forward(x, fields), expected)


# --- comparing with the samples -----------------------------------------------------------

# sample -> (record keys as Torch7 paths, record kwargs) for the samples' parameters.
SAMPLE_RECORDS: dict[str, dict[str, dict[str, Any]]] = {
    "bn4_float_fresh": {"root": {"rank": 2}},
    "sbn4_float_fresh": {"root": {"rank": 4}},
    "vbn4_float_fresh": {"root": {"rank": 5}},
    "sbn4_float_noaffine_fresh": {"root": {"rank": 4, "affine": False}},
    "named_table_float": {"bn1": {"rank": 4}, "bn2": {"rank": 2}},
    "sequential_sbn_relu_sbn_float": {"1": {"rank": 4}, "3": {"rank": 4, "eps": 1e-3,
                                                              "affine": False}},
}


@pytest.mark.parametrize("sample", sorted(SAMPLE_RECORDS))
def test_sample_parameters_compute_what_torch7_computed(sample: str, tmp_path: Path) -> None:
    result = load_t7(TORCH7 / "sample-outputs" / f"{sample}_binary.t7")
    records = [sample_record(key, **kwargs) for key, kwargs in SAMPLE_RECORDS[sample].items()]
    ours = read_t7_batch_norms(save(records, tmp_path / "out.t7"))
    for path in SAMPLE_RECORDS[sample]:
        fields = ours[path]
        assert fields["class_name"] == result["modules"][path]["type"]
        x = result["inputs"][path].to_numpy()
        np.testing.assert_array_equal(torch7_forward(x, fields),
                                      result["outputs"][path].to_numpy())


def test_float64_output_computes_what_torch7_computed_in_double(tmp_path: Path) -> None:
    # The double sample holds the parameters as float64 (0.1, not float32(0.1)): give the
    # record those values so the written DoubleTensors must keep every bit.
    real = load_t7(TORCH7 / "samples" / "sbn_affine_evaluated_binary.t7").payload
    params = {name: real[name].to_numpy() for name in ("running_mean", "running_var", "weight",
                                                        "bias")}
    assert params["running_mean"].dtype == np.float64
    record = FoldedBatchNorm(layers=ChainLayers("root"), channels=4, rank=4,
                             eps=real["eps"], **params)
    ours = read_t7_batch_norms(save([record], tmp_path / "d.t7", dtype="float64"))
    result = load_t7(TORCH7 / "sample-outputs" / "sbn_affine_evaluated_binary.t7")
    x = result["inputs"]["root"].to_numpy()
    assert x.dtype == np.float64 and ours["root"]["running_var"].dtype == np.float64
    np.testing.assert_array_equal(torch7_forward(x, ours["root"]),
                                  result["outputs"]["root"].to_numpy())


@pytest.mark.parametrize(("sample", "rank"), [("bn4_float_fresh", 2), ("sbn4_float_fresh", 4),
                                              ("vbn4_float_fresh", 5), ("sbn4_float_fresh", None)])
def test_module_class_follows_the_input_rank(sample: str, rank: int | None) -> None:
    real = load_t7(TORCH7 / "samples" / f"{sample}_binary.t7")
    ours = written([sample_record("bn", rank=rank)])["bn"]
    _assert_fresh_sample_plus_cleared_buffers(ours, real)


def test_rank_3_input_gets_a_batch_normalization() -> None:
    assert written([sample_record("bn", rank=3)])["bn"].class_name == "nn.BatchNormalization"


def test_non_affine_module_has_no_weight_bias_or_grad_fields() -> None:
    real = load_t7(TORCH7 / "samples" / "sbn4_float_noaffine_fresh_binary.t7")
    ours = written([sample_record("bn", affine=False)])["bn"]
    assert not {"weight", "bias", "gradWeight", "gradBias"} & set(ours.payload)
    assert ours.payload["affine"] is False
    _assert_fresh_sample_plus_cleared_buffers(ours, real)


def _assert_fresh_sample_plus_cleared_buffers(ours: T7Object, real: T7Object) -> None:
    """A never-forwarded sample lacks save_mean/save_std; ours has them empty, as the chain
    fixtures (forwarded, then clearState) do."""
    extra = set(ours.payload) - set(real.payload)
    assert extra == {"save_mean", "save_std"}
    for name in extra:
        assert ours.payload[name] == T7Tensor("torch.FloatTensor")
    trimmed = T7Object(ours.class_name, ours.version,
                       T7Table((k, v) for k, v in ours.payload.items() if k not in extra))
    assert_same_module(trimmed, real)


def test_record_with_unit_weight_and_zero_bias_is_an_affine_module() -> None:
    # What --cudnn produces upstream: a non-affine BN given weight 1 and bias 0.
    record = FoldedBatchNorm(layers=ChainLayers("bn"), channels=4, rank=4, eps=1e-5,
                             running_mean=T7_MEAN, running_var=T7_VAR,
                             weight=np.ones(4, np.float32), bias=np.zeros(4, np.float32))
    module = written([record])["bn"]
    assert module.payload["affine"] is True
    np.testing.assert_array_equal(module.payload["weight"].to_numpy(), np.ones(4))
    np.testing.assert_array_equal(module.payload["bias"].to_numpy(), np.zeros(4))
    assert {"gradWeight", "gradBias"} <= set(module.payload)


def test_float64_writes_double_tensors_everywhere() -> None:
    fields = written([sample_record("bn")], dtype="float64")["bn"].payload
    assert fields["_type"] == "torch.DoubleTensor"
    tensors = [v for v in fields.values() if isinstance(v, T7Tensor)]
    assert len(tensors) == 10
    assert {t.class_name for t in tensors} == {"torch.DoubleTensor"}
    np.testing.assert_array_equal(fields["running_mean"].to_numpy(),
                                  T7_MEAN.astype(np.float64))


# --- layouts ------------------------------------------------------------------------------


def test_table_layout_keys_are_prefix_plus_record_key() -> None:
    top = written([sample_record("bn1"), sample_record("bn2", rank=2)], prefix="net.")
    assert isinstance(top, T7Table)
    assert list(top) == ["net.bn1", "net.bn2"]


def test_sequential_layout_is_the_nn_sequential_torch7_saves() -> None:
    real = load_t7(TORCH7 / "samples" / "sequential_sbn_relu_sbn_float_binary.t7")
    ours = written([sample_record("a"), sample_record("b", eps=1e-3, affine=False)],
                   t7_layout="sequential")
    assert (ours.class_name, ours.version) == (real.class_name, real.version) == (
        "nn.Sequential", 1)
    assert set(ours.payload) == set(real.payload)
    assert ours.payload["train"] is False and ours.payload["_type"] == "torch.FloatTensor"
    first, second = ours.payload["modules"].list_items()
    assert list(ours.payload["modules"]) == [1.0, 2.0]
    assert (first.payload["eps"], second.payload["eps"], second.payload["affine"]) == (
        1e-5, 1e-3, False)
    # nn.Sequential:add shares the first module's gradInput and the last module's output.
    assert ours.payload["gradInput"] is first.payload["gradInput"]
    assert ours.payload["output"] is second.payload["output"]


def test_sequential_layout_reads_back_by_one_based_index(tmp_path: Path) -> None:
    path = save([sample_record("a"), sample_record("b", rank=5)], tmp_path / "s.t7",
                t7_layout="sequential")
    found = read_t7_batch_norms(path)
    assert {k: v["class_name"] for k, v in found.items()} == {
        "1": "nn.SpatialBatchNormalization", "2": "nn.VolumetricBatchNormalization"}


def test_empty_record_list_writes_an_empty_table_or_sequential() -> None:
    assert written([]) == T7Table()
    assert written([], t7_layout="sequential").payload["modules"] == T7Table()


# --- reading back for verify --------------------------------------------------------------


def test_reader_converts_class_version_1_running_std_as_nn_does() -> None:
    found = read_t7_batch_norms(TORCH7 / "samples" / "sbn4_float_legacy_v1_running_std_binary.t7")
    torch7_loaded = load_t7(
        TORCH7 / "sample-outputs" / "sbn4_float_legacy_v1_running_std_binary.t7")["modules"]
    assert found["root"]["version"] == 1
    np.testing.assert_array_equal(found["root"]["running_var"],
                                  torch7_loaded["root"]["running_var"].to_numpy())


def test_reader_finds_modules_in_tables_and_sequentials() -> None:
    table = read_t7_batch_norms(TORCH7 / "samples" / "named_table_float_ascii.t7")
    assert sorted(table) == ["bn1", "bn2"]
    seq = read_t7_batch_norms(TORCH7 / "samples" / "sequential_sbn_relu_sbn_float_binary.t7")
    assert sorted(seq) == ["1", "3"]
    assert seq["3"]["affine"] is False and seq["3"]["weight"] is None
    assert seq["3"]["eps"] == 1e-3


# --- independent reader, registry, errors -------------------------------------------------


@pytest.mark.parametrize("layout", ["table", "sequential"])
def test_torchfile_reads_what_write_t7_writes(layout: str, tmp_path: Path) -> None:
    records = load_case_records("resnet_block")
    read = torchfile.load(str(save(records, tmp_path / "r.t7", t7_layout=layout)))
    modules = read._obj[b"modules"] if layout == "sequential" else [read[r.key.encode()]
                                                                    for r in records]
    for record, module in zip(records, modules, strict=True):
        assert module.torch_typename() == b"nn.SpatialBatchNormalization"
        np.testing.assert_array_equal(module._obj[b"running_var"], record.running_var)
        np.testing.assert_array_equal(module._obj[b"weight"], record.weight)


def test_t7_extension_selects_write_t7() -> None:
    assert writer_for("model.t7") == ("t7", write_t7)


@pytest.mark.parametrize(("options", "records", "message"), [
    ({"dtype": "float16"}, [], "Torch7 output: unknown dtype 'float16'; use float32 or float64"),
    ({"t7_layout": "flat"}, [], "Torch7 output: unknown layout 'flat'; use 'table' or "
                                "'sequential'"),
    ({}, [sample_record("bn"), sample_record("bn")],
     "Torch7 output: two batch normalizations have the key 'bn'"),
    ({}, [sample_record("bn", rank=6)],
     "bn: Torch7 has no batch normalization module for a rank-6 input; expected rank 2, 3, 4 "
     "or 5"),
])
def test_invalid_output_is_refused_before_writing_a_byte(options: dict[str, Any],
                                                         records: list[FoldedBatchNorm],
                                                         message: str) -> None:
    stream = io.BytesIO()
    with pytest.raises(OutputError) as caught:
        write_t7(records, stream, WriteOptions(**options))
    assert str(caught.value) == message
    assert stream.getvalue() == b""


def test_array_of_the_wrong_length_is_refused() -> None:
    record = FoldedBatchNorm(layers=ChainLayers("bn"), channels=5, rank=4, eps=1e-5,
                             running_mean=T7_MEAN, running_var=T7_VAR, weight=None,
                             bias=None)
    with pytest.raises(OutputError, match=r"bn: running_mean must have shape \(5,\), found \(4,\)"):
        write_t7([record], io.BytesIO(), WriteOptions())
