"""A tolerant reader of text prototxt files (nets, and solvers that embed a net).

Protobuf's own ``text_format`` stops at the first field Caffe's schema does not know, and real
files are full of them (``bn_param``, ``permute_param``, ``ceil_mode``, ...). This reader walks
``caffe_pb2``'s descriptors instead: fields and enum values the schema does not know are
skipped and reported as ``UnknownField``; everything else is checked as strictly as Caffe
checks it, and syntax errors carry file, line and column.

V1 ``layers`` whose ``type`` is written as a string (``type: "Softmax"``) are mapped to the
V1 enum by its name (``"SOFTMAX"``) or by the layer name Caffe upgrades it to
(``"Softmax"``). A type with no V1 enum value (``"BatchNorm"``) is reported as an unknown enum
value and kept verbatim in ``ParsedPrototxt.v1_type_strings`` under the layer's index in
``net.layers``, so the net builder can still use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.descriptor import Descriptor

from .._proto import caffe_pb2
from ..errors import ParseError
from .sniff import HEAD_SIZE, refuse_foreign
from .text_parser import LAYER_FIELDS, Frame, TextParser

__all__ = ["ParsedPrototxt", "UnknownField", "parse_prototxt", "parse_prototxt_text"]

_SOLVER_NETS = ("net_param", "train_net_param", "test_net_param")
_LAYER_FIELDS = LAYER_FIELDS
# C0 control characters other than \t \n \v \f \r: never in a text file.
_CONTROL_BYTE = re.compile(b"[\x00-\x08\x0e-\x1f]")
_CONTROL_CHAR = re.compile("[\x00-\x08\x0e-\x1f]")


@dataclass(frozen=True)
class UnknownField:
    """Something the schema does not know, skipped (a field, or a value of an enum field).

    Attributes:
        path: where it is, e.g. ``layer["conv1_bn"].bn_param`` or ``net.some_field``
            (``solver.x`` for a solver's own fields).
        layer: the enclosing layer's name, if inside a named layer.
        line, column: 1-based position of the field name (of the value for an enum value).
        kind: ``"field"`` or ``"enum value"``.
        message: the schema message that lacks it, e.g. ``LayerParameter``.
        field: the field name as written.
        value: the enum value as written (kind ``"enum value"`` only).
    """

    path: str
    layer: str | None
    line: int
    column: int
    kind: str
    message: str = ""
    field: str = ""
    value: str | None = None


@dataclass(frozen=True)
class ParsedPrototxt:
    """A net read from a text prototxt.

    Attributes:
        net: the net (for a solver file, the net it embeds).
        unknown: what was skipped, in file order.
        source: ``"net"``, or ``"solver net_param"`` / ``"solver train_net_param"`` /
            ``"solver test_net_param[0]"`` for a net embedded in a solver.
        v1_type_strings: V1 ``layers`` whose type has no V1 enum value, by index in
            ``net.layers``: the type as written (e.g. ``{3: "BatchNorm"}``).
        layer_extras: the values of skipped fields, per layer (index in ``net.layer``, or in
            ``net.layers`` for a V1 net): field name -> list of raw strings or nested dicts,
            e.g. ``{"bn_param": [{"bn_mode": ["INFERENCE"]}]}``.
    """

    net: caffe_pb2.NetParameter
    unknown: tuple[UnknownField, ...]
    source: str
    v1_type_strings: Mapping[int, str] = field(default_factory=dict)
    layer_extras: Mapping[int, Mapping[str, list[Any]]] = field(default_factory=dict)


def parse_prototxt(path: str | os.PathLike[str]) -> ParsedPrototxt:
    """Read a text prototxt: a net, or a solver that embeds one.

    Args:
        path: the ``.prototxt`` file.

    Returns:
        The net, the fields that were skipped, and where the net came from.

    Raises:
        ParseError: the file is missing, unreadable or binary (e.g. a caffemodel).
        PrototxtSyntaxError: the text is not valid protobuf text format for Caffe's schema.

    Example:
        >>> parsed = parse_prototxt(EXAMPLE_PROTOTXT)
        >>> [layer.type for layer in parsed.net.layer][:2]
        ['Input', 'Convolution']
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ParseError(f"{name}: no such file") from None
    except OSError as exc:
        raise ParseError(f"{name}: cannot read ({exc.strerror})") from None
    refuse_foreign(name, data[:HEAD_SIZE], "a text prototxt")
    return parse_prototxt_text(_decode_text(data, name), name)


def parse_prototxt_text(text: str, path: str = "<string>") -> ParsedPrototxt:
    """Parse prototxt text (see ``parse_prototxt``); ``path`` only names it in errors.

    Example:
        >>> parse_prototxt_text('layer { name: "bn" type: "BatchNorm" }').net.layer[0].type
        'BatchNorm'
    """
    _decode_text(text, path)
    parser = TextParser(text, path,
                        cast(Descriptor, caffe_pb2.NetParameter.DESCRIPTOR))
    parser.run()
    if _looks_like_solver(parser):
        parser = TextParser(text, path,
                            cast(Descriptor, caffe_pb2.SolverParameter.DESCRIPTOR))
        parser.run()
        return _solver_net(parser)
    return _result(parser, parser.root_values, "net")


def _looks_like_solver(parser: TextParser) -> bool:
    """No layers at the top, but fields only a SolverParameter has (net_param, base_lr...)."""
    values = parser.root_values
    if any(name in values for name in _LAYER_FIELDS):
        return False
    solver_fields = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    return any(len(u.chain) == 1 and u.field in solver_fields for u in parser.unknown)


def _solver_net(parser: TextParser) -> ParsedPrototxt:
    values = parser.root_values
    for name in _SOLVER_NETS:
        if name in values:
            net = values[name]
            if isinstance(net, list):
                return _result(parser, net[0], f"solver {name}[0]")
            return _result(parser, net, f"solver {name}")
    for name in ("net", "train_net"):
        if name in values:
            raise ParseError(
                f'{parser.path}: a solver whose net is in another file ({name}: "{values[name]}");'
                " pass that prototxt instead"
            )
    raise ParseError(f"{parser.path}: a solver file without a net (no net_param or net)")


def _result(parser: TextParser, net_values: dict[str, Any], source: str) -> ParsedPrototxt:
    """Build the NetParameter and describe what was skipped, relative to that net."""
    offsets = parser.positions()
    unknown = []
    for entry in parser.unknown:
        path, layer = _render_path(entry.chain, entry.field, net_values)
        line, column = offsets[entry.offset]
        unknown.append(
            UnknownField(path, layer, line, column, entry.kind, entry.message, entry.field,
                         entry.value)
        )
    entries = net_values.get("layer") or net_values.get("layers") or []
    extras = {i: parser.layer_extras[id(entry)] for i, entry in enumerate(entries)
              if id(entry) in parser.layer_extras}
    return ParsedPrototxt(
        net=caffe_pb2.NetParameter(**net_values),
        unknown=tuple(unknown),
        source=source,
        v1_type_strings=dict(parser.v1_type_strings.get(id(net_values), {})),
        layer_extras=extras,
    )


def _render_path(chain: tuple[Frame, ...], name: str, net: dict) -> tuple[str, str | None]:
    """``layer["x"].bn_param`` / ``net.field`` / ``solver.field``, and the layer's name."""
    base = next((i for i, frame in enumerate(chain) if frame.values is net), 0)
    prefix = "net" if chain[base].values is net else "solver"
    parts, layer = [], None
    for i in range(base + 1, len(chain)):
        frame = chain[i]
        if frame.name in _LAYER_FIELDS and chain[i - 1].message_name == "NetParameter":
            layer = frame.values.get("name")
            label = f'"{layer}"' if layer is not None else frame.index
            parts.append(f"{frame.name}[{label}]")
        elif frame.index is not None:
            parts.append(f"{frame.name}[{frame.index}]")
        else:
            parts.append(frame.name)
    path = ".".join([*parts, name])
    in_layer = prefix == "net" and parts[:1] != [] and chain[base + 1].name in _LAYER_FIELDS
    return (path if in_layer else f"{prefix}.{path}"), layer


def _decode_text(data: bytes | str, path: str) -> str:
    """The text of a prototxt; ParseError at the first NUL or control byte, or bad UTF-8."""
    if isinstance(data, str):
        control = _CONTROL_CHAR.search(data)
        if control is None:
            return data
        at = len(data[: control.start()].encode("utf-8"))
    else:
        control_byte = _CONTROL_BYTE.search(data)
        at = control_byte.start() if control_byte else len(data)
        try:
            text = data[:at].decode("utf-8")
        except UnicodeDecodeError as exc:
            at = exc.start
        else:
            if control_byte is None:
                return text.removeprefix("\ufeff")
    raise ParseError(
        f"{path}: not a text prototxt (binary data at byte {at}); "
        "did you pass a .caffemodel where a .prototxt was expected?"
    )


