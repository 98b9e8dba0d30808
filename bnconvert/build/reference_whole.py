"""What the whole-net references (``verify --whole --reference opencv|pycaffe``) share: the
blobs a framework computed, which blobs it could not compute as Caffe does (and why), the
inputs they ran on, and the net definition handed to the framework.

A layer the reference cannot run, or runs with other semantics than Caffe, makes its own tops
and everything computed from them "not checked" (its output is not Caffe's, so neither is any
blob downstream); the reason names the layer where it started. Nothing is silently passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BnConvertError, ParseError
from ..graph.shapes import declared_inputs
from ..read.net import Layer, Net

__all__ = ["ReferenceBlobs", "ReferenceInputError", "last_writers", "untrusted_layers",
           "reference_inputs", "net_definition"]

PathLike = str | os.PathLike[str]


class ReferenceInputError(BnConvertError):
    """The reference cannot be given an input (no declared shape, a mismatching --input)."""

    exit_code = 2


@dataclass(frozen=True)
class ReferenceBlobs:
    """Caffe's blobs after the forward, as a reference framework computed them.

    Attributes:
        name: the reference (``opencv``, ``pycaffe``).
        values: blob name -> its value after the forward (in-place blobs: the last writer's).
        not_checked: blob name -> why the reference does not give Caffe's value for it.
        inputs: the net inputs it ran on, by blob name.
    """

    name: str
    values: dict[str, np.ndarray]
    not_checked: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


def last_writers(net: Net) -> dict[str, tuple[Layer, int]]:
    """Each blob's last writer and the top index it wrote, in the order the writers ran.

    Example:
        >>> {blob: (layer.name, i) for blob, (layer, i) in last_writers(EXAMPLE_NET).items()}
        ... # doctest: +ELLIPSIS
        {'data': ('data', 0), 'res2a_branch1': ('scale2a_branch1', 0), ...}
    """
    found: dict[str, tuple[Layer, int]] = {}
    for layer in net.layers:
        for index, top in enumerate(layer.tops):
            found.pop(top, None)
            found[top] = (layer, index)
    return found


def untrusted_layers(net: Net, own: Mapping[str, str]) -> dict[str, str]:
    """The layers whose output the reference does not compute as Caffe, with the reason.

    Args:
        net: the typed net.
        own: layer name -> why the reference cannot run that layer as Caffe does.

    Returns:
        Those layers, plus every layer that reads a blob version one of them wrote (an
        in-place layer after an untrusted one included), by name, in net order.
    """
    tainted: dict[str, str] = {}  # current version of a blob -> where it stopped being Caffe's
    found: dict[str, str] = {}
    for layer in net.layers:
        root = own.get(layer.name)
        if root is not None:
            root = f"layer {layer.name!r} ({layer.type}): {root}"
            found[layer.name] = root
        else:
            root = next((tainted[b] for b in layer.bottoms if b in tainted), None)
            if root is not None:
                found[layer.name] = f"computed from {root}"
        for top in layer.tops:
            tainted.pop(top, None)
            if root is not None:
                tainted[top] = root
    return found


def reference_inputs(net: Net, first: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """The inputs the reference and the converted module both run on.

    The net's first declared input is ``first`` when given; every other input is seeded
    standard-normal float32 noise of its declared shape (``numpy.random.default_rng(seed)``,
    drawn in declaration order).

    Raises:
        ReferenceInputError: an input without a declared shape, or a ``first`` of another rank.
    """
    rng = np.random.default_rng(seed)
    found: dict[str, np.ndarray] = {}
    for index, (name, shape) in enumerate(declared_inputs(net).items()):
        if index == 0 and first is not None:
            if shape is not None and len(shape) != first.ndim:
                raise ReferenceInputError(
                    f"--input has shape {list(first.shape)}; the net's input {name!r} is "
                    f"declared {list(shape)}")
            found[name] = np.ascontiguousarray(first, np.float32)
        elif shape is None:
            raise ReferenceInputError(f"{net.describe()}: input {name!r} declares no shape; "
                                      "give one with --input INPUT.npy")
        else:
            found[name] = rng.standard_normal(shape).astype(np.float32)
    return found


def net_definition(prototxt: PathLike | None, caffemodel: PathLike,
                   dropped: frozenset[str] = frozenset()) -> str:
    """The net definition as prototxt text, without the layers named in ``dropped`` (for a
    framework that must not see them). Without a prototxt it comes from the caffemodel (its
    learned blobs left out: the framework reads them from the caffemodel by layer name).
    A Pooling's ``round_mode: CEIL``, Caffe's default, is left unwritten (OpenCV 4 cannot run
    a Pooling that writes ``round_mode`` at all). A ``DummyData`` layer, the deploy placeholder
    the built module takes as an input, becomes an ``Input`` of its shape (so that the
    framework runs on the same input instead of DummyData's filler).

    Raises:
        ParseError: the file cannot be read with Caffe's own schema.
    """
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError

    from .._proto import caffe_pb2

    message = caffe_pb2.NetParameter()
    source = prototxt if prototxt is not None else caffemodel
    try:
        if prototxt is not None:
            text_format.Parse(open(prototxt, encoding="utf-8").read(), message)
        else:
            message.ParseFromString(open(caffemodel, "rb").read())
    except (OSError, UnicodeDecodeError, text_format.ParseError, DecodeError) as exc:
        raise ParseError(f"{source}: cannot be rewritten for the reference with Caffe's "
                         f"schema: {' '.join(str(exc).split())}") from None
    _drop_layers(message.layer, dropped)
    _drop_layers(message.layers, dropped)  # the V1 format
    for layer in message.layer:
        if layer.type == "DummyData":
            _dummy_to_input(layer)
        pooling = layer.pooling_param
        if layer.HasField("pooling_param") and pooling.HasField("round_mode") \
                and pooling.round_mode == caffe_pb2.PoolingParameter.CEIL:
            pooling.ClearField("round_mode")
    return str(text_format.MessageToString(message))


def _dummy_to_input(layer: Any) -> None:
    """A DummyData layer rewritten as an Input of the same shapes (``shape`` or the legacy
    num/channels/height/width lists)."""
    dummy = layer.dummy_data_param
    shapes = [list(x.dim) for x in dummy.shape] or [
        list(dims) for dims in zip(dummy.num, dummy.channels, dummy.height, dummy.width,
                                   strict=False)]
    layer.ClearField("dummy_data_param")
    layer.type = "Input"
    for dims in shapes:
        layer.input_param.shape.add(dim=dims)


def _drop_layers(layers: Any, dropped: frozenset[str]) -> None:
    """Keep the layers not named in ``dropped``, without their learned blobs."""
    kept = [x for x in layers if x.name not in dropped]
    for layer in kept:
        del layer.blobs[:]
    del layers[:]
    layers.extend(kept)
