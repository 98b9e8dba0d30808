"""The target's state_dict from a matching and the Caffe side's tensors (PyTorch layouts, by
Caffe layer name, e.g. from ``bnconvert.load_weights``' records: ``{layer: record.tensors()}``).

Every key the target's state_dict has is produced, so ``load_state_dict(strict=True)`` accepts
it; the adaptations made on the way (bias folds, eps moved into the variance, reshapes, fills
of ones/zeros) are listed. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import BlobError, MissingLayerError
from .adapt import adapt_eps, fold_bias_into_running_mean, same_eps
from .match import Match, MatchError, Matching
from .units import shape_text

__all__ = ["KeySpec", "MappedWeights", "MappingRow", "build_state_dict"]

KeySpec = Mapping[str, tuple[tuple[int, ...], str]]  #: target key -> (shape, numpy dtype)
CaffeTensors = Mapping[str, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class MappingRow:
    """One line of the mapping table: a Caffe unit, its target module, what was adapted."""

    caffe_layers: tuple[str, ...]
    target: str
    keys: tuple[str, ...]
    adaptations: tuple[str, ...]


@dataclass(frozen=True)
class MappedWeights:
    """The target state_dict (numpy arrays in the target's dtypes) and the mapping table."""

    state_dict: dict[str, np.ndarray]
    rows: tuple[MappingRow, ...]

    def adaptations(self) -> tuple[str, ...]:
        """Every adaptation, prefixed with its target module."""
        return tuple(f"{r.target}: {a}" for r in self.rows for a in r.adaptations)


def _tensor(tensors: CaffeTensors, match: Match, name: str) -> np.ndarray:
    layer = match.caffe.name
    if layer not in tensors:
        raise MissingLayerError(f"no weights for Caffe layer {layer!r} (mapped onto "
                                f"{match.target.name!r})")
    if name not in tensors[layer]:
        raise BlobError(f"Caffe layer {layer!r} has no tensor {name!r} "
                        f"(has {', '.join(tensors[layer]) or 'none'})")
    return np.asarray(tensors[layer][name])


def _fit(array: np.ndarray, match: Match, name: str, spec: KeySpec) -> np.ndarray:
    key = f"{match.target.name}.{name}"
    shape, dtype = spec[key]
    if array.shape != shape and not (match.reshape and array.size == int(np.prod(shape))):
        raise BlobError(f"Caffe layer {match.caffe.name!r} tensor {name!r} has shape "
                        f"{shape_text(array.shape)}, target {key} needs {shape_text(shape)}")
    return np.ascontiguousarray(array.reshape(shape).astype(dtype))


def _bias_home(match: Match, matching: Matching) -> str:
    """The target BN that absorbs ``match``'s Caffe bias, or MatchError."""
    caffe_bn = {m.target.index: m.caffe.index for m in matching.matches}
    bn = match.target.feeds
    if bn is not None and match.caffe.feeds is not None and caffe_bn.get(bn) == match.caffe.feeds:
        return next(m.target.name for m in matching.matches if m.target.index == bn)
    raise MatchError(f"Caffe layer {match.caffe.name!r} has a bias, target module "
                     f"{match.target.name!r} has none, and no BatchNorm reads both outputs "
                     "directly to absorb it: give the target module bias=True")


def _learned(match: Match, tensors: CaffeTensors, spec: KeySpec, matching: Matching,
             folds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    out, notes = {}, ["weight reshaped (1x1 convolution <-> Linear)"] if match.reshape else []
    for name in match.target.shapes:
        if name in match.caffe.shapes:
            out[name] = _fit(_tensor(tensors, match, name), match, name, spec)
        else:
            shape, dtype = spec[f"{match.target.name}.{name}"]
            out[name] = np.zeros(shape, dtype)
            notes.append(f"{name} set to zeros (Caffe layer has none)")
    if "bias" in match.caffe.shapes and "bias" not in match.target.shapes:
        bias = _tensor(tensors, match, "bias")
        if np.any(bias != 0):
            home = _bias_home(match, matching)
            folds[home] = bias
            notes.append(f"bias folded into {home}.running_mean (running_mean - bias)")
        else:
            notes.append("all-zero bias dropped")
    return out, notes


def _batch_norm(match: Match, tensors: CaffeTensors, spec: KeySpec,
                folds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    out: dict[str, np.ndarray] = {}
    notes: list[str] = []
    mean = _tensor(tensors, match, "running_mean").astype(np.float64)
    var = _tensor(tensors, match, "running_var").astype(np.float64)
    if match.target.name in folds:
        mean = fold_bias_into_running_mean(folds[match.target.name], mean)
    eps_caffe, eps_target = match.caffe.eps, match.target.eps
    if eps_caffe is not None and eps_target is not None and not same_eps(eps_caffe, eps_target):
        var = adapt_eps(var, eps_caffe, eps_target, match.caffe.name)
        notes.append(f"eps {eps_caffe:.9g} -> {eps_target:.9g}: running_var + "
                     f"{eps_caffe - eps_target:.9g}")
    values = {"running_mean": mean, "running_var": var}
    for name in match.target.shapes:
        if name in values or name in match.caffe.shapes:
            out[name] = _fit(values.get(name, _tensor(tensors, match, name)), match, name, spec)
        else:
            shape, dtype = spec[f"{match.target.name}.{name}"]
            out[name] = (np.ones if name == "weight" else np.zeros)(shape, dtype)
            notes.append(f"{name} set to {'ones' if name == 'weight' else 'zeros'} (the Caffe "
                         f"chain has no {'Scale' if name == 'weight' else 'bias term'})")
    return out, notes


def build_state_dict(matching: Matching, tensors: CaffeTensors, spec: KeySpec) -> MappedWeights:
    """The target's state_dict for a complete matching.

    Args:
        matching: a complete ``Matching`` (``match_units`` + ``require_complete``).
        tensors: Caffe layer name -> tensor name -> array in PyTorch's layout (a BN chain under
            its BatchNorm's name with ``running_mean``, ``running_var``, ``weight``, ``bias``).
        spec: every key of the target's state_dict with its shape and dtype.

    Returns:
        The state_dict (every key of ``spec``) and the mapping table.

    Raises:
        MatchError: the matching is incomplete, or a bias has no BatchNorm to absorb it.
        MissingLayerError, BlobError: a Caffe tensor is missing or has the wrong shape.
    """
    matching.require_complete()
    folds: dict[str, np.ndarray] = {}
    done: dict[int, tuple[dict[str, np.ndarray], list[str]]] = {}
    for match in matching.matches:
        if match.target.kind != "batch_norm":
            done[match.target.index] = _learned(match, tensors, spec, matching, folds)
    for match in matching.matches:
        if match.target.kind == "batch_norm":
            done[match.target.index] = _batch_norm(match, tensors, spec, folds)
    state: dict[str, np.ndarray] = {}
    rows = []
    for match in sorted(matching.matches, key=lambda m: m.target.index):
        entries, notes = done[match.target.index]
        state.update({f"{match.target.name}.{k}": v for k, v in entries.items()})
        rows.append(MappingRow(match.caffe.layers, match.target.name,
                               tuple(f"{match.target.name}.{k}" for k in entries), tuple(notes)))
    for key, (shape, dtype) in spec.items():
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = np.zeros(shape, dtype)
    missing = [k for k in spec if k not in state]
    if missing:
        raise MatchError(f"the mapping leaves target keys unset: {', '.join(missing[:8])}")
    return MappedWeights({k: state[k] for k in spec}, tuple(rows))
