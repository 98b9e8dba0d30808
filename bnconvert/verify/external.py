"""Optional references run by real frameworks, each on a tiny net per chain
(``Input -> BatchNorm -> Scale -> Bias``) generated from the chain's raw Caffe parameters:

- ``pycaffe``: BVLC Caffe itself (``import caffe``), every layer and mode it supports;
- ``opencv``: ``cv2.dnn.readNetFromCaffe`` (``opencv-python-headless<5``). OpenCV has no Bias
  layer, cannot read ``double_data`` blobs and does not run ``use_global_stats: false`` with a
  batch: such chains are reported as not checked by OpenCV, never failed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from .._proto import caffe_pb2
from ..errors import BnConvertError
from .reference import CaffeChain

__all__ = ["ExternalReference", "Unsupported", "ReferenceUnavailableError", "external_reference",
           "tiny_net",
           "REFERENCES"]

REFERENCES = ("numpy", "pycaffe", "opencv")


class ReferenceUnavailableError(BnConvertError):
    """The requested reference framework is not installed."""


@dataclass(frozen=True)
class Unsupported:
    """The reference cannot run this chain, and why."""

    reason: str


ExternalReference = Callable[[CaffeChain, np.ndarray], "np.ndarray | Unsupported"]


def tiny_net(chain: CaffeChain, shape: tuple[int, ...]) -> tuple[str, bytes, str]:
    """The chain as a standalone net: ``(prototxt text, caffemodel bytes, output blob name)``.

    Blobs are written as float ``data`` with a ``shape``; layer tops are not in place.
    """
    net = caffe_pb2.NetParameter(name="bnconvert_verify")
    data = net.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=list(shape))
    bn = net.layer.add(name="bn", type="BatchNorm", bottom=["data"], top=["bn"])
    bn.batch_norm_param.eps = float(chain.eps)
    bn.batch_norm_param.use_global_stats = chain.use_global_stats
    _add_blobs(bn, chain.mean_acc, chain.var_acc, np.array([chain.scale_factor], np.float32))
    top = "bn"
    if chain.gamma is not None:
        scale = net.layer.add(name="scale", type="Scale", bottom=[top], top=["scale"])
        scale.scale_param.bias_term = chain.beta is not None
        _add_blobs(scale, chain.gamma, *(() if chain.beta is None else (chain.beta,)))
        top = "scale"
    if chain.bias is not None:
        bias = net.layer.add(name="bias", type="Bias", bottom=[top], top=["bias"])
        _add_blobs(bias, chain.bias)
        top = "bias"
    definition = caffe_pb2.NetParameter()
    definition.CopyFrom(net)
    for layer in definition.layer:
        del layer.blobs[:]
    return text_format.MessageToString(definition), net.SerializeToString(), top


def _add_blobs(layer: caffe_pb2.LayerParameter, *vectors: np.ndarray) -> None:
    for vector in vectors:
        blob = layer.blobs.add()
        blob.shape.dim.append(int(vector.size))
        blob.data.extend(np.asarray(vector, np.float32).tolist())


def _opencv(chain: CaffeChain, x: np.ndarray) -> np.ndarray | Unsupported:
    import cv2

    if chain.bias is not None:
        return Unsupported(f"OpenCV has no Bias layer ({chain.layers[-1]!r})")
    if "double_data" in chain.blob_storage:
        return Unsupported("OpenCV cannot read double_data blobs, which this chain's layers use")
    if not chain.use_global_stats:
        return Unsupported("OpenCV does not run use_global_stats: false (batch statistics) "
                           "on a batch")
    prototxt, model, top = tiny_net(chain, x.shape)
    net = cv2.dnn.readNetFromCaffe(np.frombuffer(prototxt.encode(), np.uint8),
                                   np.frombuffer(model, np.uint8))
    net.setInput(np.ascontiguousarray(x, np.float32))
    return np.asarray(net.forward(top), np.float32).reshape(x.shape)


def _pycaffe(chain: CaffeChain, x: np.ndarray) -> np.ndarray | Unsupported:
    import caffe

    prototxt, model, top = tiny_net(chain, x.shape)
    with tempfile.TemporaryDirectory(prefix="bnconvert-verify-") as folder:
        definition, weights = Path(folder, "net.prototxt"), Path(folder, "net.caffemodel")
        definition.write_text(prototxt)
        weights.write_bytes(model)
        net = caffe.Net(str(definition), str(weights), caffe.TEST)
        net.blobs["data"].data[...] = x
        net.forward()
        return np.array(net.blobs[top].data, np.float32)


_RUNNERS: dict[str, tuple[str, ExternalReference]] = {
    "opencv": ("cv2", _opencv),
    "pycaffe": ("caffe", _pycaffe),
}


def external_reference(name: str) -> ExternalReference:
    """The runner of an optional reference, after checking that its framework imports.

    Raises:
        ReferenceUnavailableError: the framework is not installed (with how to install it).
        ValueError: ``name`` is not ``pycaffe`` or ``opencv``.
    """
    if name not in _RUNNERS:
        raise ValueError(f"unknown reference {name!r}; choose one of {', '.join(REFERENCES)}")
    module, runner = _RUNNERS[name]
    try:
        __import__(module)
    except ImportError as exc:
        how = ("pip install 'bnconvert[opencv]'" if name == "opencv"
               else "build BVLC Caffe with its Python interface and put it on PYTHONPATH")
        raise ReferenceUnavailableError(f"--reference {name} needs 'import {module}', which "
                                        f"failed ({exc}); {how}") from None
    return runner
