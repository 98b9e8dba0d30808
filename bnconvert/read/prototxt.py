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
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf.descriptor import Descriptor

from .._proto import caffe_pb2
from ..errors import ParseError, PrototxtSyntaxError
from .text_tokens import (
    LIST_ITEM,
    STATEMENT,
    UNKNOWN_ENUM,
    FieldSpec,
    MessageSpec,
    describe_syntax_error,
    empty_list_end,
    line_column,
    line_columns,
    message_spec,
    unquote,
)

__all__ = ["ParsedPrototxt", "UnknownField", "parse_prototxt", "parse_prototxt_text"]

_SOLVER_NETS = ("net_param", "train_net_param", "test_net_param")
_LAYER_FIELDS = ("layer", "layers")


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
    """

    net: caffe_pb2.NetParameter
    unknown: tuple[UnknownField, ...]
    source: str
    v1_type_strings: Mapping[int, str] = field(default_factory=dict)


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
        >>> parsed = parse_prototxt("deploy.prototxt")  # doctest: +SKIP
        >>> [layer.type for layer in parsed.net.layer][:2]  # doctest: +SKIP
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
    return parse_prototxt_text(_decode_text(data, name), name)


def parse_prototxt_text(text: str, path: str = "<string>") -> ParsedPrototxt:
    """Parse prototxt text (see ``parse_prototxt``); ``path`` only names it in errors.

    Example:
        >>> parse_prototxt_text('layer { name: "bn" type: "BatchNorm" }').net.layer[0].type
        'BatchNorm'
    """
    _decode_text(text, path)
    parser = _TextParser(text, path, caffe_pb2.NetParameter.DESCRIPTOR)
    parser.run()
    if _looks_like_solver(parser):
        parser = _TextParser(text, path, caffe_pb2.SolverParameter.DESCRIPTOR)
        parser.run()
        return _solver_net(parser)
    return _result(parser, parser.root_values, "net")


def _looks_like_solver(parser: _TextParser) -> bool:
    """No layers at the top, but fields only a SolverParameter has (net_param, base_lr...)."""
    values = parser.root_values
    if any(name in values for name in _LAYER_FIELDS):
        return False
    solver_fields = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    return any(len(u.chain) == 1 and u.field in solver_fields for u in parser.unknown)


def _solver_net(parser: _TextParser) -> ParsedPrototxt:
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


def _result(parser: _TextParser, net_values: dict[str, Any], source: str) -> ParsedPrototxt:
    """Build the NetParameter and describe what was skipped, relative to that net."""
    offsets = parser.positions()
    unknown = []
    for entry in parser.unknown:
        path, layer = _render_path(entry.chain, entry.field, net_values)
        line, column = offsets[entry.offset]
        unknown.append(
            UnknownField(path, layer, line, column, entry.kind, entry.message, entry.field,
                         entry.value)
        )  # fmt: skip
    return ParsedPrototxt(
        net=caffe_pb2.NetParameter(**net_values),
        unknown=tuple(unknown),
        source=source,
        v1_type_strings=dict(parser.v1_type_strings.get(id(net_values), {})),
    )


def _render_path(chain: tuple[_Frame, ...], name: str, net: dict) -> tuple[str, str | None]:
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


# --- the parser: statements in, nested dicts out (one protobuf constructor call at the end) ---

_CLOSERS = {"{": "}", "<": ">"}
# C0 control characters other than \t \n \v \f \r: never in a text file.
_CONTROL_BYTE = re.compile(b"[\x00-\x08\x0e-\x1f]")
_CONTROL_CHAR = re.compile("[\x00-\x08\x0e-\x1f]")
_SKIPPING: FieldSpec = object()  # type: ignore[assignment]  # inside a skipped block
#: Caffe's UpgradeV1LayerType names, so ``type: "InnerProduct"`` finds INNER_PRODUCT.
_V1_BY_LAYER_NAME = {
    "AbsVal": "ABSVAL", "Accuracy": "ACCURACY", "ArgMax": "ARGMAX", "BNLL": "BNLL",
    "Concat": "CONCAT", "ContrastiveLoss": "CONTRASTIVE_LOSS", "Convolution": "CONVOLUTION",
    "Deconvolution": "DECONVOLUTION", "Data": "DATA", "Dropout": "DROPOUT",
    "DummyData": "DUMMY_DATA", "EuclideanLoss": "EUCLIDEAN_LOSS", "Eltwise": "ELTWISE",
    "Exp": "EXP", "Flatten": "FLATTEN", "HDF5Data": "HDF5_DATA", "HDF5Output": "HDF5_OUTPUT",
    "HingeLoss": "HINGE_LOSS", "Im2col": "IM2COL", "ImageData": "IMAGE_DATA",
    "InfogainLoss": "INFOGAIN_LOSS", "InnerProduct": "INNER_PRODUCT", "LRN": "LRN",
    "MemoryData": "MEMORY_DATA", "MultinomialLogisticLoss": "MULTINOMIAL_LOGISTIC_LOSS",
    "MVN": "MVN", "Pooling": "POOLING", "Power": "POWER", "ReLU": "RELU",
    "Sigmoid": "SIGMOID", "SigmoidCrossEntropyLoss": "SIGMOID_CROSS_ENTROPY_LOSS",
    "Silence": "SILENCE", "Softmax": "SOFTMAX", "SoftmaxWithLoss": "SOFTMAX_LOSS",
    "Split": "SPLIT", "Slice": "SLICE", "TanH": "TANH", "WindowData": "WINDOW_DATA",
    "Threshold": "THRESHOLD",
}  # fmt: skip


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


class _Frame:
    """An open ``{ ... }`` block: its message (None while skipping an unknown one)."""

    __slots__ = ("spec", "values", "name", "index", "offset", "closer", "v1_type")

    def __init__(self, spec: MessageSpec | None, values: dict, name: str, index: int | None,
                 offset: int, closer: str) -> None:  # fmt: skip
        self.spec, self.values, self.name, self.index = spec, values, name, index
        self.offset, self.closer = offset, closer
        self.v1_type: str | None = None

    @property
    def message_name(self) -> str:
        return self.spec.name if self.spec is not None else ""


@dataclass(frozen=True)
class _Skipped:
    chain: tuple[_Frame, ...]
    field: str
    offset: int
    kind: str
    message: str
    value: str | None


class _TextParser:
    """Parses text format into nested dicts shaped like ``root`` (checked against its schema)."""

    def __init__(self, text: str, path: str, root: Descriptor) -> None:
        self.text, self.path = text, path
        self.root_values: dict = {}
        self.stack = [_Frame(message_spec(root), self.root_values, "", None, 0, "")]
        self.unknown: list[_Skipped] = []
        self.v1_type_strings: dict[int, dict[int, str]] = {}

    def run(self) -> None:
        """Parse the whole text (raises PrototxtSyntaxError)."""
        text, match, stack, pos = self.text, STATEMENT.match, self.stack, 0
        while True:
            m = match(text, pos)
            if m is None:
                raise self._error(*describe_syntax_error(text, pos))
            name, string, scalar, listed, colon_open, opened, close, _ = m.groups()
            pos = m.end()
            if name is None:
                if close is None:
                    return self._finish()
                self._close(close, m.start(7))
                continue
            frame = stack[-1]
            spec = frame.spec.fields.get(name) if frame.spec is not None else _SKIPPING
            if spec is None:
                self._skip(name, m.start(1))
            if listed is not None:
                pos = self._list(name, spec, m.start(1), pos)
            elif string is not None:
                if spec is not _SKIPPING and spec is not None:
                    self._add(frame, spec, string, True, m.start(2))
            elif scalar is not None:
                if spec is not _SKIPPING and spec is not None:
                    self._add(frame, spec, scalar, False, m.start(3))
            else:
                self._open(frame, name, spec, colon_open or opened, m.start(1))

    def positions(self) -> dict[int, tuple[int, int]]:
        """Line and column of every skipped field."""
        return line_columns(self.text, [u.offset for u in self.unknown])

    def _error(self, offset: int, problem: str) -> PrototxtSyntaxError:
        line, column = line_column(self.text, offset)
        return PrototxtSyntaxError(self.path, line, column, problem)

    def _skip(self, name: str, offset: int, kind: str = "field", value: str | None = None) -> None:
        owner = self.stack[-1].message_name
        self.unknown.append(_Skipped(tuple(self.stack), name, offset, kind, owner, value))

    def _add(self, frame: _Frame, spec: FieldSpec, raw: str, quoted: bool, offset: int) -> None:
        """Convert one value and store it (unknown enum values are recorded and skipped)."""
        try:
            if spec.name == "type" and frame.message_name == "V1LayerParameter":
                value = _v1_type(spec, raw, quoted, frame)
            else:
                value = spec.convert(spec, raw, quoted)
        except ValueError as exc:
            raise self._error(offset, str(exc)) from None
        if value is UNKNOWN_ENUM:
            self._skip(spec.name, offset, "enum value", frame.v1_type if quoted else raw)
        elif not spec.repeated:
            if spec.name in frame.values:
                raise self._error(offset, f"non-repeated {spec.label} is specified twice")
            frame.values[spec.name] = value
        elif spec.name in frame.values:
            frame.values[spec.name].append(value)
        else:
            frame.values[spec.name] = [value]

    def _open(self, frame: _Frame, name: str, spec: FieldSpec | None, opener: str,
              offset: int) -> None:  # fmt: skip
        values: dict = {}
        index = sub = None
        if spec is not None and spec is not _SKIPPING:
            sub = spec.message
            if sub is None:
                raise self._error(offset, f'{spec.label} takes {spec.what}, not a "{{ }}" block')
            if spec.repeated:
                siblings = frame.values.setdefault(name, [])
                index = len(siblings)
                siblings.append(values)
            elif name in frame.values:
                raise self._error(offset, f"non-repeated {spec.label} is specified twice")
            else:
                frame.values[name] = values
        self.stack.append(_Frame(sub, values, name, index, offset, _CLOSERS[opener]))

    def _close(self, closer: str, offset: int) -> None:
        if len(self.stack) == 1:
            raise self._error(offset, f'unexpected "{closer}": no block is open here')
        frame = self.stack.pop()
        if closer != frame.closer:
            raise self._error(offset, self._unclosed(frame, f'"{closer}"'))
        if frame.v1_type is not None and frame.index is not None:
            net = self.stack[-1].values
            self.v1_type_strings.setdefault(id(net), {})[frame.index] = frame.v1_type

    def _finish(self) -> None:
        if len(self.stack) > 1:
            raise self._error(len(self.text), self._unclosed(self.stack[-1], "end of file"))

    def _unclosed(self, frame: _Frame, found: str) -> str:
        line = line_column(self.text, frame.offset)[0]
        return f'expected "{frame.closer}" to close {frame.name} opened at line {line}, ' + (
            f"found {found}"
        )

    def _list(self, name: str, spec: FieldSpec | None, offset: int, pos: int) -> int:
        """Parse ``[a, b, ...]`` after ``name:``; returns where the list ends."""
        end = empty_list_end(self.text, pos)
        items = []
        while end is None:
            m = LIST_ITEM.match(self.text, pos)
            if m is None:
                at, _ = describe_syntax_error(self.text, pos)
                raise self._error(at, f'expected a value, "," or "]" in the list of "{name}"')
            quoted = m.group(1) is not None
            items.append((m.group(1 if quoted else 2), quoted, m.start(1 if quoted else 2)))
            pos = m.end()
            end = None if m.group("end") == "," else pos
        if spec is None and items:  # protobuf counts a list as one field per item
            first = self.unknown.pop()
            self.unknown.extend(replace(first, offset=at) for _, _, at in items)
        elif spec is not None and spec is not _SKIPPING:
            if spec.message is not None or not spec.repeated:
                raise self._error(offset, f"{spec.label} takes {spec.what}, not a list")
            for raw, quoted, at in items:
                self._add(self.stack[-1], spec, raw, quoted, at)
        return end


def _v1_type(spec: FieldSpec, raw: str, quoted: bool, frame: _Frame) -> object:
    """A V1 type by enum name or number, or (quoted) by Caffe's layer name; a type with no
    enum value is kept verbatim on the frame."""
    if not quoted:
        value = spec.convert(spec, raw, quoted)
        if value is not UNKNOWN_ENUM:
            return value
        written = raw
    else:
        written = unquote(raw).decode("utf-8")
        number = spec.enum.get(_V1_BY_LAYER_NAME.get(written, written))
        if number is not None:
            return number
    frame.v1_type = written
    return UNKNOWN_ENUM
