"""The net as Caffe builds it: the prototxt defines the layers, the caffemodel's weights are
copied into them by layer name (``Net::CopyTrainedLayersFrom``).

Only TEST-phase layers count (Caffe's ``include``/``exclude`` rules with phase TEST, level 0,
no stages). A caffemodel alone also defines a net: the layers it stores, in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .._proto import caffe_pb2
from ..layers import LayerParamError, Params, UnreadableParams, is_learned, read_params
from .blob import BlobRef
from .caffemodel import Caffemodel, read_caffemodel
from .fork_params import binary_fork_params, flatten_extras
from .v1_types import v1_type_name

if TYPE_CHECKING:
    from .prototxt import ParsedPrototxt, UnknownField

__all__ = ["Layer", "Net", "load_net", "net_from_parts"]

_LayerMessage = caffe_pb2.LayerParameter | caffe_pb2.V1LayerParameter

@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of the TEST-phase net, read once and typed.

    Attributes:
        index: position in the net (after phase filtering).
        name, type: Caffe's layer name and V2 type string (V1 enums are translated).
        bottoms, tops: blob names.
        params: the typed parameters of its type with Caffe's defaults (``bnconvert.layers``):
            ``UnknownParams`` for a type bnconvert does not read, ``UnreadableParams`` when the
            parameters are malformed (``problem`` says why).
        blobs: the weights copied from the caffemodel, or None when the caffemodel has no layer
            of this name (or no caffemodel was given).
        extras: fields of Caffe forks that BVLC's schema does not know, e.g.
            ``{"bn_param": {"bn_mode": "INFERENCE"}}`` (see ``fork_params``).
        problem: why the layer's definition could not be read faithfully (parameters that do
            not decode, malformed fork fields), else None.
    """

    index: int
    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Params
    blobs: tuple[BlobRef, ...] | None
    extras: Mapping[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def learned(self) -> bool:
        """True for a layer type that carries trained blobs."""
        return is_learned(self.type)


@dataclass(frozen=True, eq=False)
class Net:
    """The merged net.

    Attributes:
        layers: TEST-phase layers in order.
        input_shapes: shapes declared by the legacy net header (``input``/``input_shape``/
            ``input_dim``), by blob name.
        prototxt, caffemodel: the files it came from (None where not given).
        unknown: fields and enum values the schema does not know, skipped (prototxt only).
        missing_weights: layers of the net with no weights in the caffemodel.
        unused_weights: caffemodel layers with blobs that no net layer is named after.
        refused_by_caffe: why Caffe itself would not build this net definition, if it would
            not (e.g. V2 ``layer`` and V1 ``layers`` entries mixed in one file).
    """

    name: str
    layers: tuple[Layer, ...]
    input_shapes: dict[str, tuple[int, ...]]
    prototxt: str | None
    caffemodel: str | None
    unknown: tuple[UnknownField, ...] = ()
    missing_weights: tuple[str, ...] = ()
    unused_weights: tuple[str, ...] = ()
    source: str = "net"
    refused_by_caffe: str | None = None
    header_problem: str | None = None

    def missing_learned_weights(self) -> tuple[str, ...]:
        """Layers of a learned type that the caffemodel has no weights for: Caffe keeps them
        at their initial values. Empty without a prototxt."""
        if self.prototxt is None or self.caffemodel is None:
            return ()
        learned = {layer.name for layer in self.layers if layer.learned}
        return tuple(n for n in self.missing_weights if n in learned)

    def definition_problems(self) -> tuple[str, ...]:
        """Parts of the net definition that could not be read faithfully (a net header or layer
        parameters that do not decode, malformed fork fields), one line each."""
        found = [f"net header: {self.header_problem}"] if self.header_problem else []
        found += [f"layer {x.name!r} ({x.type}): {x.problem}" for x in self.layers if x.problem]
        return tuple(found)

    def describe(self) -> str:
        """The file(s) the net came from, for messages."""
        return " + ".join(p for p in (self.prototxt, self.caffemodel) if p)


def load_net(prototxt: str | os.PathLike[str] | None,
             caffemodel: str | os.PathLike[str] | None) -> Net:
    """Read a net from a prototxt, a caffemodel, or both (weights copied by layer name).

    Args:
        prototxt: text net definition (deploy or train/test file, or a solver embedding one).
        caffemodel: binary weights; alone it defines the net too.

    Returns:
        The TEST-phase ``Net``.

    Raises:
        ParseError: either file cannot be read (see ``read_prototxt`` / ``read_caffemodel``).
        ValueError: neither file given.

    Example:
        >>> net = load_net(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL)
        >>> net.layers[2].name, net.layers[2].type
        ('bn2a_branch1', 'BatchNorm')
    """
    if prototxt is None and caffemodel is None:
        raise ValueError("load_net needs a prototxt, a caffemodel, or both")
    model = read_caffemodel(caffemodel) if caffemodel is not None else None
    parsed = None
    if prototxt is not None:
        from .prototxt import parse_prototxt

        parsed = parse_prototxt(prototxt)
    return net_from_parts(parsed, model, str(prototxt) if prototxt is not None else None)


def net_from_parts(parsed: ParsedPrototxt | None, model: Caffemodel | None,
                   prototxt_path: str | None = None) -> Net:
    """Merge an already parsed prototxt and/or a scanned caffemodel."""
    if parsed is not None:
        definition = parsed.net
        messages: list[tuple[_LayerMessage, int | None]] = list(_test_phase(definition))
        v1_strings, layer_extras = parsed.v1_type_strings, parsed.layer_extras
        unknown, source = parsed.unknown, parsed.source
    else:
        assert model is not None
        definition = model.header
        messages = [(cast(_LayerMessage, layer.definition), None) for layer in model.layers]
        v1_strings, unknown, source = {}, (), "caffemodel"
        layer_extras = {}
    weights = model.by_name() if model is not None else {}
    decode = {} if parsed is not None or model is None else {
        x.name: x.decode_problem for x in model.layers if x.decode_problem}
    layers = []
    for index, (message, original_index) in enumerate(messages):
        name = message.name
        stored = weights.get(name)
        blobs = stored.blobs if stored is not None and stored.blobs else None
        layer_type = _type_of(message, original_index, v1_strings)
        extras = _extras(message, original_index, layer_extras)
        params, problem = _typed(layer_type, message, extras)
        layers.append(Layer(index, name, layer_type, tuple(message.bottom), tuple(message.top),
                            params, blobs, extras, decode.get(name) or problem))
    missing = tuple(layer.name for layer in layers if layer.blobs is None) if model else ()
    names = {layer.name for layer in layers}
    unused = tuple(n for n, layer in weights.items() if n not in names and layer.blobs)
    refused = None
    if parsed is not None and len(definition.layer) and len(definition.layers):
        refused = (f"the file mixes {len(definition.layer)} V2 'layer' and "
                   f"{len(definition.layers)} V1 'layers' entries, which Caffe refuses to "
                   "build; only the 'layer' entries were read (rewrite the V1 ones as 'layer')")
    header_problem = model.header_problem if parsed is None and model is not None else None
    return Net(definition.name, tuple(layers), _header_inputs(definition), prototxt_path,
               model.path if model else None, unknown, missing, unused, source, refused,
               header_problem)


def _typed(layer_type: str, message: _LayerMessage,
           extras: Mapping[str, Any]) -> tuple[Params, str | None]:
    """The layer's typed parameters, or ``UnreadableParams`` and the problem."""
    try:
        return read_params(layer_type, message, extras), None
    except LayerParamError as exc:
        return UnreadableParams(type=layer_type, problem=str(exc)), str(exc)


def _extras(message: _LayerMessage, original_index: int | None,
            layer_extras: Mapping[int, Mapping[str, list[Any]]]) -> dict[str, Any]:
    if original_index is None:  # a layer definition stored in a caffemodel
        return binary_fork_params(message)
    text = layer_extras.get(original_index)
    return flatten_extras(text) if text else {}


def _type_of(message: _LayerMessage, original_index: int | None,
             v1_strings: Mapping[int, str]) -> str:
    if isinstance(message, caffe_pb2.V1LayerParameter):
        if original_index is not None and original_index in v1_strings:
            return str(v1_strings[original_index])
        return v1_type_name(message.type)
    return str(message.type)


def _test_phase(net: caffe_pb2.NetParameter) -> list[tuple[_LayerMessage, int]]:
    """Layers Caffe instantiates in TEST phase, with their index in the file's list."""
    state = caffe_pb2.NetState(phase=caffe_pb2.TEST, level=0)
    if net.HasField("state"):
        state.level = net.state.level
        state.stage.extend(net.state.stage)
    entries: list[_LayerMessage] = list(net.layer) if len(net.layer) else list(net.layers)
    return [(m, i) for i, m in enumerate(entries) if _included(m, state)]


def _included(layer: _LayerMessage, state: caffe_pb2.NetState) -> bool:
    """Caffe's ``Net::StateMeetsRule`` logic for one layer."""
    include, exclude = list(layer.include), list(layer.exclude)
    if include:
        return any(_meets(rule, state) for rule in include)
    return not any(_meets(rule, state) for rule in exclude)


def _meets(rule: caffe_pb2.NetStateRule, state: caffe_pb2.NetState) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def _header_inputs(net: caffe_pb2.NetParameter) -> dict[str, tuple[int, ...]]:
    """Legacy ``input:`` with ``input_shape`` or four ``input_dim`` per input."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, name in enumerate(net.input):
        if i < len(net.input_shape):
            shapes[name] = tuple(int(d) for d in net.input_shape[i].dim)
        elif len(net.input_dim) >= 4 * (i + 1):
            shapes[name] = tuple(int(d) for d in net.input_dim[4 * i : 4 * i + 4])
    return shapes
