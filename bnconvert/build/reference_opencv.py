"""``verify --whole --reference opencv``: the whole net run by OpenCV's dnn module
(``opencv-python-headless<5``: ``readNetFromCaffe``, ``DNN_BACKEND_OPENCV``, ``DNN_TARGET_CPU``)
on the same inputs, every layer's outputs requested by layer name.

Fusion is switched off (``enableFusion(False)``): fused, a Convolution's output would be
reported after the ReLU/BatchNorm OpenCV folded into it. (OpenCV 4.14 does not fuse a layer
whose output is requested, and every layer's is: measured equal with fusion on; switching it
off keeps that from depending on OpenCV's version.) So is Winograd convolution
(``enableWinograd(False)``, OpenCV >= 4.7), which rounds 3x3 convolutions differently from
Caffe's direct GEMM (on vgg_style_lrn's norm2: 8.7e-6 of the magnitude from Caffe with it,
1.6e-6 without). ``forwardAndRetrieve`` gives every top
of every layer; an in-place blob's value is its last writer's output.

Where OpenCV cannot run a layer or runs it with other semantics than Caffe (measured against
real Caffe on tests/data/whole; the rules below), that layer is left out of the net OpenCV
loads, and its tops and every blob computed from them are reported as not checked by opencv,
with the reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BnConvertError, ParseError
from ..graph.blobs import BlobGraph
from ..graph.shapes import infer_shapes
from ..read.net import Layer, Net
from ..verify.external import ReferenceUnavailableError
from .handlers import LEFT_OUT
from .reference_whole import ReferenceBlobs, last_writers, net_definition, untrusted_layers

__all__ = ["OpenCVError", "opencv_reference", "opencv_differs", "OPENCV_RULES"]

PathLike = str | os.PathLike[str]
Rule = Callable[[Layer], "str | None"]
_INPUT_TYPES = frozenset({"Input", "DummyData"})  # the built module's inputs

#: Caffe layer type -> why OpenCV does not compute that layer as Caffe does (None: it does).
OPENCV_RULES: dict[str, Rule] = {}


class OpenCVError(BnConvertError):
    """OpenCV cannot load or run the net at all (exit 2: nothing could be checked)."""

    exit_code = 2


def opencv_differs(layer_type: str) -> Callable[[Rule], Rule]:
    """Register the rule saying when OpenCV's ``layer_type`` differs from Caffe's."""
    def register(rule: Rule) -> Rule:
        if layer_type in OPENCV_RULES:
            raise ValueError(f"a second OpenCV rule for {layer_type!r}")
        OPENCV_RULES[layer_type] = rule
        return rule
    return register


def no_such_layer(layer: Layer) -> str | None:
    """OpenCV's Caffe importer has no layer of this type (measured with 4.x: "Can't create
    layer ... of type ...")."""
    return f"OpenCV has no {layer.type} layer"


for _type in ("Bias", "Threshold", "Clip", "Reduction", "ArgMax", "Embed", "SPP",
              "DepthwiseConvolution"):
    opencv_differs(_type)(no_such_layer)


@opencv_differs("Tile")
def tile_not_run(layer: Layer) -> str | None:
    """OpenCV's Tile wants an ONNX ``repeats`` input (measured: "repeats needs to be treated as
    parameter but it is missing")."""
    return "OpenCV cannot run Caffe's Tile"


@opencv_differs("MVN")
def mvn_eps(layer: Layer) -> str | None:
    """OpenCV divides by sqrt(var + eps); Caffe by sqrt(var) + eps (measured: eps 0.5 is 22%
    off)."""
    if getattr(layer.params, "normalize_variance", True):
        return "OpenCV's MVN adds eps to the variance, Caffe adds it to the standard deviation"
    return None


@opencv_differs("Log")
def log_base_scale_shift(layer: Layer) -> str | None:
    """OpenCV's Log is ln(x): base, scale and shift are ignored (measured)."""
    p: Any = layer.params
    if (p.base, p.scale, p.shift) != (-1.0, 1.0, 0.0):
        return "OpenCV's Log ignores base, scale and shift (computes ln(x))"
    return None


@opencv_differs("Swish")
def swish_beta(layer: Layer) -> str | None:
    """OpenCV's Swish is x * sigmoid(x): beta is ignored (measured: beta 2 is 7% off)."""
    beta = getattr(layer.params, "beta", 1.0)
    if beta != 1.0:
        return f"OpenCV's Swish ignores beta (computes beta = 1, Caffe's is {beta:g})"
    return None


@opencv_differs("LRN")
def lrn_ignores_k(layer: Layer) -> str | None:
    """OpenCV's LRN always uses k = 1 (measured: k 1.5 gives the output of k 1, 18% off);
    WITHIN_CHANNEL is unaffected (Caffe ignores k there too)."""
    p: Any = layer.params
    if p.norm_region == "ACROSS_CHANNELS" and p.k != 1.0:
        return f"OpenCV's LRN ignores k (computes k = 1, Caffe's is {p.k:g})"
    return None


@opencv_differs("Pooling")
def pooling_floor(layer: Layer) -> str | None:
    """OpenCV cannot run ``round_mode: FLOOR`` (measured: an assertion, kernel > 0)."""
    if getattr(layer.params, "round_mode", "CEIL") == "FLOOR":
        return "OpenCV cannot run Pooling with floor rounding (round_mode: FLOOR)"
    return None


@opencv_differs("BatchNorm")
def batch_statistics(layer: Layer) -> str | None:
    """OpenCV uses the stored statistics: ``use_global_stats: false`` (the batch's
    statistics in Caffe's TEST forward too) is not what it runs."""
    if getattr(layer.params, "use_global_stats", None) is False:
        return "OpenCV does not run use_global_stats: false (batch statistics)"
    return None


def _own_reason(layer: Layer) -> str | None:
    """Why OpenCV does not compute this layer as Caffe does, or None."""
    if layer.type in LEFT_OUT:
        return "left out of the built net (train/test only)"
    if layer.extras:
        return f"fork fields OpenCV does not read ({', '.join(sorted(layer.extras))})"
    storage = sorted({b.source for b in layer.blobs or ()} - {"data"})
    if storage:
        return f"OpenCV reads only float data blobs, not {', '.join(storage)}"
    rule = OPENCV_RULES.get(layer.type)
    return rule(layer) if rule is not None else None


def _overhanging_pools(net: Net, inputs: dict[str, np.ndarray]) -> dict[str, str]:
    """Pooling layers whose last ceil-rounded window starts past the input (pad 0, e.g. k2 s3
    on 6): Caffe writes -FLT_MAX (MAX) or NaN (AVE) there, OpenCV does not (measured: 0)."""
    shapes = infer_shapes(net, {name: value.shape for name, value in inputs.items()})
    reads = BlobGraph(net).inputs
    found = {}
    for layer in net.layers:
        p: Any = layer.params
        if layer.type != "Pooling" or p.global_pooling or p.round_mode != "CEIL" \
                or p.kernel is None or p.pad != (0, 0):
            continue
        shape = shapes.get(reads[layer.index][0])
        if shape is not None and len(shape) == 4 and any(
                (-(-(size - k) // s)) * s >= size
                for size, k, s in zip(shape[2:], p.kernel, p.stride, strict=True)):
            found[layer.name] = ("Caffe's last window starts past the input (it writes "
                                 "-FLT_MAX or NaN there), OpenCV's does not")
    return found


def opencv_reference(net: Net, prototxt: PathLike | None, caffemodel: PathLike,
                     inputs: dict[str, np.ndarray]) -> ReferenceBlobs:
    """Every blob of ``net`` after OpenCV's forward on ``inputs``.

    Args:
        net: the typed net read from ``prototxt`` + ``caffemodel``.
        inputs: the net inputs by blob name (``reference_inputs``).

    Returns:
        The blobs, with those OpenCV does not compute as Caffe in ``not_checked``.

    Raises:
        ReferenceUnavailableError: ``import cv2`` fails.
        OpenCVError: OpenCV cannot load or run what is left of the net.
    """
    cv2 = _import_cv2()
    own = {x.name: r for x in net.layers if (r := _own_reason(x)) is not None}
    untrusted = untrusted_layers(net, {**_overhanging_pools(net, inputs), **own})
    sources = _sources(net, untrusted)
    names = sorted({s[0] for s in sources.values() if isinstance(s, tuple)}, key=_order(net))
    outputs = _run(cv2, _load(cv2, net, prototxt, caffemodel, frozenset(untrusted)),
                   names, inputs, net.describe()) if names else {}
    values, not_checked = {}, {}
    for blob, (layer, _) in last_writers(net).items():
        if layer.name in untrusted:
            not_checked[blob] = untrusted[layer.name]
        elif isinstance(source := sources[blob], str):
            values[blob] = inputs[source]
        elif source[1] < len(outputs[source[0]]):
            values[blob] = outputs[source[0]][source[1]]
        else:
            not_checked[blob] = f"OpenCV gives layer {source[0]!r} no top #{source[1]}"
    return ReferenceBlobs("opencv", values, not_checked, inputs)


def _sources(net: Net, untrusted: dict[str, str]) -> dict[str, tuple[str, int] | str]:
    """Where each blob's final value comes from: ``(layer, top index)`` of a layer OpenCV
    runs, or the name of a net input. A Split's tops are its bottom (Caffe copies; OpenCV's
    importer aliases them and runs no layer of that name)."""
    found: dict[str, tuple[str, int] | str] = {name: name for name in net.input_shapes}
    for layer in net.layers:
        if layer.name in untrusted:
            continue
        for index, top in enumerate(layer.tops):
            found[top] = (top if layer.type in _INPUT_TYPES
                          else found[layer.bottoms[0]] if layer.type == "Split"
                          else (layer.name, index))
    return found


def _order(net: Net) -> Callable[[str], int]:
    positions = {x.name: x.index for x in net.layers}
    return positions.__getitem__


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ReferenceUnavailableError(
            f"--reference opencv needs 'import cv2', which failed ({exc}); "
            "pip install 'bnconvert[opencv]'") from None
    return cv2


def _load(cv2: Any, net: Net, prototxt: PathLike | None, caffemodel: PathLike,
          dropped: frozenset[str]) -> Any:
    """The net in OpenCV, from the definition ``net_definition`` rewrites (the dropped layers
    left out; without a prototxt, the caffemodel's own definition), or the user's prototxt as
    it is when Caffe's schema cannot read it and nothing needs dropping (a fork's file)."""
    with tempfile.TemporaryDirectory(prefix="bnconvert-opencv-") as folder:
        definition = Path(folder, "net.prototxt")
        try:
            definition.write_text(net_definition(prototxt, caffemodel, dropped))
        except ParseError:
            if prototxt is None or dropped:
                raise
            definition = Path(prototxt)
        try:
            loaded = cv2.dnn.readNetFromCaffe(str(definition), str(caffemodel))
        except cv2.error as exc:
            raise OpenCVError(f"{net.describe()}: OpenCV cannot load the net: "
                              f"{_cv2_reason(exc)}") from None
    loaded.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    loaded.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    loaded.enableFusion(False)
    if hasattr(loaded, "enableWinograd"):  # OpenCV >= 4.7: its Winograd 3x3 convolutions are
        loaded.enableWinograd(False)  # 3-5x further from Caffe (measured on vgg_style_lrn)
    return loaded


def _run(cv2: Any, loaded: Any, names: list[str], inputs: dict[str, np.ndarray],
         described: str) -> dict[str, list[np.ndarray]]:
    """Each named layer's outputs (every top, in order) after one forward."""
    try:
        for blob, value in inputs.items():
            loaded.setInput(np.ascontiguousarray(value, np.float32), blob)
        found = loaded.forwardAndRetrieve(names)
    except cv2.error as exc:
        raise OpenCVError(f"{described}: OpenCV cannot run the net: {_cv2_reason(exc)}") \
            from None
    return {name: [np.asarray(x) for x in outs] for name, outs in zip(names, found, strict=True)}


def _cv2_reason(exc: Exception) -> str:
    """OpenCV's message on one line, without the source path it starts with."""
    text = " ".join(str(exc).split())
    return text.split(" error: ", 1)[-1]
