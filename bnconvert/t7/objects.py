"""Python values for Torch7's serialized objects.

How a Torch7 value maps to Python:

| Torch7 | Python |
|---|---|
| nil | ``None`` |
| number (a float64 in the file) | ``float``, even when integer-valued (``1`` reads as ``1.0``) |
| string | ``str`` when it is valid utf-8, else ``bytes`` |
| boolean | ``bool`` |
| table | ``T7Table`` (a ``dict`` in file order; number keys are floats, ``t[1]`` finds ``1.0``) |
| ``torch.*Storage`` | ``T7Storage`` (class name, version, 1-D numpy array of the storage's dtype) |
| ``torch.*Tensor`` | ``T7Tensor`` (class, version, size, stride, 1-based offset, storage) |
| any other torch object (``nn.*``) | ``T7Object`` (class name, version, payload, usually a table) |
| function | ``T7Function`` (opaque Lua bytecode and upvalues) |

An object stored once and referenced again comes back as the same Python object. Equality is
by value (tensors compare class, geometry and the storage's bytes), so two reads of one file
compare equal, and tables compare equal whatever their key order. Storage elements compare
bit for bit (``-0.0`` differs from ``0.0``), except that all NaNs are equal: an ascii file
keeps no NaN payload. Comparing self-referencing structures recurses without end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "STORAGE_DTYPES",
    "T7Function",
    "T7Object",
    "T7Storage",
    "T7Table",
    "T7Tensor",
    "storage_class_of",
]

# Storage class -> little-endian element type. torch.Cuda* classes serialize like their CPU twins.
STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    f"torch.{prefix}{kind}Storage": np.dtype(code)
    for kind, code in (
        ("Byte", "u1"), ("Char", "i1"), ("Short", "<i2"), ("Int", "<i4"), ("Long", "<i8"),
        ("Float", "<f4"), ("Double", "<f8"), ("Half", "<f2"),
    )
    for prefix in ("", "Cuda")
}
# CudaTensor is the float32 CUDA tensor (there is no "CudaFloatTensor").
STORAGE_DTYPES["torch.CudaStorage"] = STORAGE_DTYPES.pop("torch.CudaFloatStorage")


def storage_class_of(tensor_class: str) -> str:
    """The storage class that goes with a tensor class (``torch.FloatTensor`` -> ``...Storage``).

    Args:
        tensor_class: a Torch7 tensor class name such as ``"torch.DoubleTensor"``.

    Returns:
        The matching storage class name.

    Raises:
        KeyError: ``tensor_class`` is not a known tensor class.

    Example:
        >>> storage_class_of("torch.FloatTensor")
        'torch.FloatStorage'
    """
    if tensor_class.endswith("Tensor"):
        storage_class = tensor_class[: -len("Tensor")] + "Storage"
        if storage_class in STORAGE_DTYPES:
            return storage_class
    raise KeyError(tensor_class)


class T7Table(dict[Any, Any]):
    """A Lua table: keys and values in the order the file holds them.

    Number keys are floats (Lua has one number type); ``1`` and ``1.0`` are the same key.
    """

    def list_items(self) -> list[Any]:
        """The values under keys 1, 2, ... n (a Lua sequence), stopping at the first gap."""
        items: list[Any] = []
        while float(len(items) + 1) in self:
            items.append(self[float(len(items) + 1)])
        return items


@dataclass(eq=False)
class T7Storage:
    """A ``torch.*Storage``: a flat array of one element type.

    Attributes:
        class_name: e.g. ``"torch.FloatStorage"``.
        data: 1-D little-endian numpy array of ``STORAGE_DTYPES[class_name]``.
        version: the class version written in the file (1 for every storage).
    """

    class_name: str
    data: np.ndarray
    version: int = 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, T7Storage):
            return NotImplemented
        if (self.class_name, self.version, self.data.dtype, self.data.shape) != (
                other.class_name, other.version, other.data.dtype, other.data.shape):
            return False
        return _same_elements(self.data, other.data)


def _same_elements(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise-equal elements, except that any NaN equals any NaN (ascii files keep no payload)."""
    bits = np.dtype(f"u{a.dtype.itemsize}")
    same = a.view(bits) == b.view(bits)
    if a.dtype.kind == "f":
        same |= np.isnan(a) & np.isnan(b)
    return bool(same.all())


@dataclass(eq=False)
class T7Tensor:
    """A ``torch.*Tensor``: a strided view of a storage.

    Attributes:
        class_name: e.g. ``"torch.FloatTensor"``.
        size: the sizes, one per dimension (``()`` for an empty tensor).
        stride: the strides in elements, one per dimension.
        storage_offset: 1-based index of the first element in the storage (Lua convention,
            as written in the file and returned by ``tensor:storageOffset()``).
        storage: the storage, None for a tensor that has none (``torch.FloatTensor()``).
        version: the class version written in the file (1 for every tensor).
    """

    class_name: str
    size: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    storage_offset: int = 1
    storage: T7Storage | None = None
    version: int = 1

    def _key(self) -> tuple[Any, ...]:
        return (self.class_name, self.version, self.size, self.stride, self.storage_offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, T7Tensor):
            return NotImplemented
        return self._key() == other._key() and self.storage == other.storage

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type of the tensor's class."""
        return STORAGE_DTYPES[storage_class_of(self.class_name)]

    def numel(self) -> int:
        """Number of elements (0 for a tensor with no dimensions, as in Torch7)."""
        return int(np.prod(self.size)) if self.size else 0

    def view_problem(self) -> str | None:
        """Why the sizes, strides and offset do not fit the storage, None when they do."""
        if len(self.size) != len(self.stride) or min(self.size + self.stride, default=0) < 0:
            return f"{self.class_name} has invalid sizes/strides {self.size}/{self.stride}"
        if self.numel() == 0:
            return None
        if self.storage is None:
            return f"{self.class_name} of size {self.size} has no storage"
        first = self.storage_offset - 1
        last = first + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if first < 0 or last >= self.storage.data.size:
            return (f"{self.class_name} view {self.size}/{self.stride} at offset "
                    f"{self.storage_offset} reaches outside a storage of "
                    f"{self.storage.data.size} elements")
        return None

    def to_numpy(self) -> np.ndarray:
        """A new contiguous array with the tensor's values (shape ``(0,)`` when empty).

        Raises:
            ValueError: the view reaches outside its storage (or has negative strides).
        """
        if self.numel() == 0:
            return np.zeros(self.size if self.size else (0,), dtype=self.dtype)
        problem = self.view_problem()
        if problem is not None or self.storage is None:
            raise ValueError(problem)
        first = self.storage_offset - 1
        item = self.storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[first:], shape=self.size,
            strides=tuple(s * item for s in self.stride), writeable=False)
        return np.array(view, dtype=self.dtype.newbyteorder("="))

    @classmethod
    def from_array(cls, array: np.ndarray, class_name: str | None = None) -> T7Tensor:
        """A contiguous tensor holding a copy of ``array`` (an empty array gives a tensor
        with no dimensions and no storage, as Torch7 saves ``torch.FloatTensor()``).

        Args:
            array: the values.
            class_name: the tensor class; by default from the array's dtype
                (float32 -> FloatTensor, float64 -> DoubleTensor, ...).

        Returns:
            A new ``T7Tensor`` with its own storage.

        Raises:
            KeyError: no tensor class is known for the dtype or name.
        """
        if class_name is None:
            class_name = _TENSOR_CLASS_BY_DTYPE[np.dtype(array.dtype).newbyteorder("<")]
        storage_class = storage_class_of(class_name)
        if array.size == 0:
            return cls(class_name)
        data = np.ascontiguousarray(array, dtype=STORAGE_DTYPES[storage_class]).reshape(-1)
        stride: list[int] = []
        step = 1
        for n in reversed(array.shape):
            stride.insert(0, step)
            step *= n
        return cls(class_name, tuple(int(n) for n in array.shape), tuple(stride), 1,
                   T7Storage(storage_class, data.copy()))


_TENSOR_CLASS_BY_DTYPE = {
    dtype: name[: -len("Storage")] + "Tensor"
    for name, dtype in STORAGE_DTYPES.items() if "Cuda" not in name
}


@dataclass(eq=False)
class T7Object:
    """A torch object other than a tensor or storage, e.g. an ``nn`` module.

    Attributes:
        class_name: e.g. ``"nn.SpatialBatchNormalization"``.
        version: the class version from the ``"V <n>"`` header (0 for files written before
            Torch7 had versions).
        payload: what the class wrote; for Lua classes (all of ``nn``) one table of fields.
    """

    class_name: str
    version: int = 0
    payload: Any = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, T7Object):
            return NotImplemented
        return (self.class_name, self.version) == (other.class_name, other.version) and bool(
            self.payload == other.payload)


@dataclass(eq=False)
class T7Function:
    """A serialized Lua function, kept opaque so it can be written back unchanged.

    Attributes:
        bytecode: the ``string.dump`` of the function.
        upvalues: the table of upvalues that followed it.
        type_tag: 8 (current), 7 (legacy recursive) or 6 (old non-referenced function).
    """

    bytecode: bytes
    upvalues: Any = None
    type_tag: int = 8

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, T7Function):
            return NotImplemented
        return (self.type_tag, self.bytecode) == (other.type_tag, other.bytecode) and bool(
            self.upvalues == other.upvalues)
