"""The statement-level text-format parser behind ``prototxt``: statements in, nested dicts
shaped like the schema out (one protobuf constructor call at the end), unknown fields skipped.

Values of skipped fields are not thrown away: each block keeps them in ``extras`` (field name ->
list of raw strings or nested dicts), so fork parameters such as SegNet's
``bn_param { bn_mode: INFERENCE }`` or NVIDIA's ``batch_norm_param { scale_bias: true }`` stay
readable. A known sub-block's extras are nested under its name in its parent's extras.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.descriptor import Descriptor

from ..errors import PrototxtSyntaxError
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
from .v1_types import V1_TO_V2_TYPE

__all__ = ["TextParser", "Frame", "Skipped", "SKIPPING", "LAYER_FIELDS"]

LAYER_FIELDS = ("layer", "layers")

_CLOSERS = {"{": "}", "<": ">"}
SKIPPING: FieldSpec = object()  # type: ignore[assignment]  # inside a skipped block
#: Caffe's UpgradeV1LayerType names, so ``type: "InnerProduct"`` finds INNER_PRODUCT.
_V1_BY_LAYER_NAME = {v2: v1 for v1, v2 in V1_TO_V2_TYPE.items() if v2}


class Frame:
    """An open ``{ ... }`` block: its message (None while skipping an unknown one)."""

    __slots__ = ("spec", "values", "name", "index", "offset", "closer", "v1_type", "extras")

    def __init__(self, spec: MessageSpec | None, values: dict, name: str, index: int | None,
                 offset: int, closer: str) -> None:
        self.spec, self.values, self.name, self.index = spec, values, name, index
        self.offset, self.closer = offset, closer
        self.v1_type: str | None = None
        self.extras: dict[str, list[Any]] = {}

    @property
    def message_name(self) -> str:
        return self.spec.name if self.spec is not None else ""


@dataclass(frozen=True)
class Skipped:
    chain: tuple[Frame, ...]
    field: str
    offset: int
    kind: str
    message: str
    value: str | None


class TextParser:
    """Parses text format into nested dicts shaped like ``root`` (checked against its schema)."""

    def __init__(self, text: str, path: str, root: Descriptor) -> None:
        self.text, self.path = text, path
        self.root_values: dict = {}
        self.stack = [Frame(message_spec(root), self.root_values, "", None, 0, "")]
        self.unknown: list[Skipped] = []
        self.v1_type_strings: dict[int, dict[int, str]] = {}
        #: extras of every layer block, by id() of the block's values dict
        self.layer_extras: dict[int, dict[str, list[Any]]] = {}

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
            spec = frame.spec.fields.get(name) if frame.spec is not None else SKIPPING
            if spec is None:
                self._skip(name, m.start(1))
            if listed is not None:
                pos = self._list(name, spec, m.start(1), pos)
            elif string is not None:
                if spec is not SKIPPING and spec is not None:
                    self._add(frame, spec, string, True, m.start(2))
                else:
                    frame.extras.setdefault(name, []).append(_unquoted(string))
            elif scalar is not None:
                if spec is not SKIPPING and spec is not None:
                    self._add(frame, spec, scalar, False, m.start(3))
                else:
                    frame.extras.setdefault(name, []).append(scalar)
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
        self.unknown.append(Skipped(tuple(self.stack), name, offset, kind, owner, value))

    def _add(self, frame: Frame, spec: FieldSpec, raw: str, quoted: bool, offset: int) -> None:
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

    def _open(self, frame: Frame, name: str, spec: FieldSpec | None, opener: str,
              offset: int) -> None:
        values: dict = {}
        index = sub = None
        if spec is None or spec is SKIPPING:
            frame.extras.setdefault(name, []).append(values)
        else:
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
        child = Frame(sub, values, name, index, offset, _CLOSERS[opener])
        if sub is None:
            child.extras = values  # a skipped block: everything in it is extra
        self.stack.append(child)

    def _close(self, closer: str, offset: int) -> None:
        if len(self.stack) == 1:
            raise self._error(offset, f'unexpected "{closer}": no block is open here')
        frame = self.stack.pop()
        if closer != frame.closer:
            raise self._error(offset, self._unclosed(frame, f'"{closer}"'))
        if frame.spec is not None and frame.extras:
            if frame.name in LAYER_FIELDS:
                self.layer_extras[id(frame.values)] = frame.extras
            else:
                self.stack[-1].extras.setdefault(frame.name, []).append(frame.extras)
        if frame.v1_type is not None and frame.index is not None:
            net = self.stack[-1].values
            self.v1_type_strings.setdefault(id(net), {})[frame.index] = frame.v1_type

    def _finish(self) -> None:
        if len(self.stack) > 1:
            raise self._error(len(self.text), self._unclosed(self.stack[-1], "end of file"))

    def _unclosed(self, frame: Frame, found: str) -> str:
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
        if spec is None or spec is SKIPPING:
            self.stack[-1].extras.setdefault(name, []).extend(
                _unquoted(raw) if quoted else raw for raw, quoted, _ in items)
            return end
        if spec.message is not None or not spec.repeated:
            raise self._error(offset, f"{spec.label} takes {spec.what}, not a list")
        for raw, quoted, at in items:
            self._add(self.stack[-1], spec, raw, quoted, at)
        return end


def _v1_type(spec: FieldSpec, raw: str, quoted: bool, frame: Frame) -> object:
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


def _unquoted(raw: str) -> str:
    """A quoted string token's text (C escapes resolved), for extras."""
    return unquote(raw).decode("utf-8", "replace")
