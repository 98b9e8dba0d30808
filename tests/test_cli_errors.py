"""Every bad input a user can meet ends in one line on stderr naming the file, the layer and
the problem; exit code 2 for a file that cannot be read, 1 for one that was read but cannot be
converted; no traceback; nothing at the output path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from caffe_builder import NetBuilder, blob
from conftest import CAFFE, invoke_cli

CASE = CAFFE / "bn_scale_bias"


def run(args: list[str]) -> tuple[int, str]:
    """The exit code and the whole output (stdout and stderr as the user sees them)."""
    result = invoke_cli(*args)
    return result.exit_code, result.output




READ_ERROR = 2  # a file that cannot be read: the same code in every command


def assert_fails(args: list[str], out: Path, message: str, exit_code: int = 1) -> None:
    code, output = run(args)
    assert code == exit_code, output
    assert output == f"bnconvert: error: {message}\n"
    assert "Traceback" not in output
    assert list(out.parent.iterdir()) == [p for p in out.parent.iterdir() if p != out]
    assert not out.exists() and not Path(str(out) + ".json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "model.pt"


def test_missing_file(tmp_path: Path, out: Path) -> None:
    missing = tmp_path / "nope.caffemodel"
    assert_fails(["convert", str(missing), "-o", str(out)], out, f"{missing}: no such file",
                 exit_code=READ_ERROR)


def test_empty_caffemodel(tmp_path: Path, out: Path) -> None:
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    assert_fails(["convert", str(empty), "-o", str(out)], out,
                 f"{empty}: empty file, not a caffemodel", exit_code=READ_ERROR)


def test_truncated_caffemodel(tmp_path: Path, out: Path) -> None:
    truncated = tmp_path / "cut.caffemodel"
    truncated.write_bytes((CASE / "model.caffemodel").read_bytes()[:700])
    assert_fails(["convert", str(truncated), "-o", str(out)], out,
                 f"{truncated}: byte 690: field 100 claims 86 bytes but only 7 remain in its "
                 "message (truncated or corrupt file)", exit_code=READ_ERROR)


def test_random_bytes(tmp_path: Path, out: Path) -> None:
    noise = tmp_path / "noise.caffemodel"
    noise.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    code, output = run(["convert", str(noise), "-o", str(out)])
    assert code == READ_ERROR and output.startswith(f"bnconvert: error: {noise}: byte ")
    assert output.count("\n") == 1 and not out.exists()


def test_prototxt_passed_as_caffemodel(out: Path) -> None:
    prototxt = CASE / "deploy.prototxt"
    assert_fails(["convert", str(prototxt), "-o", str(out)], out,
                 f"{prototxt}: this is a text prototxt, not a binary caffemodel; pass the "
                 "prototxt first and the .caffemodel second", exit_code=READ_ERROR)


def test_caffemodel_passed_as_prototxt(out: Path) -> None:
    model = CASE / "model.caffemodel"
    assert_fails(["convert", str(model), str(model), "-o", str(out)], out,
                 f"{model}: not a text prototxt (binary data at byte 15); did you pass a "
                 ".caffemodel where a .prototxt was expected?", exit_code=READ_ERROR)


def test_prototxt_syntax_error(tmp_path: Path, out: Path) -> None:
    broken = tmp_path / "broken.prototxt"
    broken.write_text('name: "x"\nlayer {\n  name: "bn1"\n  type: "BatchNorm"\n')
    assert_fails(["convert", str(broken), str(CASE / "model.caffemodel"), "-o", str(out)], out,
                 f'{broken}:5:1: expected "}}" to close layer opened at line 2, found end of file',
                 exit_code=READ_ERROR)


def test_prototxt_of_another_net(out: Path) -> None:
    other = CAFFE / "resnet_block" / "deploy.prototxt"
    model = CASE / "model.caffemodel"
    assert_fails(["convert", str(other), str(model), "-o", str(out)], out,
                 f"{model}: layer 'bn2a_branch1' (BatchNorm) has no weights in the caffemodel; "
                 "its mean accumulator, variance accumulator, scale factor are needed (is the "
                 "caffemodel from the same net as the prototxt?)")


def model_with(tmp_path: Path, bn_blobs=None, scale_gamma=None, param: str = "") -> Path:
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    blobs = bn_blobs if bn_blobs is not None else [blob([1, 2, 3]), blob([1, 1, 1]), blob([1])]
    builder.layer("bn1", "BatchNorm", ["data"], ["data"], blobs, batch_norm_param=param)
    builder.scale("scale1", "data", "data", scale_gamma or [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    return builder.save(tmp_path / "made", prototxt=False)[1]


def test_batch_norm_with_two_blobs(tmp_path: Path, out: Path) -> None:
    model = model_with(tmp_path, bn_blobs=[blob([1, 2, 3]), blob([1, 1, 1])])
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: cannot convert: layer 'bn1' (BatchNorm) has 2 blobs ([3], [3]): no "
                 "known BatchNorm layout (BVLC: 3 blobs; NVIDIA: 3 or 5; Intel: 4 or 5); if you "
                 "know its origin, pass --flavor bvlc|nvcaffe|intel|segnet|yjxiong")


@pytest.mark.parametrize("value,kind", [(float("nan"), "NaN"), (float("inf"), "Inf")])
def test_non_finite_statistics(value: float, kind: str, tmp_path: Path, out: Path) -> None:
    model = model_with(tmp_path, bn_blobs=[blob([1, 2, 3]), blob([1, value, 1]), blob([1])])
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: layer 'bn1' (BatchNorm): variance (blob 1) holds {kind} at channel 1 "
                 "(1 non-finite values); the model is corrupt or diverged")


def test_negative_variance(tmp_path: Path, out: Path) -> None:
    model = model_with(tmp_path, bn_blobs=[blob([1, 2, 3]), blob([1, 1, -2]), blob([2])])
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: layer 'bn1' (BatchNorm): variance is negative at channel 2 (-1); a "
                 "variance must be >= 0, the model is corrupt")


def test_scale_channels_disagree(tmp_path: Path, out: Path) -> None:
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.batch_norm("bn1", "data", "data", [1, 2, 3], [1, 1, 1], 1.0)
    builder.scale("scale1", "data", "data", [1.0, 1.0], [0.0, 0.0])
    model = builder.save(tmp_path / "made", prototxt=False)[1]
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: layer 'scale1' (Scale): gamma (blob 0) has 2 channels, expected 3 "
                 "(as the BatchNorm)")


def test_eps_zero(tmp_path: Path, out: Path) -> None:
    model = model_with(tmp_path, param="eps: 0")
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: layer 'bn1' (BatchNorm): eps is 0; PyTorch's BatchNorm needs eps > 0 "
                 "(it is added to the variance before the square root)")


def test_unknown_output_extension(out: Path) -> None:
    target = out.with_suffix(".onnx")
    assert_fails(["convert", str(CASE / "model.caffemodel"), "-o", str(target)], target,
                 f"{target}: cannot tell the output format from the extension '.onnx'; use one "
                 "of .pt, .pth, .safetensors, .t7 or --format pt|safetensors|t7")


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "no").write_bytes(b"a file, not a folder")
    target = tmp_path / "no" / "such" / "m.pt"
    code, output = run(["convert", str(CASE / "model.caffemodel"), "-o", str(target)])
    assert code == 1 and output.startswith(
        f"bnconvert: error: {target}: cannot create the folder {target.parent}: ")


def test_failure_leaves_existing_output_untouched(tmp_path: Path, out: Path) -> None:
    out.write_bytes(b"previous")
    model = model_with(tmp_path, param="eps: 0")
    code, _ = run(["convert", str(model), "-o", str(out)])
    assert code == 1 and out.read_bytes() == b"previous"


def test_usage_error_exits_2() -> None:
    code, output = run(["convert"])
    assert code == 2


def test_unknown_layer_types_outside_chains_are_not_fatal(tmp_path: Path, out: Path) -> None:
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.layer("odd", "MyCustomLayer", ["data"], ["data"])
    builder.batch_norm("bn1", "data", "data", [1, 2, 3], [1, 1, 1], 1.0)
    model = builder.save(tmp_path / "made", prototxt=False)[1]
    code, output = run(["convert", str(model), "-o", str(out)])
    assert code == 0 and out.exists()
    code, output = run(["inspect", str(model)])
    assert code == 0 and "MyCustomLayer x1" in output


def test_no_batch_norm_at_all(tmp_path: Path, out: Path) -> None:
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.layer("relu", "ReLU", ["data"], ["data"])
    model = builder.save(tmp_path / "made", prototxt=False)[1]
    assert_fails(["convert", str(model), "-o", str(out)], out,
                 f"{model}: no BatchNorm layers found in the TEST-phase net; nothing to convert")


def test_copies_do_not_share_state(tmp_path: Path) -> None:
    shutil.copy(CASE / "model.caffemodel", tmp_path / "m.caffemodel")
    code, _ = run(["convert", str(tmp_path / "m.caffemodel"), "-o", str(tmp_path / "m.pt")])
    assert code == 0


def test_caffemodel_of_a_net_with_other_channel_counts(out: Path) -> None:
    """Same layer names, other shapes: Caffe refuses to copy such weights, and so do we."""
    prototxt = CAFFE / "bn_only" / "deploy.prototxt"  # conv1: num_output 5
    model = CASE / "model.caffemodel"  # bn1: 4 channels
    assert_fails(["convert", str(prototxt), str(model), "-o", str(out)], out,
                 f"{model}: layer 'bn1' (BatchNorm) has 4 channels in the caffemodel, but the "
                 "prototxt's 'conv1' (Convolution) produces 5 (num_output): the caffemodel is "
                 "not from this net")
