"""Read Torch7's ``torch.save`` format (binary or ascii) into the values of ``objects``.

Follows torch7's ``File.lua`` ``readObject``: an int32 type tag, then the value. Tables, torch
objects and recursive functions carry a reference index; an index seen before stands for the
object read then, which comes back as the same Python object.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .objects import (
    STORAGE_DTYPES,
    T7Function,
    T7Object,
    T7Storage,
    T7Table,
    T7Tensor,
    storage_class_of,
)
from .sources import AsciiSource, BinarySource, Source

__all__ = ["load_t7", "loads_t7"]

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH = 0, 1, 2, 3, 4
TYPE_BOOLEAN, TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 5, 6, 7, 8
_MAX_DEPTH = 128
_MAX_DIMENSIONS = 64
_VERSION = re.compile(r"V (\d+)")
_HASHABLE_KEYS = (float, str, bytes, bool)
_TENSOR_CLASSES = frozenset(
    name[: -len("Storage")] + "Tensor" for name in STORAGE_DTYPES if name != "torch.CudaStorage"
) | {"torch.CudaTensor"}


def load_t7(path: str | Path, mode: str = "auto") -> Any:
    """Read the object a ``.t7`` file holds.

    Args:
        path: the file.
        mode: ``"binary"``, ``"ascii"`` or ``"auto"`` (ascii when the file starts with a digit;
            a binary file starts with an int32 tag 0..8, whose first byte is not one).

    Returns:
        The value, see ``bnconvert.t7.objects`` for the mapping.

    Raises:
        T7FormatError: (a ``ParseError``) the file is malformed or truncated; the message
            names the file and the byte offset.
        OSError: the file cannot be read.

    Example:
        >>> from bnconvert.t7 import dumps_t7
        >>> path = getfixture("tmp_path") / "table.t7"
        >>> _ = path.write_bytes(dumps_t7({"eps": 1e-05}))
        >>> load_t7(path)
        {'eps': 1e-05}
    """
    return loads_t7(Path(path).read_bytes(), name=str(path), mode=mode)


def loads_t7(data: bytes, name: str = "<bytes>", mode: str = "auto") -> Any:
    """Read the object held by the bytes of a ``.t7`` file.

    Args:
        data: the file's bytes.
        name: the file name used in error messages.
        mode: ``"binary"``, ``"ascii"`` or ``"auto"``, as for ``load_t7``.

    Returns:
        The value.

    Raises:
        T7FormatError: malformed or truncated data, or trailing bytes after the object.
        ValueError: ``mode`` is not one of the three.
    """
    if mode == "auto":
        mode = "ascii" if data[:1].isdigit() else "binary"
    if mode not in ("binary", "ascii"):
        raise ValueError(f"mode must be 'binary', 'ascii' or 'auto', not {mode!r}")
    source = BinarySource(data, name) if mode == "binary" else AsciiSource(data, name)
    if mode == "ascii" and not data.endswith(b"\n"):
        raise source.fail("truncated: an ascii .t7 file ends with a newline", len(data))
    value = _Reader(source).read()
    if data[source.pos:].strip() if mode == "ascii" else source.remaining():
        raise source.fail(f"{source.remaining()} unexpected bytes after the object")
    return value


class _Reader:
    def __init__(self, source: Source) -> None:
        self.src = source
        self.objects: dict[int, Any] = {}
        self.depth = 0

    def read(self) -> Any:
        start = self.src.pos
        tag = self.src.read_int("a type tag")
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return self.src.read_double("a number")
        if tag == TYPE_BOOLEAN:
            return self._read_bool()
        if tag == TYPE_STRING:
            return _decode(self._read_string("a string"))
        if tag == TYPE_FUNCTION:
            index = None
        elif tag in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION):
            index = self.src.read_int("a reference index")
            if index in self.objects:
                return self.objects[index]
        else:
            raise self.src.fail(f"unknown type tag {tag}", start)
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.src.fail(f"objects nested deeper than {_MAX_DEPTH} levels")
        try:
            return self._read_referenced(tag, index)
        finally:
            self.depth -= 1

    def _read_bool(self) -> bool:
        start = self.src.pos
        value = self.src.read_int("a boolean")
        if value not in (0, 1):
            raise self.src.fail(f"a boolean must be 0 or 1, found {value}", start)
        return value == 1

    def _read_string(self, what: str) -> bytes:
        start = self.src.pos
        size = self.src.read_int(f"the length of {what}")
        if size < 0:
            raise self.src.fail(f"negative length {size} of {what}", start)
        return self.src.read_chars(size, what)

    def _read_referenced(self, tag: int, index: Any) -> Any:
        if tag == TYPE_TABLE:
            return self._read_table(index)
        if tag == TYPE_TORCH:
            return self._read_torch(index)
        return self._read_function(tag, index)

    def _read_function(self, tag: int, index: int | None) -> T7Function:
        function = T7Function(self._read_string("function bytecode"), type_tag=tag)
        if index is not None:
            self.objects[index] = function
        function.upvalues = self.read()
        return function

    def _read_table(self, index: int) -> T7Table:
        start = self.src.pos
        size = self.src.read_int("a table size")
        if size < 0 or size > self.src.remaining():
            raise self.src.fail(f"impossible table size {size}", start)
        table = self.objects[index] = T7Table()
        for _ in range(size):
            key_at = self.src.pos
            key = self.read()
            if not isinstance(key, _HASHABLE_KEYS) or key != key:
                raise self.src.fail(
                    f"table key of type {type(key).__name__} is not supported", key_at)
            table[key] = self.read()
        return table

    def _read_torch(self, index: int) -> Any:
        start = self.src.pos
        header = _decode(self._read_string("a class version"))
        match = _VERSION.fullmatch(header) if isinstance(header, str) else None
        version = int(match.group(1)) if match else 0
        class_name = _decode(self._read_string("a class name")) if match else header
        if not isinstance(class_name, str) or not class_name:
            raise self.src.fail(f"invalid class name {class_name!r}", start)
        if class_name in STORAGE_DTYPES:
            storage = self.objects[index] = self._read_storage(class_name, version)
            return storage
        if class_name in _TENSOR_CLASSES:
            tensor = self.objects[index] = self._read_tensor(class_name, version)
            return tensor
        obj = self.objects[index] = T7Object(class_name, version)
        obj.payload = self.read()
        return obj

    def _read_storage(self, class_name: str, version: int) -> T7Storage:
        start = self.src.pos
        count = self.src.read_long(f"the length of a {class_name}")
        if count < 0:
            raise self.src.fail(f"negative length {count} of a {class_name}", start)
        data = self.src.read_array(STORAGE_DTYPES[class_name], count, f"a {class_name}'s data")
        return T7Storage(class_name, data, version)

    def _read_tensor(self, class_name: str, version: int) -> T7Tensor:
        start = self.src.pos
        ndim = self.src.read_int(f"the dimension count of a {class_name}")
        if not 0 <= ndim <= _MAX_DIMENSIONS:
            raise self.src.fail(f"impossible dimension count {ndim} of a {class_name}", start)
        size = self.src.read_longs(ndim, "tensor sizes")
        stride = self.src.read_longs(ndim, "tensor strides")
        offset = self.src.read_long("a storage offset")
        storage_at = self.src.pos
        storage = self.read()
        tensor = T7Tensor(class_name, size, stride, offset, storage, version)
        self._check_tensor(tensor, start, storage_at)
        return tensor

    def _check_tensor(self, tensor: T7Tensor, start: int, storage_at: int) -> None:
        expected = storage_class_of(tensor.class_name)
        storage = tensor.storage
        if storage is not None and (not isinstance(storage, T7Storage)
                                    or storage.class_name != expected):
            found = getattr(storage, "class_name", type(storage).__name__)
            raise self.src.fail(f"a {tensor.class_name} needs a {expected}, found {found}",
                                storage_at)
        problem = tensor.view_problem()
        if problem is not None:
            raise self.src.fail(problem, start)


def _decode(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
