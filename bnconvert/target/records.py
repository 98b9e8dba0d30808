"""The mapped weights as converted-layer records, so the ordinary writers and manifest write
them: one record per target module, keyed by the target's own module path (``TargetNames``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..records import ConvertedLayer

if TYPE_CHECKING:
    import numpy as np

    from .plan import TargetMapping

__all__ = ["MappedModule", "TargetNames", "mapped_records"]


@dataclass(frozen=True, eq=False)
class MappedModule(ConvertedLayer):
    """One target module's tensors, as the mapping gives them.

    Attributes:
        target: the module's path in the target model (the key).
        module_class: its class name.
        arrays: its state_dict entries without the key.
        row: the mapping table's row (Caffe layers, keys and shapes, how matched, adapted).
    """

    kind: ClassVar[str] = "mapped"
    target: str
    module_class: str
    arrays: dict[str, np.ndarray]
    row: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        """The target module's path."""
        return self.target

    @property
    def module(self) -> str:
        """The target module's class."""
        return self.module_class

    def tensors(self) -> dict[str, np.ndarray]:
        """The module's state_dict entries."""
        return dict(self.arrays)

    def describe(self) -> dict[str, Any]:
        """Its mapping-table row."""
        return {"module": self.module_class, **self.row}


@dataclass(frozen=True)
class TargetNames:
    """The naming policy of mapped weights: the target's own module paths."""

    def key(self, record: ConvertedLayer) -> str:
        """``record.name`` (a target module path) as it is."""
        return record.name


def mapped_records(mapping: TargetMapping, classes: dict[str, str]) -> list[ConvertedLayer]:
    """One ``MappedModule`` per row of the mapping's table.

    Args:
        classes: target module path -> class name.
    """
    state = mapping.weights.state_dict
    out: list[ConvertedLayer] = []
    for row in mapping.table():
        target = row["target"]
        arrays = {key[len(target) + 1:]: state[key] for key in row["keys"]}
        out.append(MappedModule(target, classes.get(target, "?"), arrays, row,
                                tuple(f"{target}: {a}" for a in row["adaptations"])))
    return out


def table_lines(records: Sequence[ConvertedLayer]) -> list[str]:
    """The mapping table as lines for ``-v``: Caffe layers -> target module (adaptations)."""
    lines = []
    for record in records:
        if isinstance(record, MappedModule):
            extra = f"  ({'; '.join(record.row['adaptations'])})" if record.row["adaptations"] \
                else ""
            lines.append(f"{' + '.join(record.row['caffe_layers'])} -> {record.target} "
                         f"[{record.row['matched_by']}]{extra}")
    return lines
