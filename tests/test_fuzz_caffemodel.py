"""Fuzz the binary caffemodel reader (issue #5).

Every input must end in a valid model (then every blob's values are read, the net is built, its
BatchNorms inspected and folded) or in ``ParseError`` carrying a byte offset inside the file:
never another exception, a hang, or memory out of proportion to the input.

Inputs, from the small real caffemodels in ``tests/data/caffe``:

- every truncation of every file (exhaustive, deterministic);
- overlong varints of 1..15 bytes for every top-level tag and length (<= 10 bytes must read the
  same as the original, more must fail with "varint longer than 10 bytes");
- hypothesis: bit flips, lengths pointing past the end of their parent (grown, or the parent
  shrunk), wrong wire types at every depth, random bytes (bare, inside a layer, inside a blob),
  and spliced chunks.

``BNCONVERT_FUZZ_EXAMPLES`` sets the examples per hypothesis test (default 150, derandomized so
CI is repeatable). A long random run::

    BNCONVERT_FUZZ_EXAMPLES=20000 BNCONVERT_FUZZ_RANDOM=1 python -m pytest \\
        tests/test_fuzz_caffemodel.py -q -s

The number of inputs tried is printed by the last test (run with ``-s`` to see it).
"""

from __future__ import annotations

import os
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bnconvert.api import fold_net
from bnconvert.errors import BnConvertError, CaffemodelFormatError, ParseError
from bnconvert.inspect import inspect_net
from bnconvert.read.caffemodel import read_caffemodel, scan_caffemodel
from bnconvert.read.net import net_from_parts
from bnconvert.read.wire import LENGTH, WireFormatError, iter_fields, read_varint

from conftest import CAFFE

FILES = {p.parent.name: p.read_bytes() for p in sorted(CAFFE.glob("*/model.caffemodel"))}
EXAMPLES = int(os.environ.get("BNCONVERT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, database=None,
                derandomize=not os.environ.get("BNCONVERT_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# Memory the reader may use for an input of n bytes: Python objects per field (a field is at
# least 2 bytes), nothing proportional to lengths the bytes merely claim.
MEMORY_BASE, MEMORY_PER_BYTE = 256 * 1024, 200

TRIED: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


def read_all(raw: bytes, kind: str) -> str:
    """Read ``raw`` as a caffemodel and use everything; return "ok" or the error class name."""
    TRIED[kind] += 1
    name = "fuzz.caffemodel"
    try:
        model = scan_caffemodel(raw, name)
    except CaffemodelFormatError as exc:
        assert 0 <= exc.offset <= len(raw), (exc.offset, len(raw))
        assert str(exc).startswith(f"{name}: byte {exc.offset}: "), str(exc)
        OUTCOMES["CaffemodelFormatError"] += 1
        return "CaffemodelFormatError"
    for layer in model.layers:
        assert isinstance(layer.name, str) and isinstance(layer.type, str | int)
        for blob in layer.blobs:
            values = blob.values()
            assert values.dtype == np.float32 and values.size == blob.count
            assert not blob.spans or blob.shape_count == blob.count
            if blob.spans:
                assert np.array_equal(np.float32(blob.first()), values[0], equal_nan=True)
    net = net_from_parts(None, model)
    try:
        inspect_net(net)
        fold_net(net)
    except ParseError as exc:  # pragma: no cover - reading is done: a parse error here is a bug
        raise AssertionError(f"ParseError after a successful read: {exc}") from exc
    except BnConvertError as exc:  # a readable file whose content cannot be folded
        OUTCOMES[f"valid, fold: {type(exc).__name__}"] += 1
        return "ok"
    OUTCOMES["valid, folded"] += 1
    return "ok"


def read_all_bounded(raw: bytes, kind: str) -> str:
    """``read_all`` under tracemalloc: peak Python memory must stay proportional to the input."""
    tracemalloc.start()
    try:
        outcome = read_all(raw, kind)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_BASE + MEMORY_PER_BYTE * len(raw), (peak, len(raw))
    return outcome


@dataclass(frozen=True)
class Field:
    """One field found by walking a message tree (LENGTH payloads that parse are descended)."""

    tag_pos: int
    value_pos: int  # the length varint (LENGTH) or the value
    payload: tuple[int, int]  # span of a LENGTH payload; (b, b) otherwise
    wire: int
    parent: tuple[int, int]  # span of the enclosing message


def walk(raw: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Field]:
    """Every field of ``raw`` down to depth 6, treating LENGTH payloads as messages if they are."""
    end = len(raw) if end is None else end
    found: list[Field] = []
    cursor = start
    try:
        fields = list(iter_fields(raw, start, end))
    except WireFormatError:
        return []
    for _number, wire, a, b in fields:
        _, value_pos = read_varint(raw, cursor, end)
        payload = (a, b) if wire == LENGTH else (b, b)
        found.append(Field(cursor, value_pos, payload, wire, (start, end)))
        if wire == LENGTH and depth < 6 and b > a:
            found.extend(walk(raw, a, b, depth + 1))
        cursor = b
    return found


FIELDS = {name: walk(raw) for name, raw in FILES.items()}


def encode_varint(value: int, width: int) -> bytes | None:
    """``value`` as a varint of exactly ``width`` bytes (overlong if needed), None if too big."""
    if value >= 1 << (7 * width):
        return None
    out = bytearray()
    for _ in range(width - 1):
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def replace_varint(raw: bytes, pos: int, value: int, width: int | None = None) -> bytes | None:
    """``raw`` with the varint at ``pos`` replaced by ``value`` (same width unless given)."""
    _, after = read_varint(raw, pos, len(raw))
    encoded = encode_varint(value, width if width is not None else after - pos)
    return None if encoded is None else raw[:pos] + encoded + raw[after:]


# --- exhaustive, deterministic ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FILES))
def test_every_truncation_is_clean(name: str) -> None:
    raw = FILES[name]
    assert read_all(raw, "original") == "ok"
    outcomes = Counter(read_all(raw[:cut], "truncation") for cut in range(1, len(raw)))
    assert outcomes["CaffemodelFormatError"] > 0


def test_empty_and_text_inputs_are_parse_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match="empty file, not a caffemodel"):
        read_caffemodel(empty)
    with pytest.raises(CaffemodelFormatError, match="byte 0: no layers found"):
        scan_caffemodel(b"")


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("width", range(1, 16))
def test_overlong_top_level_varints(name: str, width: int) -> None:
    """Protobuf allows padded varints up to 10 bytes; 11+ bytes must fail at their offset."""
    raw = FILES[name]
    expected = [layer.name for layer in scan_caffemodel(raw).layers]
    top = [f for f in FIELDS[name] if f.parent == (0, len(raw))]
    for field in top:
        for pos in (field.tag_pos, field.value_pos) if field.wire == LENGTH else (field.tag_pos,):
            value, _ = read_varint(raw, pos, len(raw))
            mutated = replace_varint(raw, pos, value, width)
            if mutated is None:
                continue
            TRIED["overlong varint"] += 1
            if width <= 10:
                assert [layer.name for layer in scan_caffemodel(mutated).layers] == expected
            else:
                with pytest.raises(CaffemodelFormatError, match=f"byte {pos}: varint longer than "
                                                                "10 bytes"):
                    scan_caffemodel(mutated)


def test_claimed_length_beyond_the_file_allocates_nothing() -> None:
    """A 7-byte file claiming a 2**62-byte layer: an error, and no allocation of that size."""
    raw = b"\xa2\x06" + _canonical_varint(1 << 62)
    tracemalloc.start()
    try:
        with pytest.raises(CaffemodelFormatError, match=r"byte 0: field 100 claims "
                           r"4611686018427387904 bytes but only 0 remain"):
            scan_caffemodel(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BASE


# --- hypothesis ------------------------------------------------------------------------------

names = st.sampled_from(sorted(FILES))


@FUZZ
@given(name=names, data=st.data())
def test_bit_flips(name: str, data: st.DataObject) -> None:
    raw = bytearray(FILES[name])
    for offset in data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=8)):
        raw[offset // 8] ^= 1 << (offset % 8)
    read_all_bounded(bytes(raw), "bit flips")


@FUZZ
@given(name=names, data=st.data())
def test_length_past_the_end_of_its_parent(name: str, data: st.DataObject) -> None:
    raw = FILES[name]
    fields = [f for f in FIELDS[name] if f.wire == LENGTH]
    field = data.draw(st.sampled_from(fields))
    if data.draw(st.booleans()):  # grow the field past its parent's end
        over = data.draw(st.integers(1, 1 << 20))
        mutated = replace_varint(raw, field.value_pos, field.parent[1] - field.payload[0] + over)
    else:  # shrink the parent so that it ends inside the field
        parents = [f for f in FIELDS[name] if f.payload == field.parent]
        assume(parents)
        parent = parents[0]
        cut = data.draw(st.integers(field.tag_pos + 1, max(field.tag_pos + 1,
                                                           field.payload[1] - 1)))
        mutated = replace_varint(raw, parent.value_pos, cut - parent.payload[0])
    assume(mutated is not None)
    assert mutated is not None
    outcome = read_all_bounded(mutated, "length past parent")
    if field.parent == (0, len(raw)):
        assert outcome == "CaffemodelFormatError"


@FUZZ
@given(name=names, data=st.data())
def test_wrong_wire_types(name: str, data: st.DataObject) -> None:
    raw = bytearray(FILES[name])
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.sampled_from(FIELDS[name]))
        wire = data.draw(st.sampled_from([w for w in range(8) if w != field.wire]))
        raw[field.tag_pos] = raw[field.tag_pos] & ~7 | wire
    read_all_bounded(bytes(raw), "wrong wire type")


def _canonical_varint(value: int) -> bytes:
    encoded = encode_varint(value, max(1, (value.bit_length() + 6) // 7))
    assert encoded is not None
    return encoded


def _wrap(field: int, payload: bytes) -> bytes:
    return _canonical_varint(field << 3 | LENGTH) + _canonical_varint(len(payload)) + payload


@FUZZ
@given(payload=st.binary(max_size=2048), where=st.sampled_from(["bare", "layer", "blob",
                                                                 "v1 blob", "shape"]))
def test_random_bytes(payload: bytes, where: str) -> None:
    if where == "layer":
        payload = _wrap(100, payload)
    elif where == "blob":
        payload = _wrap(100, _wrap(1, b"x") + _wrap(7, payload))
    elif where == "v1 blob":
        payload = _wrap(2, _wrap(4, b"x") + _wrap(6, payload))
    elif where == "shape":
        payload = _wrap(100, _wrap(7, _wrap(7, payload) + _wrap(5, b"\0\0\x80?")))
    read_all_bounded(payload, f"random bytes ({where})")


@FUZZ
@given(name=names, data=st.data())
def test_spliced_chunks(name: str, data: st.DataObject) -> None:
    raw = FILES[name]
    start = data.draw(st.integers(0, len(raw)))
    stop = data.draw(st.integers(start, min(len(raw), start + 64)))
    chunk = data.draw(st.binary(max_size=64) | st.sampled_from(sorted(FILES.values())).map(
        lambda other: other[:64]))
    read_all_bounded(raw[:start] + chunk + raw[stop:], "spliced")


def test_zz_report_inputs_tried(capsys: pytest.CaptureFixture[str]) -> None:
    """Print how many inputs the tests above tried (runs last in file order)."""
    with capsys.disabled():
        print(f"\nfuzz_caffemodel: {sum(TRIED.values())} inputs: "
              + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
              + "\n  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items())))
    assert sum(TRIED.values()) > 0
