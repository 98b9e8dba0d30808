"""The ``data.pkl`` record of a PyTorch ``.pt`` file, written opcode by opcode (no torch, no
``pickle.Pickler``): what ``torch.save`` pickles for a dict of name -> CPU tensor.

``torch.save`` (torch/serialization.py ``_save``, pickle protocol 2) pickles each tensor as
``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
backward_hooks)``, where ``storage`` is a persistent id
``('storage', torch.<Type>Storage, key, 'cpu', numel)`` that the loader resolves to the zip
record ``data/<key>``, and ``backward_hooks`` is an empty ``collections.OrderedDict``. Opcodes are
those of ``pickletools`` (protocol 2); every one of them is accepted by
``torch.load(weights_only=True)``. Each array gets its own storage, its C-contiguous bytes
(strides in elements, as ``torch`` gives a contiguous tensor of that size).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import numpy as np

from ..errors import OutputError

__all__ = ["STORAGE_TYPES", "state_dict_pickle", "contiguous_strides"]

#: numpy dtype name -> the ``torch`` storage class ``torch.save`` names for it
STORAGE_TYPES = {
    "float16": "HalfStorage", "float32": "FloatStorage", "float64": "DoubleStorage",
    "int8": "CharStorage", "int16": "ShortStorage", "int32": "IntStorage",
    "int64": "LongStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}
_BATCH = 1000  # SETITEMS per MARK, as pickle.Pickler batches them


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides (in elements) torch gives a contiguous tensor of ``shape``: a dimension of
    size 0 counts as 1.

    Example:
        >>> contiguous_strides((2, 0, 3)), contiguous_strides(())
        ((3, 3, 1), ())
    """
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


class _Pickle:
    """A protocol-2 pickle under construction; globals are memoized (BINPUT/BINGET)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = [b"\x80\x02"]  # PROTO 2
        self.memo: dict[tuple[str, str], int] = {}

    def global_(self, module: str, name: str) -> None:
        index = self.memo.get((module, name))
        if index is not None:  # BINGET / LONG_BINGET
            self.parts.append(b"h" + bytes([index]) if index < 256 else
                              b"j" + struct.pack("<I", index))
            return
        index = self.memo[(module, name)] = len(self.memo)
        self.parts.append(b"c" + f"{module}\n{name}\n".encode("ascii"))  # GLOBAL
        self.parts.append(b"q" + bytes([index]) if index < 256 else  # BINPUT / LONG_BINPUT
                          b"r" + struct.pack("<I", index))

    def text(self, value: str) -> None:
        data = value.encode("utf-8", "surrogatepass")
        self.parts.append(b"X" + struct.pack("<I", len(data)) + data)  # BINUNICODE

    def integer(self, value: int) -> None:
        if 0 <= value < 256:
            self.parts.append(b"K" + bytes([value]))  # BININT1
        elif 0 <= value < 65536:
            self.parts.append(b"M" + struct.pack("<H", value))  # BININT2
        elif -(1 << 31) <= value < (1 << 31):
            self.parts.append(b"J" + struct.pack("<i", value))  # BININT
        else:  # LONG1: little-endian two's complement, as pickle encodes it
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.parts.append(b"\x8a" + bytes([len(data)]) + data)

    def int_tuple(self, values: Iterable[int]) -> None:
        items = list(values)
        if len(items) > 3:
            self.parts.append(b"(")  # MARK
        for item in items:
            self.integer(item)
        self.parts.append([b")", b"\x85", b"\x86", b"\x87"][len(items)]  # EMPTY_TUPLE, TUPLE1-3
                          if len(items) <= 3 else b"t")  # TUPLE

    def tensor(self, key: str, array: np.ndarray) -> None:
        """``_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())``."""
        storage = STORAGE_TYPES.get(array.dtype.name)
        if storage is None:
            raise OutputError(f"cannot write a {array.dtype} tensor to .pt; supported: "
                              f"{', '.join(STORAGE_TYPES)}")
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.parts.append(b"((")  # MARK (args), MARK (persistent id)
        self.text("storage")
        self.global_("torch", storage)
        self.text(key)
        self.text("cpu")
        self.integer(array.size)
        self.parts.append(b"tQ")  # TUPLE, BINPERSID
        self.integer(0)
        self.int_tuple(array.shape)
        self.int_tuple(contiguous_strides(array.shape))
        self.parts.append(b"\x89")  # NEWFALSE: requires_grad
        self.global_("collections", "OrderedDict")
        self.parts.append(b")R")  # EMPTY_TUPLE, REDUCE: OrderedDict()
        self.parts.append(b"tR")  # TUPLE, REDUCE: _rebuild_tensor_v2(*args)


def state_dict_pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The ``data.pkl`` of a dict of name -> tensor, storage ``data/<i>`` for the i-th array.

    Raises:
        OutputError: an array's dtype has no torch storage type (see ``STORAGE_TYPES``).

    Example:
        >>> import pickletools
        >>> data = state_dict_pickle({"w": np.zeros((2, 3), np.float32)})
        >>> "torch FloatStorage" in str(list(pickletools.genops(data)))
        True
    """
    out = _Pickle()
    out.parts.append(b"}")  # EMPTY_DICT
    items = list(arrays.items())
    for start in range(0, len(items), _BATCH):
        out.parts.append(b"(")  # MARK
        for index, (name, array) in enumerate(items[start:start + _BATCH], start):
            out.text(name)
            out.tensor(str(index), array)
        out.parts.append(b"u")  # SETITEMS
    out.parts.append(b".")  # STOP
    return b"".join(out.parts)
