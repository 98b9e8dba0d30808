"""Binary caffemodel reader over a memory map.

The file is scanned with the project's own wire-format scanner: blobs are recorded as
``BlobRef`` spans (never parsed, never copied), and each layer's definition (name, type, bottoms,
tops, parameters) is decoded with the generated protobuf module from its bytes *without* the
blobs. So memory stays flat in the file size, and a blob larger than protobuf's 2 GiB limit is
no obstacle.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from google.protobuf.message import DecodeError, Message

from .._proto import caffe_pb2
from ..errors import CaffemodelFormatError, ParseError
from .blob import BlobRef, scan_blob
from .sniff import refuse_foreign, sniff
from .wire import LENGTH, VARINT, Buffer, WireFormatError, iter_fields

__all__ = ["CaffemodelLayer", "Caffemodel", "read_caffemodel", "scan_caffemodel"]

# NetParameter field numbers.
_NET_LAYERS_V1, _NET_LAYER = 2, 100
_NET_HEADER_FIELDS = {1, 3, 4, 5, 6, 7, 8}  # name, input, input_dim, force_backward, state, ...
_LayerMessage = caffe_pb2.LayerParameter | caffe_pb2.V1LayerParameter
# blobs field of LayerParameter (V2) and V1LayerParameter.
_BLOBS = {False: 7, True: 6}


@dataclass(frozen=True, eq=False)
class CaffemodelLayer:
    """One layer as stored in a caffemodel.

    Attributes:
        definition: the decoded ``LayerParameter`` (or ``V1LayerParameter``) without blobs.
        blobs: the layer's blobs, unread.
        offset: byte offset of the layer message in the file.
        v1: True for a legacy ``layers`` (V1LayerParameter) entry.
        decode_problem: set when the definition could not be decoded (a fork's field numbers
            clash with BVLC's); name and type are then read from the wire directly.
    """

    name: str
    type: str | int
    definition: Message
    blobs: tuple[BlobRef, ...]
    offset: int
    v1: bool
    decode_problem: str | None = None


@dataclass(frozen=True, eq=False)
class Caffemodel:
    """The layers of a caffemodel, in file order, plus the net-level header fields."""

    path: str
    layers: tuple[CaffemodelLayer, ...]
    header: caffe_pb2.NetParameter = field(default_factory=caffe_pb2.NetParameter)
    header_problem: str | None = None

    def by_name(self) -> dict[str, CaffemodelLayer]:
        """Layers by name; like Caffe, the first layer of a name wins."""
        found: dict[str, CaffemodelLayer] = {}
        for layer in self.layers:
            found.setdefault(layer.name, layer)
        return found


def read_caffemodel(path: str | os.PathLike[str]) -> Caffemodel:
    """Memory-map a binary caffemodel and scan its layers (blobs stay unread).

    Args:
        path: the ``.caffemodel`` file.

    Returns:
        The scanned ``Caffemodel``; its ``BlobRef`` values are views into the memory map.

    Raises:
        ParseError: the file is missing, empty, or looks like a text prototxt.
        CaffemodelFormatError: the bytes are not a valid NetParameter (with the byte offset).

    Example:
        >>> model = read_caffemodel(EXAMPLE_CAFFEMODEL)
        >>> [layer.name for layer in model.layers][:3]
        ['data', 'data_data_0_split', 'res2a_branch1']
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise ParseError(f"{name}: empty file, not a caffemodel")
            buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ParseError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ParseError(f"{name}: is a directory, not a caffemodel") from None
    except PermissionError:
        raise ParseError(f"{name}: permission denied") from None
    _reject_text(name, buf)
    return scan_caffemodel(buf, name)


def _looks_like_text(head: bytes) -> bool:
    """A file's first bytes read as a text prototxt (printable ASCII and whitespace only)."""
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _reject_text(name: str, buf: Buffer) -> None:
    head = bytes(buf[:512])
    refuse_foreign(name, head, "a caffemodel")
    if _looks_like_text(head) and b"{" in head or head.lstrip().startswith((b"name:", b"#")):
        raise ParseError(
            f"{name}: this is a text prototxt, not a binary caffemodel; "
            "pass the prototxt first and the .caffemodel second"
        )


def scan_caffemodel(buf: Buffer, name: str = "<buffer>") -> Caffemodel:
    """Scan a NetParameter held in ``buf`` (bytes or mmap).

    Raises:
        CaffemodelFormatError: malformed bytes, with the byte offset.
    """
    layers: list[CaffemodelLayer] = []
    header = bytearray()
    cursor = 0
    try:
        for number, wire, a, b in iter_fields(buf, 0, len(buf)):
            if number in (_NET_LAYER, _NET_LAYERS_V1) and wire == LENGTH:
                layers.append(_scan_layer(buf, a, b, v1=number == _NET_LAYERS_V1))
            elif number in _NET_HEADER_FIELDS:
                header += buf[cursor:b]
            cursor = b
    except WireFormatError as exc:
        raise CaffemodelFormatError(name, exc.offset, exc.problem) from None
    if not layers:
        raise CaffemodelFormatError(name, 0, "no layers found: not a caffemodel, or an empty net")
    try:
        net_header, problem = caffe_pb2.NetParameter.FromString(bytes(header)), None
    except DecodeError as exc:
        net_header, problem = caffe_pb2.NetParameter(), f"net header fields not decoded: {exc}"
    return Caffemodel(name, tuple(layers), net_header, problem)


def _scan_layer(buf: Buffer, start: int, end: int, v1: bool) -> CaffemodelLayer:
    """Blobs as spans; the other fields (in runs of consecutive bytes) decoded by protobuf."""
    blobs_field = _BLOBS[v1]
    blobs: list[BlobRef] = []
    runs: list[tuple[int, int]] = []
    run_start = cursor = start
    for number, wire, a, b in iter_fields(buf, start, end):
        if number == blobs_field and wire == LENGTH:
            if cursor > run_start:
                runs.append((run_start, cursor))
            blobs.append(scan_blob(buf, a, b))
            run_start = b
        cursor = b
    if end > run_start:
        runs.append((run_start, end))
    raw = b"".join(buf[x:y] for x, y in runs)
    message_class = caffe_pb2.V1LayerParameter if v1 else caffe_pb2.LayerParameter
    definition: Message
    try:
        definition = message_class.FromString(raw)
        problem = None
    except DecodeError as exc:
        definition, problem = _wire_identity(buf, runs, v1), f"parameters not decoded: {exc}"
    _check_identity(definition, start, v1)
    layer = cast(_LayerMessage, definition)
    return CaffemodelLayer(layer.name, layer.type, definition, tuple(blobs), start, v1,
                           problem)


def _check_identity(definition: Message, offset: int, v1: bool) -> None:
    """Protobuf hands back ``bytes`` for a proto2 string that is not UTF-8; reject those."""
    layer = cast(_LayerMessage, definition)
    names: list[object] = [layer.name, *layer.bottom, *layer.top]
    if not v1:
        names.append(layer.type)
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise WireFormatError(offset, f"layer name, type, bottom or top {bad!r} is not valid "
                              "UTF-8")


_IDENTITY_FIELDS = {False: {1: "name", 2: "type", 3: "bottom", 4: "top"},
                    True: {4: "name", 5: "type", 2: "bottom", 3: "top"}}


def _wire_identity(buf: Buffer, runs: list[tuple[int, int]], v1: bool) -> Message:
    """Name, type, bottoms and tops read field by field when the whole message won't decode."""
    fields = _IDENTITY_FIELDS[v1]
    found: dict[str, list[str]] = {"name": [], "type": [], "bottom": [], "top": []}
    v1_type = 0
    for run_start, run_end in runs:
        for number, wire, a, b in iter_fields(buf, run_start, run_end):
            attr = fields.get(number)
            if attr == "type" and v1:
                if wire == VARINT and a in _V1_TYPE_VALUES:
                    v1_type = a
            elif attr is not None and wire == LENGTH:
                found[attr].append(bytes(buf[a:b]).decode("utf-8", "replace"))
    name = found["name"][-1] if found["name"] else ""  # the last one wins, as in protobuf
    if v1:
        return caffe_pb2.V1LayerParameter(name=name, type=cast(Any, v1_type),
                                          bottom=found["bottom"], top=found["top"])
    return caffe_pb2.LayerParameter(name=name, type=found["type"][-1] if found["type"] else "",
                                    bottom=found["bottom"], top=found["top"])


_V1_TYPE_VALUES = frozenset(caffe_pb2.V1LayerParameter.LayerType.values())


def caffemodel_path_kind(path: str | os.PathLike[str]) -> str:
    """``"caffemodel"`` or ``"prototxt"`` by content (first bytes), for CLI argument checks."""
    with open(Path(path), "rb") as handle:
        head = handle.read(512)
    if sniff(head) is not None and Path(path).suffix.lower() != ".prototxt":
        return "caffemodel"  # a file of another kind: its error names it as the caffemodel
    return "prototxt" if _looks_like_text(head) else "caffemodel"
