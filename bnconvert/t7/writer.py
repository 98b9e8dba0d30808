"""Write values in Torch7's binary ``torch.save`` format (little-endian, x86_64 sizes).

Follows torch7's ``File.lua`` ``writeObject``: int32 type tags, float64 numbers, int32-length
strings; tables, torch objects and recursive functions get a reference index (one counter,
from 1) the first time and only their tag and index after that. Tensors and storages are written
as ``torch.Tensor``/``torch.Storage`` ``write`` does: int32 dimension count, int64 sizes,
strides, 1-based storage offset, then the storage (nil when there is none); a storage is its
int64 length then its raw elements.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

from .objects import (
    STORAGE_DTYPES,
    T7Function,
    T7Object,
    T7Storage,
    T7Tensor,
    storage_class_of,
)
from .reader import (
    TYPE_BOOLEAN,
    TYPE_FUNCTION,
    TYPE_NIL,
    TYPE_NUMBER,
    TYPE_STRING,
    TYPE_TABLE,
    TYPE_TORCH,
)

__all__ = ["dump_t7", "dumps_t7"]


def dumps_t7(value: Any) -> bytes:
    """The bytes ``torch.save(file, value)`` (binary mode) would write for ``value``.

    Besides the ``objects`` types this accepts ``int`` (exactly representable as a float64),
    ``dict`` (as a table), ``list``/``tuple`` (a table keyed 1..n) and numpy arrays (as a
    ``T7Tensor.from_array``). A Python object reached twice is written once and referenced.

    Args:
        value: what to serialize.

    Returns:
        The file's bytes.

    Raises:
        TypeError: a value has no Torch7 equivalent.
        ValueError: an int too large for a float64, a tensor whose storage class does not match,
            or a class version that is not an integer >= 0.

    Example:
        >>> dumps_t7(None)
        b'\\x00\\x00\\x00\\x00'
    """
    buffer = io.BytesIO()
    _Writer(buffer).write(value)
    return buffer.getvalue()


def dump_t7(value: Any, stream: BinaryIO) -> None:
    """Serialize ``value`` completely, then write the bytes to ``stream`` in one call.

    Args:
        value: what to serialize (see ``dumps_t7``).
        stream: a binary stream open for writing.

    Raises:
        TypeError, ValueError: as ``dumps_t7``; nothing has been written then.
    """
    stream.write(dumps_t7(value))


class _Writer:
    def __init__(self, out: io.BytesIO) -> None:
        self.out = out
        self.indices: dict[int, int] = {}
        self.keep_alive: list[Any] = []

    def write(self, value: Any) -> None:
        if value is None:
            self._int(TYPE_NIL)
        elif isinstance(value, bool):
            self._int(TYPE_BOOLEAN)
            self._int(int(value))
        elif isinstance(value, (int, float, np.integer, np.floating)):
            self._int(TYPE_NUMBER)
            self.out.write(struct.pack("<d", _as_double(value)))
        elif isinstance(value, (str, bytes)):
            self._int(TYPE_STRING)
            self._string(value)
        elif isinstance(value, T7Function) and value.type_tag == TYPE_FUNCTION:
            self._int(TYPE_FUNCTION)
            self._function_body(value)
        else:
            self._referenced(value)

    def _referenced(self, value: Any) -> None:
        if isinstance(value, np.ndarray):
            value = T7Tensor.from_array(value)
        if isinstance(value, T7Function):
            tag = value.type_tag
        elif isinstance(value, (T7Object, T7Tensor, T7Storage)):
            tag = TYPE_TORCH
        elif isinstance(value, (Mapping, list, tuple)):
            tag = TYPE_TABLE
        else:
            raise TypeError(f"cannot write a {type(value).__name__} to a .t7 file")
        self._int(tag)
        if id(value) in self.indices:
            self._int(self.indices[id(value)])
            return
        self.indices[id(value)] = len(self.indices) + 1
        self.keep_alive.append(value)
        self._int(len(self.indices))
        self._referenced_body(value)

    def _referenced_body(self, value: Any) -> None:
        if isinstance(value, T7Function):
            self._function_body(value)
        elif isinstance(value, T7Tensor):
            self._tensor(value)
        elif isinstance(value, T7Storage):
            self._storage(value)
        elif isinstance(value, T7Object):
            self._class_header(value.class_name, value.version)
            self.write(value.payload)
        else:
            self._table(value)

    def _table(self, table: Mapping[Any, Any] | list[Any] | tuple[Any, ...]) -> None:
        items = list(table.items() if isinstance(table, Mapping) else enumerate(table, start=1))
        self._int(len(items))
        for key, item in items:
            if key is None:
                raise TypeError("a table key cannot be nil")
            self.write(key)
            self.write(item)

    def _function_body(self, function: T7Function) -> None:
        self._string(function.bytecode)
        self.write(function.upvalues)

    def _tensor(self, tensor: T7Tensor) -> None:
        try:
            storage_class = storage_class_of(tensor.class_name)
        except KeyError:
            raise ValueError(f"unknown tensor class {tensor.class_name!r}") from None
        if len(tensor.size) != len(tensor.stride):
            raise ValueError(f"{tensor.class_name} has {len(tensor.size)} sizes and "
                             f"{len(tensor.stride)} strides")
        if tensor.storage is not None and tensor.storage.class_name != storage_class:
            raise ValueError(f"a {tensor.class_name} cannot hold a {tensor.storage.class_name}")
        self._class_header(tensor.class_name, tensor.version)
        self._int(len(tensor.size))
        self.out.write(np.asarray([*tensor.size, *tensor.stride, tensor.storage_offset],
                                  dtype="<i8").tobytes())
        self.write(tensor.storage)

    def _storage(self, storage: T7Storage) -> None:
        dtype = STORAGE_DTYPES.get(storage.class_name)
        if dtype is None or storage.data.dtype.newbyteorder("<") != dtype.newbyteorder("<"):
            raise ValueError(f"a {storage.class_name} cannot hold {storage.data.dtype} data")
        self._class_header(storage.class_name, storage.version)
        self.out.write(struct.pack("<q", storage.data.size))
        self.out.write(np.ascontiguousarray(storage.data, dtype=dtype).tobytes())

    def _class_header(self, class_name: str, version: int) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"class version of {class_name} must be an integer >= 0, "
                             f"not {version!r}")
        self._string(f"V {version}")
        self._string(class_name)

    def _string(self, text: str | bytes) -> None:
        raw = text.encode("utf-8") if isinstance(text, str) else text
        self._int(len(raw))
        self.out.write(raw)

    def _int(self, value: int) -> None:
        self.out.write(struct.pack("<i", value))


def _as_double(value: int | float | np.integer[Any] | np.floating[Any]) -> float:
    number = float(value)
    if isinstance(value, (int, np.integer)) and int(number) != int(value):
        raise ValueError(f"the integer {value} has no exact float64 value")
    return number

