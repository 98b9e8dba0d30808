"""Generate the benchmark's synthetic caffemodels (real structure, random float32 weights).

Models (sizes as the real ones):

- ``resnet50``  (~102 MB): KaimingHe layer names, Convolution (no bias) -> BatchNorm (3 blobs)
  -> Scale (2 blobs) everywhere, fc1000;
- ``resnet152`` (~241 MB): the same with res3b1..b7 and res4b1..b35;
- ``vgg16``     (~553 MB): 13 convolutions + fc6/fc7/fc8, no BatchNorm, one 411 MB fc6 blob;
- ``vgg16_v1``  (~553 MB): the same net in the legacy V1 ``layers`` format with legacy blob
  dimensions (num/channels/height/width), as the original VGG release stores it.

Layer definitions are built and serialized with the project's generated ``caffe_pb2``; blobs are
appended by a small wire-format writer that streams their values in chunks, so the generator
never holds more than one chunk (16 MiB) of weights. Fields are written in field-number order, as
Caffe's ``SerializeToString`` writes them (blobs sit between ``param`` and ``include``). A deploy
prototxt (text format, no blobs) is written next to each model.

Files go to ``$BNCONVERT_BENCH_CACHE`` or ``~/.cache/bnconvert-bench/``; an existing file of
the right size is reused.

Usage::

    python benchmarks/make_models.py                 # all four
    python benchmarks/make_models.py resnet50 vgg16  # some
    python benchmarks/make_models.py --list
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from google.protobuf import text_format

from bnconvert._proto import caffe_pb2
from bnconvert.read.wire import encode_varint, iter_fields

__all__ = ["MODELS", "cache_dir", "model_paths", "ensure_model", "write_blob_field"]

SCALE_FACTOR = 95.2079  # sum of 0.999**k over 100 passes, as in the real fixtures
_CHUNK = 4 * 1024 * 1024  # float32 values per write (16 MiB)
_LENGTH = 2


# --- wire format -------------------------------------------------------------------------------

def _key(field: int, wire: int = _LENGTH) -> bytes:
    return encode_varint(field << 3 | wire)


@dataclass(frozen=True)
class BlobSpec:
    """A blob to write: its shape, whether to use legacy dims, and how to fill it."""

    shape: tuple[int, ...]
    fill: str  # "weight", "mean", "var", "factor", "scale", "bias"
    legacy: bool = False

    @property
    def count(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 0

    def header(self) -> bytes:
        blob = caffe_pb2.BlobProto()
        if self.legacy:
            dims = (1,) * (4 - len(self.shape)) + self.shape
            blob.num, blob.channels, blob.height, blob.width = dims
        else:
            blob.shape.dim.extend(self.shape)
        return blob.SerializeToString()

    def size(self) -> int:
        """Bytes of the BlobProto message (header + packed ``data``)."""
        payload = 4 * self.count
        return len(self.header()) + len(_key(5)) + len(encode_varint(payload)) + payload


def _values(spec: BlobSpec, rng: np.random.Generator) -> Iterator[np.ndarray]:
    remaining = spec.count
    while remaining:
        n = min(remaining, _CHUNK)
        remaining -= n
        if spec.fill == "factor":
            yield np.full(n, SCALE_FACTOR, dtype="<f4")
        elif spec.fill == "var":
            yield (rng.uniform(0.5, 2.0, n) * SCALE_FACTOR).astype("<f4")
        elif spec.fill == "mean":
            yield (rng.standard_normal(n, dtype=np.float32) * SCALE_FACTOR).astype("<f4")
        elif spec.fill == "scale":
            yield (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype("<f4")
        else:
            yield (0.01 * rng.standard_normal(n, dtype=np.float32)).astype("<f4")


def write_blob_field(out: BinaryIO, field: int, spec: BlobSpec, rng: np.random.Generator) -> None:
    """Write ``field`` (a layer's ``blobs``) holding one BlobProto, values streamed in chunks."""
    out.write(_key(field) + encode_varint(spec.size()))
    out.write(spec.header())
    out.write(_key(5) + encode_varint(4 * spec.count))
    for chunk in _values(spec, rng):
        out.write(chunk.tobytes())


def _split_at(raw: bytes, field: int) -> tuple[bytes, bytes]:
    """A serialized message's fields numbered below ``field``, and the rest (same order)."""
    cut, cursor = len(raw), 0
    for number, _wire, _a, b in iter_fields(raw, 0, len(raw)):
        if number > field:
            cut = cursor
            break
        cursor = b
    return raw[:cut], raw[cut:]


def write_layer(out: BinaryIO, layer: caffe_pb2.LayerParameter | caffe_pb2.V1LayerParameter,
                blobs: list[BlobSpec], rng: np.random.Generator) -> None:
    """Write one ``layer`` (100) or ``layers`` (2) entry of a NetParameter."""
    v1 = isinstance(layer, caffe_pb2.V1LayerParameter)
    blobs_field = 6 if v1 else 7
    head, tail = _split_at(layer.SerializeToString(), blobs_field)
    size = len(head) + len(tail) + sum(
        len(_key(blobs_field)) + len(encode_varint(b.size())) + b.size() for b in blobs)
    out.write(_key(2 if v1 else 100) + encode_varint(size) + head)
    for spec in blobs:
        write_blob_field(out, blobs_field, spec, rng)
    out.write(tail)


# --- net structures ----------------------------------------------------------------------------

Layers = list[tuple[caffe_pb2.LayerParameter, list[BlobSpec]]]


def _layer(name: str, type_: str, bottom: str, top: str) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name=name, type=type_, bottom=[bottom], top=[top])
    layer.phase = caffe_pb2.TEST
    return layer


def _conv(layers: Layers, name: str, bottom: str, top: str, c_in: int, c_out: int, kernel: int,
          stride: int = 1, bias: bool = False) -> None:
    layer = _layer(name, "Convolution", bottom, top)
    param = layer.convolution_param
    param.num_output, param.bias_term = c_out, bias
    param.kernel_size.append(kernel)
    if kernel > 1:
        param.pad.append(kernel // 2)
    if stride > 1:
        param.stride.append(stride)
    blobs = [BlobSpec((c_out, c_in, kernel, kernel), "weight")]
    if bias:
        blobs.append(BlobSpec((c_out,), "bias"))
    layers.append((layer, blobs))


def _bn_scale(layers: Layers, suffix: str, blob: str, channels: int) -> None:
    bn = _layer(f"bn{suffix}", "BatchNorm", blob, blob)
    bn.batch_norm_param.use_global_stats = True
    for _ in range(3):
        bn.param.add().lr_mult = 0
    layers.append((bn, [BlobSpec((channels,), "mean"), BlobSpec((channels,), "var"),
                        BlobSpec((1,), "factor")]))
    scale = _layer(f"scale{suffix}", "Scale", blob, blob)
    scale.scale_param.bias_term = True
    layers.append((scale, [BlobSpec((channels,), "scale"), BlobSpec((channels,), "bias")]))


def _relu(layers: Layers, name: str, blob: str) -> None:
    layers.append((_layer(name, "ReLU", blob, blob), []))


def _input(layers: Layers) -> None:
    layer = caffe_pb2.LayerParameter(name="data", type="Input", top=["data"])
    layer.phase = caffe_pb2.TEST
    layer.input_param.shape.add().dim.extend([1, 3, 224, 224])
    layers.append((layer, []))


def _pool(layers: Layers, name: str, bottom: str, method: str, kernel: int, stride: int) -> None:
    layer = _layer(name, "Pooling", bottom, name)
    layer.pooling_param.pool = caffe_pb2.PoolingParameter.PoolMethod.Value(method)
    layer.pooling_param.kernel_size = kernel
    layer.pooling_param.stride = stride
    layers.append((layer, []))


def _block_names(count: int, many: bool) -> list[str]:
    if not many:
        return [chr(ord("a") + i) for i in range(count)]
    return ["a"] + [f"b{i}" for i in range(1, count)]


def resnet(depth: int) -> Layers:
    """KaimingHe's ResNet-50/101/152 deploy net (bottleneck blocks)."""
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    layers: Layers = []
    _input(layers)
    _conv(layers, "conv1", "data", "conv1", 3, 64, 7, stride=2)
    _bn_scale(layers, "_conv1", "conv1", 64)
    _relu(layers, "conv1_relu", "conv1")
    _pool(layers, "pool1", "conv1", "MAX", 3, 2)
    bottom, c_in = "pool1", 64
    for stage, count in enumerate(blocks, start=2):
        planes = 64 * 2 ** (stage - 2)
        for i, letter in enumerate(_block_names(count, many=count > 6)):
            res = f"res{stage}{letter}"
            stride = 2 if i == 0 and stage > 2 else 1
            if i == 0:
                _conv(layers, f"{res}_branch1", bottom, f"{res}_branch1", c_in, 4 * planes, 1,
                      stride)
                _bn_scale(layers, f"{stage}{letter}_branch1", f"{res}_branch1", 4 * planes)
                shortcut = f"{res}_branch1"
            else:
                shortcut = bottom
            x, c = bottom, c_in
            for part, (kernel, c_out) in zip("abc", ((1, planes), (3, planes), (1, 4 * planes)),
                                             strict=True):
                top = f"{res}_branch2{part}"
                _conv(layers, top, x, top, c, c_out, kernel, stride if part == "a" else 1)
                _bn_scale(layers, f"{stage}{letter}_branch2{part}", top, c_out)
                if part != "c":
                    _relu(layers, f"{top}_relu", top)
                x, c = top, c_out
            add = caffe_pb2.LayerParameter(name=res, type="Eltwise", bottom=[shortcut, x],
                                           top=[res])
            add.phase = caffe_pb2.TEST
            layers.append((add, []))
            _relu(layers, f"{res}_relu", res)
            bottom, c_in = res, 4 * planes
    _pool(layers, "pool5", bottom, "AVE", 7, 1)
    _fc_softmax(layers, "fc1000", "pool5", c_in, 1000)
    return layers


def _fc(layers: Layers, name: str, bottom: str, c_in: int, c_out: int) -> None:
    layer = _layer(name, "InnerProduct", bottom, name)
    layer.inner_product_param.num_output = c_out
    layers.append((layer, [BlobSpec((c_out, c_in), "weight"), BlobSpec((c_out,), "bias")]))


def _fc_softmax(layers: Layers, name: str, bottom: str, c_in: int, c_out: int) -> None:
    _fc(layers, name, bottom, c_in, c_out)
    layers.append((_layer("prob", "Softmax", name, "prob"), []))


def vgg16() -> Layers:
    """VGG-16 (configuration D), deploy net."""
    layers: Layers = []
    _input(layers)
    bottom, c_in = "data", 3
    for stage, (convs, c_out) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
                                           start=1):
        for i in range(1, convs + 1):
            name = f"conv{stage}_{i}"
            _conv(layers, name, bottom, name, c_in, c_out, 3, bias=True)
            _relu(layers, f"relu{stage}_{i}", name)
            bottom, c_in = name, c_out
        _pool(layers, f"pool{stage}", bottom, "MAX", 2, 2)
        bottom = f"pool{stage}"
    _fc(layers, "fc6", bottom, 512 * 7 * 7, 4096)
    for n, c_in_fc in ((6, None), (7, 4096)):
        if c_in_fc is not None:
            _fc(layers, f"fc{n}", f"fc{n - 1}", c_in_fc, 4096)
        _relu(layers, f"relu{n}", f"fc{n}")
        drop = _layer(f"drop{n}", "Dropout", f"fc{n}", f"fc{n}")
        drop.dropout_param.dropout_ratio = 0.5
        layers.append((drop, []))
    _fc_softmax(layers, "fc8", "fc7", 4096, 1000)
    return layers


_V1_TYPES = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING",
             "InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT", "Softmax": "SOFTMAX"}


def to_v1(layers: Layers) -> list[tuple[caffe_pb2.V1LayerParameter, list[BlobSpec]]]:
    """The same net as V1 ``layers`` with legacy 4-D blob dims (no Input layer: header input)."""
    out = []
    for layer, blobs in layers:
        if layer.type == "Input":
            continue
        v1 = caffe_pb2.V1LayerParameter(name=layer.name, bottom=layer.bottom, top=layer.top)
        v1.type = caffe_pb2.V1LayerParameter.LayerType.Value(_V1_TYPES[layer.type])
        for field in ("convolution_param", "pooling_param", "inner_product_param",
                      "dropout_param"):
            if layer.HasField(field):
                getattr(v1, field).CopyFrom(getattr(layer, field))
        out.append((v1, [BlobSpec(b.shape, b.fill, legacy=True) for b in blobs]))
    return out


# --- files -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], list]
    v1: bool = False
    seed: int = 0


MODELS = {
    "resnet50": ModelSpec("ResNet-50", lambda: resnet(50), seed=50),
    "resnet152": ModelSpec("ResNet-152", lambda: resnet(152), seed=152),
    "vgg16": ModelSpec("VGG_ILSVRC_16_layers", vgg16, seed=16),
    "vgg16_v1": ModelSpec("VGG_ILSVRC_16_layers", lambda: to_v1(vgg16()), v1=True, seed=16),
}


def cache_dir() -> Path:
    """``$BNCONVERT_BENCH_CACHE`` or ``~/.cache/bnconvert-bench``."""
    env = os.environ.get("BNCONVERT_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "bnconvert-bench"


def model_paths(key: str) -> tuple[Path, Path]:
    """``(deploy.prototxt, model.caffemodel)`` paths of a model in the cache."""
    folder = cache_dir() / key
    return folder / "deploy.prototxt", folder / "model.caffemodel"


def _header(spec: ModelSpec) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name=spec.name)
    if spec.v1:
        net.input.append("data")
        net.input_dim.extend([1, 3, 224, 224])
    return net


def _expected_size(spec: ModelSpec, layers: list) -> int:
    total = len(_header(spec).SerializeToString())
    for layer, blobs in layers:
        body = len(layer.SerializeToString()) + sum(
            1 + len(encode_varint(b.size())) + b.size() for b in blobs)
        total += len(_key(2 if spec.v1 else 100)) + len(encode_varint(body)) + body
    return total


def ensure_model(key: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write (or reuse) a model's caffemodel and deploy prototxt; return their paths."""
    spec = MODELS[key]
    layers = spec.build()
    prototxt, caffemodel = model_paths(key)
    expected = _expected_size(spec, layers)
    if (not force and caffemodel.exists() and caffemodel.stat().st_size == expected
            and prototxt.exists()):
        return prototxt, caffemodel
    caffemodel.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    partial = caffemodel.with_suffix(".partial")
    with open(partial, "wb") as out:
        out.write(_header(spec).SerializeToString())
        for layer, blobs in layers:
            write_layer(out, layer, blobs, rng)
    if partial.stat().st_size != expected:
        raise RuntimeError(f"{partial}: wrote {partial.stat().st_size} bytes, expected {expected}")
    os.replace(partial, caffemodel)
    deploy = _header(spec)
    (deploy.layers if spec.v1 else deploy.layer).extend(layer for layer, _ in layers)
    prototxt.write_text(text_format.MessageToString(deploy))
    return prototxt, caffemodel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"models to generate: {', '.join(MODELS)} (default: all)")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument("--list", action="store_true", help="print the cached paths and exit")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    for key in args.models or list(MODELS):
        if args.list:
            print(key, *model_paths(key))
            continue
        prototxt, caffemodel = ensure_model(key, force=args.force)
        print(f"{key}: {caffemodel} ({caffemodel.stat().st_size / 1e6:.1f} MB), {prototxt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
