"""One call for the CLI/API (``convert --target``, ``map_to``): units of both sides, ``--map``
entries, the structural match, the target state_dict and its mapping table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..read.net import Net
from .caffe_side import caffe_units
from .mapfile import resolve_map
from .match import Matching, match_units
from .state_dict import CaffeTensors, MappedWeights, build_state_dict
from .torch_side import state_dict_spec, target_units

__all__ = ["TargetMapping", "map_onto"]


@dataclass(frozen=True)
class TargetMapping:
    """A complete mapping of a Caffe net onto a target model, and the weights it gives."""

    matching: Matching
    weights: MappedWeights

    def table(self) -> list[dict[str, Any]]:
        """The mapping table, JSON-ready (for the manifest and ``-v``): per target module its
        Caffe layers, state_dict keys with shapes, how it was matched and what was adapted."""
        by_target = {m.target.name: m for m in self.matching.matches}
        state = self.weights.state_dict
        return [{"caffe_layers": list(row.caffe_layers), "target": row.target,
                 "keys": {k: list(state[k].shape) for k in row.keys},
                 "matched_by": "map" if by_target[row.target].by_map else "structure",
                 "adaptations": list(row.adaptations)} for row in self.weights.rows]


def map_onto(model: nn.Module, net: Net, tensors: CaffeTensors,
             entries: Mapping[str, str] | None = None,
             flavour: str | None = None) -> TargetMapping:
    """Map a Caffe net's weights onto ``model``.

    Args:
        model: the target, already constructed.
        net: the typed Caffe net (``load_net``).
        tensors: Caffe layer -> tensor name -> array in PyTorch's layout (a BN chain under its
            BatchNorm's name), e.g. ``{r.name: r.tensors() for r in records}``.
        entries: ``--map`` entries (``read_map``), Caffe layer/regex -> target module.
        flavour: a ``--flavor`` override for BN-like layers.

    Returns:
        The complete ``TargetMapping``; its ``weights.state_dict`` loads strictly into
        ``model`` (after ``torch_side.to_tensors``).

    Raises:
        MatchError: the structures do not match (both sides' unmatched units listed), a
            ``--map`` entry is wrong, or a bias has no BatchNorm to absorb it.
        TargetTraceError: the model cannot be traced.
        NumericError, BlobError, MissingLayerError: from the tensors.
    """
    caffe, target = caffe_units(net, flavour), target_units(model)
    fixed = resolve_map(entries, caffe, target) if entries else None
    matching = match_units(caffe, target, fixed).require_complete()
    return TargetMapping(matching, build_state_dict(matching, tensors, state_dict_spec(model)))
