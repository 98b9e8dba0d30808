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

from google.protobuf.message import DecodeError, Message

from .._proto import caffe_pb2
from ..errors import CaffemodelFormatError, ParseError
from .blob import BlobRef, scan_blob
from .wire import LENGTH, Buffer, WireFormatError, iter_fields

__all__ = ["CaffemodelLayer", "Caffemodel", "read_caffemodel", "scan_caffemodel"]

# NetParameter field numbers.
_NET_LAYERS_V1, _NET_LAYER = 2, 100
_NET_HEADER_FIELDS = {1, 3, 4, 5, 6, 7, 8}  # name, input, input_dim, force_backward, state, ...
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
        >>> model = read_caffemodel("model.caffemodel")  # doctest: +SKIP
        >>> [layer.name for layer in model.layers]  # doctest: +SKIP
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


def _reject_text(name: str, buf: Buffer) -> None:
    head = bytes(buf[:512])  # type: ignore[index]
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    if printable == len(head) and b"{" in head or head.lstrip().startswith((b"name:", b"#")):
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
                header += buf[cursor:b]  # type: ignore[index]
            cursor = b
    except WireFormatError as exc:
        raise CaffemodelFormatError(name, exc.offset, exc.problem) from None
    if not layers:
        raise CaffemodelFormatError(name, 0, "no layers found: not a caffemodel, or an empty net")
    try:
        net_header = caffe_pb2.NetParameter.FromString(bytes(header))
    except DecodeError:
        net_header = caffe_pb2.NetParameter()
    return Caffemodel(name, tuple(layers), net_header)


def _scan_layer(buf: Buffer, start: int, end: int, v1: bool) -> CaffemodelLayer:
    blobs_field = _BLOBS[v1]
    blobs: list[BlobRef] = []
    rest = bytearray()
    cursor = start
    for number, wire, a, b in iter_fields(buf, start, end):
        if number == blobs_field and wire == LENGTH:
            blobs.append(scan_blob(buf, a, b))
        else:
            rest += buf[cursor:b]  # type: ignore[index]
        cursor = b
    message_class = caffe_pb2.V1LayerParameter if v1 else caffe_pb2.LayerParameter
    try:
        definition = message_class.FromString(bytes(rest))
        problem = None
    except DecodeError as exc:
        definition, problem = _wire_identity(bytes(rest), v1), f"parameters not decoded: {exc}"
    layer_type: str | int = definition.type
    return CaffemodelLayer(definition.name, layer_type, definition, tuple(blobs), start, v1,
                           problem)


def _wire_identity(raw: bytes, v1: bool) -> Message:
    """Name, type, bottoms and tops read field by field when the whole message won't decode."""
    message = caffe_pb2.V1LayerParameter() if v1 else caffe_pb2.LayerParameter()
    fields = ({4: "name", 5: "type", 2: "bottom", 3: "top"} if v1 else
              {1: "name", 2: "type", 3: "bottom", 4: "top"})
    for number, wire, a, b in iter_fields(raw, 0, len(raw)):
        attr = fields.get(number)
        if attr is None:
            continue
        if attr in ("bottom", "top") and wire == LENGTH:
            getattr(message, attr).append(raw[a:b].decode("utf-8", "replace"))
        elif attr == "type" and v1 and wire != LENGTH:
            message.type = a  # type: ignore[attr-defined]
        elif wire == LENGTH:
            setattr(message, attr, raw[a:b].decode("utf-8", "replace"))
    return message


def caffemodel_path_kind(path: str | os.PathLike[str]) -> str:
    """``"caffemodel"`` or ``"prototxt"`` by content (first bytes), for CLI argument checks."""
    with open(Path(path), "rb") as handle:
        head = handle.read(512)
    text = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return "prototxt" if text and head else "caffemodel"
