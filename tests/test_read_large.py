"""A caffemodel holding one blob larger than 2 GiB (issue #5).

Protobuf's own parser refuses it; bnconvert reads it over a memory map, never touching the big
blob's pages, and converts the BatchNorm chain stored *after* it (so its blobs sit beyond the
2 GiB offset). The file is written sparse (the 2 GiB of values is a hole: zeros, no disk blocks
on filesystems that support holes) and deleted at the end of the test.
"""

from __future__ import annotations

import io
import mmap
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import torch
from google.protobuf.message import DecodeError

from bnconvert._proto import caffe_pb2
from bnconvert.api import convert
from bnconvert.read.caffemodel import read_caffemodel
from bnconvert.read.wire import LENGTH, encode_tag

HUGE = (1 << 29) + 16  # float32 values: 2 GiB + 64 bytes of packed data
MEAN_ACC = [0.5, -1.25, 3.0]
VAR_ACC = [2.0, 0.75, 9.5]
FACTOR = 95.2079
GAMMA, BETA = [1.5, -0.5, 2.0], [0.25, 0.0, -3.0]
NEED_FREE = 5 * 10**9


def _field(number: int, payload_size: int) -> bytes:
    """Tag and length of a length-delimited field (the payload follows)."""
    return encode_tag(number, LENGTH, payload_size)


def _blob(values: list[float]) -> bytes:
    shape = caffe_pb2.BlobShape(dim=[len(values)]).SerializeToString()
    data = struct.pack(f"<{len(values)}f", *values)
    return _field(7, len(shape)) + shape + _field(5, len(data)) + data


def _layer(definition: caffe_pb2.LayerParameter, blobs: tuple[bytes, ...] = ()) -> bytes:
    body = definition.SerializeToString() + b"".join(_field(7, len(b)) + b for b in blobs)
    return _field(100, len(body)) + body


def write_model(out: BinaryIO, huge_count: int) -> None:
    """Input -> (Convolution with a ``huge_count``-value weight blob); data -> BN -> Scale.

    The weight values are a seek past their bytes: a hole in a file, zeros in a ``BytesIO``.
    """
    data = caffe_pb2.LayerParameter(name="data", type="Input", top=["data"])
    data.input_param.shape.add().dim.extend([1, 3, 2, 2])
    conv = caffe_pb2.LayerParameter(name="huge_conv", type="Convolution", bottom=["data"],
                                    top=["huge_conv"])
    conv.convolution_param.num_output = huge_count // 3
    bn = caffe_pb2.LayerParameter(name="bn", type="BatchNorm", bottom=["data"], top=["data"])
    scale = caffe_pb2.LayerParameter(name="scale", type="Scale", bottom=["data"], top=["data"])
    scale.scale_param.bias_term = True
    shape = caffe_pb2.BlobShape(dim=[huge_count]).SerializeToString()
    blob_head = _field(7, len(shape)) + shape + _field(5, 4 * huge_count)
    blob_size = len(blob_head) + 4 * huge_count
    conv_def = conv.SerializeToString()
    conv_head = _field(7, blob_size)
    out.write(caffe_pb2.NetParameter(name="huge").SerializeToString())
    out.write(_layer(data))
    out.write(_field(100, len(conv_def) + len(conv_head) + blob_size) + conv_def + conv_head
              + blob_head)
    out.seek(4 * huge_count, io.SEEK_CUR)
    out.write(_layer(bn, (_blob(MEAN_ACC), _blob(VAR_ACC), _blob([FACTOR]))))
    out.write(_layer(scale, (_blob(GAMMA), _blob(BETA))))


@pytest.fixture
def huge_model(tmp_path: Path) -> Iterator[Path]:
    free = shutil.disk_usage(tmp_path).free
    if free < NEED_FREE:
        pytest.skip(f"needs {NEED_FREE / 1e9:.0f} GB free under {tmp_path} for a 2 GiB sparse "
                    f"file (in case holes are not supported); {free / 1e9:.1f} GB free")
    path = tmp_path / "huge.caffemodel"
    try:
        with open(path, "wb") as out:
            write_model(out, HUGE)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return 0  # pragma: no cover - not Linux


def test_protobuf_reads_the_small_twin() -> None:
    """Control: the same layout with a small blob is a valid NetParameter for protobuf."""
    sink = io.BytesIO()
    write_model(sink, 12)
    net = caffe_pb2.NetParameter.FromString(sink.getvalue())
    assert [layer.name for layer in net.layer] == ["data", "huge_conv", "bn", "scale"]
    assert len(net.layer[1].blobs[0].data) == 12


def test_blob_over_2_gib_is_read_and_converted(huge_model: Path, tmp_path: Path) -> None:
    size = huge_model.stat().st_size
    assert size > 4 * HUGE > 2**31

    with open(huge_model, "rb") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as whole:
        with pytest.raises(DecodeError):
            caffe_pb2.NetParameter.FromString(memoryview(whole))

    rss_before = _rss_file_kib()
    model = read_caffemodel(huge_model)
    layers = {layer.name: layer for layer in model.layers}
    assert list(layers) == ["data", "huge_conv", "bn", "scale"]
    (huge,) = layers["huge_conv"].blobs
    assert huge.shape == (HUGE,) and huge.count == HUGE
    assert huge.spans[0][1] - huge.spans[0][0] == 4 * HUGE
    assert all(b.offset > 2**31 for b in layers["bn"].blobs)
    assert layers["bn"].blobs[2].first() == pytest.approx(FACTOR)

    output = tmp_path / "bn.pt"
    records = convert(None, huge_model, output, manifest=False).records
    assert _rss_file_kib() - rss_before < 32 * 1024, "the 2 GiB blob's pages were read"
    assert [r.key for r in records] == ["bn"]

    state = torch.load(output, weights_only=True)
    factor = np.float32(1) / np.float32(FACTOR)  # Caffe: f = 1/s in float32, then x * f
    np.testing.assert_array_equal(state["bn.running_mean"].numpy(),
                                  np.array(MEAN_ACC, dtype=np.float32) * factor)
    np.testing.assert_array_equal(state["bn.running_var"].numpy(),
                                  np.array(VAR_ACC, dtype=np.float32) * factor)
    np.testing.assert_array_equal(state["bn.weight"].numpy(), np.array(GAMMA, dtype=np.float32))
    np.testing.assert_array_equal(state["bn.bias"].numpy(), np.array(BETA, dtype=np.float32))
    huge_model.unlink()
    assert not huge_model.exists()
