"""PyTorch's zip serialization format (``torch.save`` since 1.6), written as a stream without
torch: the container of ``caffe2/serialize/inline_container.cc`` (miniz, ``PyTorchStreamWriter``)
around the pickle of ``pt_pickle``.

Records, in ``torch.save``'s order, under the folder ``archive/`` (torch's name when it saves to
a stream): ``data.pkl``, ``.format_version`` (``1``), ``.storage_alignment`` (``64``),
``byteorder`` (``little``), ``data/0`` ... ``data/N-1`` (each tensor's bytes), ``version``
(``3``), ``.data/serialization_id``. Every record is stored (no compression); its local header
carries an extra field ``FB`` + length + ``Z`` padding so that its data starts at a multiple of
64 bytes (what ``torch.load(mmap=True)`` maps), its CRC-32 and sizes follow the data in a data
descriptor (general purpose flag bit 3; none for an empty record), so each record streams in one
pass; the central directory, a ZIP64 end record and locator (always, as miniz writes them) and
the classic end record close the file. Sizes and offsets of 4 GiB and more use ZIP64 extra
fields.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .chunks import array_chunks, write_while_computing
from .pt_pickle import state_dict_pickle

__all__ = ["ZipRecordWriter", "write_pt_stream", "ALIGNMENT"]

ALIGNMENT = 64  # torch.serialization: config.save.storage_alignment
_LIMIT = 0xFFFFFFFF  # a size or offset at least this needs ZIP64 (as miniz decides)
_MARK = 0xFFFFFFFF  # what a 32-bit field holds when its value is in the ZIP64 field
_UTF8, _DESCRIPTOR = 0x0800, 0x0008  # general purpose flags: UTF-8 names, data descriptor


@dataclass(frozen=True)
class _Entry:
    name: bytes
    offset: int
    size: int
    crc: int
    flags: int


class ZipRecordWriter:
    """Stored (uncompressed) zip records written one after the other to a stream, each one's
    data 64-byte aligned and streamed from chunks; ``finish`` writes the central directory.

    Example:
        >>> import io, zipfile
        >>> out = io.BytesIO()
        >>> archive = ZipRecordWriter(out)
        >>> archive.add("a/x", [b"hello"], 5)
        >>> archive.finish()
        >>> zipfile.ZipFile(out).read("a/x")
        b'hello'
    """

    def __init__(self, stream: BinaryIO, pool: Executor | None = None) -> None:
        self._stream = stream
        self._pool = pool  # computes a large chunk's CRC-32 while the chunk is written
        self._offset = 0
        self._entries: list[_Entry] = []
        self.crc_of_all = 0  # CRC-32 of the records' CRC-32s, in order

    def _write(self, data: bytes | memoryview) -> None:
        self._stream.write(data)
        self._offset += len(data)

    def _write_summed(self, chunk: bytes | memoryview, crc: int) -> int:
        """Write ``chunk``; return the CRC-32 ``crc`` continued over it (for a large chunk
        computed in the pool while the chunk is written)."""
        return write_while_computing(self._pool, lambda: self._write(chunk),
                                     lambda: zlib.crc32(chunk, crc), len(chunk))

    def add(self, name: str, chunks: Iterable[bytes | memoryview], size: int) -> None:
        """Write one record of ``size`` bytes, the concatenation of ``chunks``.

        Raises:
            ValueError: the chunks hold another number of bytes than ``size``.
        """
        encoded, offset = name.encode("utf-8"), self._offset
        flags = _UTF8 | (_DESCRIPTOR if size else 0)
        self._write(_local_header(encoded, offset, size, flags))
        crc, written = 0, 0
        for chunk in chunks:
            crc = self._write_summed(chunk, crc)
            written += len(chunk)
        if written != size:
            raise ValueError(f"zip record {name}: {written} bytes written, {size} announced")
        if size:
            sizes = "<QQ" if size >= _LIMIT else "<II"
            self._write(struct.pack("<II", 0x08074B50, crc) + struct.pack(sizes, size, size))
        self.crc_of_all = zlib.crc32(struct.pack("<I", crc), self.crc_of_all)
        self._entries.append(_Entry(encoded, offset, size, crc, flags))

    def finish(self) -> None:
        """Write the central directory and the end records (ZIP64 and classic)."""
        start = self._offset
        for entry in self._entries:
            self._write(_central_header(entry))
        size, count = self._offset - start, len(self._entries)
        end64 = self._offset
        self._write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, count,
                                count, size, start))
        self._write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
        self._write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF),
                                min(count, 0xFFFF), _MARK if size >= _LIMIT else size,
                                _MARK if start >= _LIMIT else start, 0))


def _local_header(name: bytes, offset: int, size: int, flags: int) -> bytes:
    """The local file header of a record, with its ZIP64 field (a size of 4 GiB or more) and
    the ``FB`` padding that aligns its data to ``ALIGNMENT``."""
    zip64 = struct.pack("<HHQQ", 1, 16, 0, 0) if size >= _LIMIT else b""
    start = offset + 30 + len(name) + len(zip64) + 4
    padding = -start % ALIGNMENT
    extra = zip64 + b"FB" + struct.pack("<H", padding) + b"Z" * padding
    sizes = _MARK if zip64 else 0  # with a data descriptor the sizes follow the data
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 0, flags, 0, 0, 0, 0,
                       sizes, sizes, len(name), len(extra)) + name + extra


def _central_header(entry: _Entry) -> bytes:
    """The central directory entry of a record (ZIP64 fields where a value needs them)."""
    big_size, big_offset = entry.size >= _LIMIT, entry.offset >= _LIMIT
    values = ([entry.size, entry.size] if big_size else []) + ([entry.offset] if big_offset
                                                                 else [])
    extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if values else b""
    size, offset = (_MARK if big_size else entry.size), (_MARK if big_offset else entry.offset)
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 45 if values else 0, entry.flags,
                       0, 0, 0, entry.crc, size, size, len(entry.name), len(extra), 0, 0, 0,
                       0, offset) + entry.name + extra


def _small(name: str, text: str) -> tuple[str, list[bytes], int]:
    data = text.encode("ascii")
    return name, [data], len(data)


def write_pt_stream(arrays: Mapping[str, np.ndarray], stream: BinaryIO) -> None:
    """Write ``arrays`` as ``torch.save({name: tensor})`` would, to ``stream``, streaming each
    array's bytes (see ``chunks.array_chunks``) and computing the CRC-32s on the way.

    Raises:
        OutputError: an array's dtype has no torch storage type.
    """
    pickled = state_dict_pickle(arrays)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bnconvert-crc32") as pool:
        _write_records(arrays, pickled, ZipRecordWriter(stream, pool))


def _write_records(arrays: Mapping[str, np.ndarray], pickled: bytes,
                   archive: ZipRecordWriter) -> None:
    archive.add("archive/data.pkl", [pickled], len(pickled))
    for name, text in ((".format_version", "1"), (".storage_alignment", str(ALIGNMENT)),
                       ("byteorder", "little")):
        archive.add(*_small(f"archive/{name}", text))
    for index, array in enumerate(arrays.values()):
        archive.add(f"archive/data/{index}", array_chunks(array), array.nbytes)
    archive.add(*_small("archive/version", "3\n"))
    archive.add(*_small("archive/.data/serialization_id", _serialization_id(arrays, archive)))
    archive.finish()


def _serialization_id(arrays: Mapping[str, np.ndarray], archive: ZipRecordWriter) -> str:
    """40 digits, as torch writes (it draws the first 20 at random): 20 from the SHA-256 of
    the keys, 20 from the CRC-32s of the records, so the same arrays give the same file."""
    keys = hashlib.sha256("\0".join(arrays).encode("utf-8", "surrogatepass")).digest()
    return f"{int.from_bytes(keys[:8], 'little'):020d}{archive.crc_of_all:020d}"
