"""Protobuf text format at the token level: one regex per statement, the wording of syntax
errors, and the conversion of a scalar token to the value a schema field takes.

A statement is ``name: value``, ``name: "a" "b"``, ``name: [``, ``name {``, ``name: {``,
``name <``, a closing ``}``/``>``, or the end of the text, each with the whitespace and ``#``
comments before it and an optional ``;``/``,`` after it. Matching whole statements instead of
single tokens keeps the Python work per line of a prototxt to one regex match.
"""

from __future__ import annotations

import math
import re

from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = [
    "UNKNOWN_ENUM",
    "FieldSpec",
    "MessageSpec",
    "message_spec",
    "STATEMENT",
    "LIST_ITEM",
    "describe_syntax_error",
    "empty_list_end",
    "line_column",
    "line_columns",
    "parse_bool",
    "parse_float",
    "parse_int",
    "unquote",
]

_WS = r"\s*+(?:#[^\n]*+\s*+)*+"  # possessive: a separator never matches inside a comment
_STR = r"(?:\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')"
_NUM = r"[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)"
_SCALAR = rf"(?:{_NUM}|[-+]?[A-Za-z_]\w*)(?![\w.])"
_VALUE = rf"(?P<str>{_STR}(?:{_WS}{_STR})*)|(?P<scalar>{_SCALAR})"

#: Groups: name, str, scalar, list, copen (``name: {``), open (``name {``), close, eof.
STATEMENT = re.compile(
    rf"{_WS}(?:(?P<name>[A-Za-z_]\w*|\[[^\]\n]*\]){_WS}"
    rf"(?::{_WS}(?:{_VALUE}|(?P<list>\[)|(?P<copen>[{{<]))|(?P<open>[{{<]))"
    rf"|(?P<close>[}}>])|(?P<eof>\Z))(?:{_WS}[;,])?",
    re.ASCII,
)
#: One item of a ``[a, b]`` list and the ``,`` or ``]`` after it (groups: str, scalar, end).
LIST_ITEM = re.compile(rf"{_WS}(?:{_VALUE}){_WS}(?P<end>,|\](?:{_WS}[;,])?)", re.ASCII)
_EMPTY_LIST = re.compile(rf"{_WS}\](?:{_WS}[;,])?")
_ONE_STR = re.compile(_STR)
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|[xX]([0-9a-fA-F]{1,2})|(.))", re.S)
_SIMPLE_ESCAPES = {
    b"n": b"\n", b"t": b"\t", b"r": b"\r", b"a": b"\a", b"b": b"\b", b"f": b"\f",
    b"v": b"\v", b"\\": b"\\", b"'": b"'", b'"': b'"', b"?": b"?",
}
_TRUE = frozenset(("true", "True", "t", "1"))
_FALSE = frozenset(("false", "False", "f", "0"))
_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}


def empty_list_end(text: str, pos: int) -> int | None:
    """The end of ``]`` when the list opened just before ``pos`` is empty, else None."""
    m = _EMPTY_LIST.match(text, pos)
    return m.end() if m else None


def unquote(raw: str) -> bytes:
    """The bytes of one or more adjacent quoted literals, C escapes resolved.

    Raises:
        ValueError: an unknown escape such as ``\\d``.
    """
    if "\\" not in raw and raw.count(raw[0]) == 2:
        return raw[1:-1].encode("utf-8")
    return b"".join(
        _ESCAPE.sub(_unescape, lit[1:-1].encode("utf-8")) for lit in _ONE_STR.findall(raw)
    )


def _unescape(m: re.Match[bytes]) -> bytes:
    octal, hexa, char = m.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char]
    raise ValueError(f"unknown escape sequence \\{char.decode('utf-8', 'replace')}")


def parse_int(raw: str) -> int | None:
    """A decimal, hex (``0x1F``) or C octal (``017``) integer, or None if ``raw`` is not one."""
    body = raw.lstrip("+-")
    try:
        if body[:2] in ("0x", "0X"):
            value = int(body, 16)
        elif len(body) > 1 and body[0] == "0" and body.isdigit():
            value = int(body, 8)
        elif body.isdigit():
            value = int(body)
        else:
            return None
    except ValueError:
        return None
    return -value if raw[0] == "-" else value


def parse_float(raw: str) -> float | None:
    """A float as protobuf's text format writes it (``1e-5``, ``.5``, ``1.``, ``1.0f``,
    ``-inf``, ``nan``), or None."""
    word = raw.lstrip("+-").lower()
    if word in _FLOAT_WORDS:
        return -_FLOAT_WORDS[word] if raw[0] == "-" else _FLOAT_WORDS[word]
    if word.startswith("0x"):
        as_int = parse_int(raw)
        return None if as_int is None else float(as_int)
    try:
        return float(raw[:-1] if raw[-1] in "fF" else raw)
    except ValueError:
        return None


def parse_bool(raw: str) -> bool | None:
    """``true/false/True/False/t/f/1/0``, or None."""
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    return None


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def line_columns(text: str, offsets: list[int]) -> dict[int, tuple[int, int]]:
    """``line_column`` for many offsets in one pass over the text."""
    result: dict[int, tuple[int, int]] = {}
    line, previous = 1, 0
    for offset in sorted(set(offsets)):
        line += text.count("\n", previous, offset)
        result[offset] = line, offset - text.rfind("\n", 0, offset)
        previous = offset
    return result


_SKIP_WS = re.compile(_WS)
_NAME = re.compile(r"[A-Za-z_]\w*|\[[^\]\n]*\]")
_TOKEN = re.compile(r"[^\s{}<>\[\]:;,#]{1,30}|.")


def _found(text: str, pos: int) -> str:
    """How the token at ``pos`` reads in an error message."""
    if pos >= len(text):
        return "end of file"
    if text[pos] in "\"'" and _ONE_STR.match(text, pos) is None:
        return "an unterminated string (a quote closes on the same line)"
    string = _ONE_STR.match(text, pos)
    if string is not None:
        return f"the string {string.group()}"
    m = _TOKEN.match(text, pos)
    assert m is not None
    return f'"{m.group()}"'


def describe_syntax_error(text: str, pos: int) -> tuple[int, str]:
    """Where and why no statement starts at ``pos``: (offset of the fault, problem)."""
    start = _SKIP_WS.match(text, pos)
    pos = start.end() if start else pos
    name = _NAME.match(text, pos)
    if name is None:
        return pos, f'expected a field name or "}}", found {_found(text, pos)}'
    after = _SKIP_WS.match(text, name.end())
    nxt = after.end() if after else name.end()
    if not text.startswith(":", nxt):
        return nxt, (
            f'expected ":" or "{{" after field name "{name.group()}", found {_found(text, nxt)}'
        )
    value = _SKIP_WS.match(text, nxt + 1)
    at = value.end() if value else nxt + 1
    return at, f'expected a value after "{name.group()}:", found {_found(text, at)}'


# --- schema fields: what a value must look like ------------------------------------------

_FD = FieldDescriptor
_INT_RANGES = {
    _FD.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "an int32 integer"),
    _FD.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "an int64 integer"),
    _FD.CPPTYPE_UINT32: (0, 2**32 - 1, "a uint32 integer (0 or more)"),
    _FD.CPPTYPE_UINT64: (0, 2**64 - 1, "a uint64 integer (0 or more)"),
}
_WHAT = {
    _FD.CPPTYPE_FLOAT: "a number", _FD.CPPTYPE_DOUBLE: "a number",
    _FD.CPPTYPE_BOOL: "true or false", _FD.CPPTYPE_STRING: "a quoted string",
    _FD.CPPTYPE_MESSAGE: 'a "{ ... }" block',
}
UNKNOWN_ENUM = object()  #: ``FieldSpec.convert``'s answer for an enum value the schema lacks
_UNSET = object()


class FieldSpec:
    """One schema field, reduced to what the text parser needs.

    ``convert(spec, raw, quoted)`` turns a token into the field's Python value and raises
    ValueError (with a message naming the field and what it takes) for a wrong one.
    """

    __slots__ = ("name", "label", "repeated", "enum", "what", "low", "high", "convert",
                 "_message", "_descriptor")

    def __init__(self, descriptor: FieldDescriptor, owner: str) -> None:
        cpp = descriptor.cpp_type
        self.name, self.repeated = descriptor.name, descriptor.is_repeated
        self.label = f'field "{descriptor.name}" of {owner}'
        self.enum: dict[str, int] = {}
        if descriptor.enum_type is not None:
            self.enum = {v.name: v.number for v in descriptor.enum_type.values}
        self.low, self.high, self.what = _INT_RANGES.get(cpp, (0, 0, _WHAT.get(cpp, "")))
        if self.enum:
            self.what = "one of " + ", ".join(self.enum)
        self.convert = _CONVERTERS.get(cpp, _to_enum)
        if descriptor.type == _FD.TYPE_BYTES:
            self.convert = _to_bytes
        self._descriptor, self._message = descriptor.message_type, _UNSET

    @property
    def message(self) -> MessageSpec | None:
        """The sub-message's spec, or None for a scalar field."""
        if self._message is _UNSET:
            found = self._descriptor
            self._message = None if found is None else message_spec(found)
        return self._message  # type: ignore[return-value]


class MessageSpec:
    """A schema message: its name and fields by name."""

    __slots__ = ("name", "fields")

    def __init__(self, descriptor: Descriptor) -> None:
        self.name = descriptor.name
        self.fields = {f.name: FieldSpec(f, descriptor.name) for f in descriptor.fields}


_SPECS: dict[str, MessageSpec] = {}


def message_spec(descriptor: Descriptor) -> MessageSpec:
    """The (cached) spec of a message descriptor."""
    spec = _SPECS.get(descriptor.full_name)
    if spec is None:
        spec = _SPECS[descriptor.full_name] = MessageSpec(descriptor)
    return spec


def _wrong(spec: FieldSpec, raw: str, quoted: bool) -> ValueError:
    found = f"the string {raw}" if quoted else raw
    return ValueError(f"{spec.label} takes {spec.what}, found {found}")


def _to_string(spec: FieldSpec, raw: str, quoted: bool) -> str:
    if not quoted:
        raise _wrong(spec, raw, quoted)
    if "\\" not in raw and raw.count(raw[0]) == 2:
        return raw[1:-1]
    return unquote(raw).decode("utf-8")


def _to_bytes(spec: FieldSpec, raw: str, quoted: bool) -> bytes:
    if not quoted:
        raise _wrong(spec, raw, quoted)
    return unquote(raw)


def _to_float(spec: FieldSpec, raw: str, quoted: bool) -> float:
    if not quoted:
        try:
            return float(raw)
        except ValueError:
            value = parse_float(raw)
        if value is not None:
            return value
    raise _wrong(spec, raw, quoted)


def _to_int(spec: FieldSpec, raw: str, quoted: bool) -> int:
    if not quoted:
        try:
            value: int | None = int(raw, 0)  # "010" fails here and is octal, as in C++ protobuf
        except ValueError:
            value = parse_int(raw)
        if value is not None:
            if spec.low <= value <= spec.high:
                return value
            raise ValueError(f"{spec.label} takes {spec.what}; {raw} is out of range")
    raise _wrong(spec, raw, quoted)


def _to_bool(spec: FieldSpec, raw: str, quoted: bool) -> bool:
    value = None if quoted else parse_bool(raw)
    if value is None:
        raise _wrong(spec, raw, quoted)
    return value


def _to_enum(spec: FieldSpec, raw: str, quoted: bool) -> object:
    number = spec.enum.get(raw)
    if number is not None and not quoted:
        return number
    as_int = None if quoted else parse_int(raw)
    if as_int is not None and as_int in spec.enum.values():
        return as_int
    if quoted or (as_int is None and not (raw[0].isalpha() or raw[0] == "_")):
        raise _wrong(spec, raw, quoted)
    return UNKNOWN_ENUM


def _to_block(spec: FieldSpec, raw: str, quoted: bool) -> object:
    raise ValueError(f'{spec.label} is a message: write "{spec.name} {{ ... }}", not a value')


_CONVERTERS = {
    _FD.CPPTYPE_STRING: _to_string, _FD.CPPTYPE_FLOAT: _to_float, _FD.CPPTYPE_DOUBLE: _to_float,
    _FD.CPPTYPE_INT32: _to_int, _FD.CPPTYPE_INT64: _to_int, _FD.CPPTYPE_UINT32: _to_int,
    _FD.CPPTYPE_UINT64: _to_int, _FD.CPPTYPE_BOOL: _to_bool, _FD.CPPTYPE_MESSAGE: _to_block,
}
