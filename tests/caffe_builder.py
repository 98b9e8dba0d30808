"""Build small Caffe nets and caffemodels for edge cases the real fixtures lack.

Expected values in tests that use these come from the documented Caffe formula, never from
bnconvert's own code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from bnconvert._proto import caffe_pb2


def blob(values: Sequence[float] | np.ndarray, shape: Sequence[int] | None = None,
         legacy: bool = False, double: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto holding ``values`` (float32 ``data`` unless ``double``)."""
    array = np.asarray(values, dtype=np.float64 if double else np.float32).ravel()
    proto = caffe_pb2.BlobProto()
    dims = list(shape) if shape is not None else [array.size]
    if legacy:
        padded = [1] * (4 - len(dims)) + dims
        proto.num, proto.channels, proto.height, proto.width = padded
    else:
        proto.shape.dim.extend(dims)
    (proto.double_data if double else proto.data).extend(array.tolist())
    return proto


class NetBuilder:
    """Append layers, then write ``deploy.prototxt`` and ``model.caffemodel``."""

    def __init__(self, name: str = "net") -> None:
        self.net = caffe_pb2.NetParameter(name=name)

    def layer(self, name: str, type_: str, bottoms: Sequence[str], tops: Sequence[str],
              blobs: Sequence[caffe_pb2.BlobProto] = (),
              **params: str) -> caffe_pb2.LayerParameter:
        layer = self.net.layer.add(name=name, type=type_)
        layer.bottom.extend(bottoms)
        layer.top.extend(tops)
        for blob_proto in blobs:
            layer.blobs.add().CopyFrom(blob_proto)
        for field, value in params.items():
            text_format.Parse(value, getattr(layer, field)) if isinstance(value, str) else \
                getattr(layer, field).CopyFrom(value)
        return layer

    def input(self, name: str, shape: Sequence[int]) -> NetBuilder:
        dims = " ".join(f"dim: {d}" for d in shape)
        self.layer(name, "Input", [], [name], input_param=f"shape {{ {dims} }}")
        return self

    def batch_norm(self, name: str, bottom: str, top: str, mean: Sequence[float],
                   var: Sequence[float], factor: float, param: str = "") -> NetBuilder:
        self.layer(name, "BatchNorm", [bottom], [top],
                   [blob(mean), blob(var), blob([factor])], batch_norm_param=param)
        return self

    def scale(self, name: str, bottom: str, top: str, gamma: Sequence[float],
              beta: Sequence[float] | None = None, param: str = "") -> NetBuilder:
        blobs = [blob(gamma)] + ([blob(beta)] if beta is not None else [])
        bias_term = "bias_term: true" if beta is not None else "bias_term: false"
        self.layer(name, "Scale", [bottom], [top], blobs, scale_param=f"{bias_term} {param}")
        return self

    def save(self, folder: Path, prototxt: bool = True) -> tuple[Path, Path]:
        """Write ``deploy.prototxt`` (definitions only) and ``model.caffemodel``."""
        folder.mkdir(parents=True, exist_ok=True)
        model = folder / "model.caffemodel"
        model.write_bytes(self.net.SerializeToString())
        deploy = folder / "deploy.prototxt"
        if prototxt:
            definition = caffe_pb2.NetParameter()
            definition.CopyFrom(self.net)
            for layer in definition.layer:
                del layer.blobs[:]
            deploy.write_text(text_format.MessageToString(definition))
        return deploy, model
