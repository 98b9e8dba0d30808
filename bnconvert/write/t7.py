"""Torch7 output: each ``FoldedBatchNorm`` as the ``nn`` module real Torch7 saves in evaluate mode.

The module is what ``torch.save`` writes for ``nn.SpatialBatchNormalization(C, eps, momentum,
affine)`` set to evaluate mode, with Caffe's statistics and affine parameters, after a forward
and ``clearState()`` (the state of ``tests/data/torch7/chain/``): fields ``_type``, ``affine``,
``eps``, ``momentum`` (the record's: Torch7's momentum has PyTorch's meaning; a cumulative
average gets ``1/(s + 1)``, ``fold.continuation.torch7_momentum``), ``train`` (false),
``running_mean``, ``running_var``; when affine, ``weight``, ``bias`` and zeroed
``gradWeight``, ``gradBias``; empty ``output``, ``gradInput``, ``save_mean``, ``save_std``.
A non-affine module has no weight, bias or grad fields at all.

Torch7's evaluate-mode forward is ``y = ((x - mean) * invstd) * weight + bias`` with
``invstd = 1 / sqrt(running_var + eps)``: the same function as Caffe's BatchNorm (+Scale/+Bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import OutputError, ParseError
from ..fold.continuation import torch7_momentum
from ..records import ConvertedLayer, FoldedBatchNorm
from ..t7 import T7Object, T7Table, T7Tensor, dumps_t7, load_t7
from .registry import LoadedFile, WriteOptions, loads, registers

__all__ = ["batch_norm_module", "read_t7_batch_norms", "load_t7_file", "write_t7"]

_MODULE_BY_RANK = {
    2: ("nn.BatchNormalization", 2),
    3: ("nn.BatchNormalization", 2),
    4: ("nn.SpatialBatchNormalization", 2),
    None: ("nn.SpatialBatchNormalization", 2),
    5: ("nn.VolumetricBatchNormalization", 1),
}
_TENSOR_CLASS = {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor"}
_SEQUENTIAL = ("nn.Sequential", 1)
_BATCH_NORM_CLASSES = frozenset(
    f"{package}.{kind}BatchNormalization"
    for package in ("nn", "cudnn") for kind in ("", "Spatial", "Volumetric"))


@registers("t7")
def write_t7(records: Sequence[ConvertedLayer], stream: BinaryIO,
             options: WriteOptions) -> None:
    """Write the records as Torch7 ``nn`` batch normalization modules (binary ``torch.save``).

    Args:
        records: the folded BNs, in graph order.
        stream: binary output; written once, after every record has been checked.
        options: ``dtype`` picks FloatTensor (``"float32"``) or DoubleTensor (``"float64"``);
            ``t7_layout`` ``"table"`` writes ``{[prefix .. key] = module}``, ``"sequential"``
            an ``nn.Sequential`` of the modules in record order (``prefix`` unused).

    Raises:
        OutputError: an unknown dtype or layout, duplicate keys, or a record whose rank or
            array shapes no Torch7 module can hold.

    Example:
        >>> path = getfixture("tmp_path") / "bn.t7"
        >>> with open(path, "wb") as out:
        ...     write_t7(EXAMPLE_RECORDS, out, WriteOptions(t7_layout="sequential"))
        >>> load_t7(path).class_name
        'nn.Sequential'
    """
    tensor_class = _TENSOR_CLASS.get(options.dtype)
    if tensor_class is None:
        raise OutputError(f"Torch7 output: unknown dtype {options.dtype!r}; use "
                          f"{' or '.join(sorted(_TENSOR_CLASS))}")
    batch_norms = _batch_norms_only(records)
    modules = [batch_norm_module(record, tensor_class) for record in batch_norms]
    if options.t7_layout == "table":
        top: Any = _keyed_table(batch_norms, modules, options)
    elif options.t7_layout == "sequential":
        top = _sequential(modules, tensor_class)
    else:
        raise OutputError(f"Torch7 output: unknown layout {options.t7_layout!r}; use 'table' "
                          "or 'sequential'")
    stream.write(dumps_t7(top))


def batch_norm_module(record: FoldedBatchNorm, tensor_class: str) -> T7Object:
    """The evaluate-mode ``nn`` module Torch7 would save for one record.

    Args:
        record: the folded BN; rank 2 or 3 gives ``nn.BatchNormalization``, 4 or unknown
            ``nn.SpatialBatchNormalization``, 5 ``nn.VolumetricBatchNormalization``.
        tensor_class: ``"torch.FloatTensor"`` or ``"torch.DoubleTensor"``.

    Returns:
        A ``T7Object`` whose payload is the module's field table.

    Raises:
        OutputError: the rank is not 2..5 (or None), or an array is not of shape (channels,).
    """
    if record.rank not in _MODULE_BY_RANK:
        raise OutputError(f"{record.name}: Torch7 has no batch normalization module for a "
                          f"rank-{record.rank} input; expected rank 2, 3, 4 or 5")
    class_name, version = _MODULE_BY_RANK[record.rank]
    fields = T7Table(_type=tensor_class, affine=record.affine, eps=float(record.eps),
                     momentum=float(torch7_momentum(record)), train=False,
                     running_mean=_vector(record, "running_mean", tensor_class),
                     running_var=_vector(record, "running_var", tensor_class))
    if record.affine:
        fields["weight"] = _vector(record, "weight", tensor_class)
        fields["bias"] = _vector(record, "bias", tensor_class)
        fields["gradWeight"] = _zeros(record.channels, tensor_class)
        fields["gradBias"] = _zeros(record.channels, tensor_class)
    for name in ("output", "gradInput", "save_mean", "save_std"):
        fields[name] = T7Tensor(tensor_class)
    return T7Object(class_name, version, fields)


def _vector(record: FoldedBatchNorm, name: str, tensor_class: str) -> T7Tensor:
    values = getattr(record, name)
    if values is None or np.shape(values) != (record.channels,):
        raise OutputError(f"{record.name}: {name} must have shape ({record.channels},), found "
                          f"{None if values is None else np.shape(values)}")
    dtype = np.float64 if tensor_class == "torch.DoubleTensor" else np.float32
    return T7Tensor.from_array(np.asarray(values, dtype=dtype), tensor_class)


def _zeros(channels: int, tensor_class: str) -> T7Tensor:
    dtype = np.float64 if tensor_class == "torch.DoubleTensor" else np.float32
    return T7Tensor.from_array(np.zeros(channels, dtype=dtype), tensor_class)


def _batch_norms_only(records: Sequence[ConvertedLayer]) -> list[FoldedBatchNorm]:
    """Torch7 output holds batch normalizations; any other kind is refused, by name."""
    others = [f"{r.name!r} ({r.kind})" for r in records if not isinstance(r, FoldedBatchNorm)]
    if others:
        raise OutputError(f"Torch7 output holds batch normalization modules only; not: "
                          f"{', '.join(others)}")
    return [r for r in records if isinstance(r, FoldedBatchNorm)]


def _keyed_table(records: Sequence[FoldedBatchNorm], modules: list[T7Object],
                 options: WriteOptions) -> T7Table:
    table = T7Table()
    for record, module in zip(records, modules, strict=True):
        key = options.key(record)
        if key in table:
            raise OutputError(f"Torch7 output: two batch normalizations have the key {key!r}")
        table[key] = module
    return table


def _sequential(modules: list[T7Object], tensor_class: str) -> T7Object:
    """``nn.Sequential`` as ``add`` leaves it: its gradInput is the first module's, its output
    the last module's (shared objects in the file, as in the real sample)."""
    fields = T7Table(_type=tensor_class, train=False,
                     modules=T7Table((float(i), m) for i, m in enumerate(modules, start=1)))
    fields["output"] = modules[-1].payload["output"] if modules else T7Tensor(tensor_class)
    fields["gradInput"] = modules[0].payload["gradInput"] if modules else T7Tensor(tensor_class)
    return T7Object(*_SEQUENTIAL, fields)


def read_t7_batch_norms(path: str | Path) -> dict[str, dict[str, Any]]:
    """The batch normalization modules a ``.t7`` file holds, as Torch7 sees them after loading.

    Finds modules at the top level (key ``"root"``), in a table (by key) and in ``nn``
    containers (by 1-based index), nested paths joined with ``"."``. A class-version-1 module
    with ``running_std`` is converted as ``nn`` does on load: ``running_var = running_std^-2 -
    eps`` in the tensor's type.

    Args:
        path: a ``.t7`` file (binary or ascii).

    Returns:
        Per path: ``class_name``, ``version``, ``eps`` (float), ``momentum`` (float, None when
        absent), ``affine`` (bool), ``running_mean``, ``running_var``, ``weight``, ``bias``
        (numpy; weight and bias None when not affine).

    Raises:
        ParseError: the file is malformed, or a module lacks a field Torch7 needs.

    Example:
        >>> path = getfixture("tmp_path") / "bn.t7"
        >>> with open(path, "wb") as out:
        ...     write_t7(EXAMPLE_RECORDS, out, WriteOptions())
        >>> read_t7_batch_norms(path)["bn2a_branch1"]["eps"]
        9.999999747378752e-06
    """
    found: dict[str, dict[str, Any]] = {}
    _collect(load_t7(path), "", found, str(path))
    return found


@loads("t7")
def load_t7_file(path: str) -> LoadedFile:
    """A ``.t7`` file's batch normalization modules by path (``read_t7_batch_norms``)."""
    return LoadedFile(path, "t7", read_t7_batch_norms(path))


def _collect(value: Any, where: str, found: dict[str, dict[str, Any]], path: str) -> None:
    if isinstance(value, T7Object) and value.class_name in _BATCH_NORM_CLASSES:
        found[where or "root"] = _batch_norm_fields(value, where or "root", path)
    elif isinstance(value, T7Object) and isinstance(value.payload, T7Table):
        modules = value.payload.get("modules")
        if isinstance(modules, T7Table):
            for index, module in enumerate(modules.list_items(), start=1):
                _collect(module, f"{where}.{index}" if where else str(index), found, path)
    elif isinstance(value, T7Table):
        for key, item in value.items():
            name = str(int(key)) if isinstance(key, float) and key.is_integer() else str(key)
            _collect(item, f"{where}.{name}" if where else name, found, path)


def _batch_norm_fields(module: T7Object, where: str, path: str) -> dict[str, Any]:
    fields = module.payload if isinstance(module.payload, T7Table) else T7Table()

    def tensor(name: str) -> np.ndarray:
        value = fields.get(name)
        if not isinstance(value, T7Tensor):
            raise ParseError(f"{path}: {where} ({module.class_name}): field {name!r} is "
                             f"{'missing' if value is None else type(value).__name__}, "
                             "expected a tensor")
        return value.to_numpy()

    eps = fields.get("eps")
    if not isinstance(eps, float):
        raise ParseError(f"{path}: {where} ({module.class_name}): eps is {eps!r}, "
                         "expected a number")
    affine = fields.get("weight") is not None
    if module.version < 2 and "running_std" in fields:
        std = tensor("running_std")
        running_var = np.power(std, std.dtype.type(-2)) + std.dtype.type(-eps)
    else:
        running_var = tensor("running_var")
    momentum = fields.get("momentum")
    return {"class_name": module.class_name, "version": module.version, "eps": eps,
            "momentum": momentum if isinstance(momentum, float) else None, "affine": affine,
            "running_mean": tensor("running_mean"),
            "running_var": running_var, "weight": tensor("weight") if affine else None,
            "bias": tensor("bias") if affine else None}
