"""Which module of the converted file stands for which Caffe BatchNorm, and with what eps.

With a manifest (``OUTPUT.json``): its entries name the Caffe BatchNorm layer, the key, the eps,
the module class and the rank. Without one (a state_dict from another tool with bnconvert's key
names): the key is ``naming.key_for_layer_name(name)``, eps and rank come from the Caffe files.
A Torch7 module always runs with the eps it stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..naming import key_for_layer_name
from ..records import batch_norm_class
from ..write.manifest import manifest_entries
from ..write.registry import LoadedFile
from .candidate import ConvertedBatchNorm
from .reference_forks import ReferenceChain

__all__ = ["Match", "match_chain", "key_in_manifest", "unclaimed_keys"]

@dataclass(frozen=True, eq=False)
class Match:
    """The converted module of one chain, or why there is none.

    Attributes:
        key: where the chain's module is (or was looked for) in the file.
        module: the module, None when missing.
        rank: the rank to run it with (manifest, else Caffe's, else 4).
        problem: why ``module`` is None.
        notes: how the match was made, when not by manifest key.
    """

    key: str
    module: ConvertedBatchNorm | None
    rank: int
    problem: str | None = None
    notes: tuple[str, ...] = ()


def _manifest_entries(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    return manifest_entries(manifest, "batch_norm")


def match_chain(caffe: ReferenceChain, index: int, converted: LoadedFile,
                manifest: dict[str, Any] | None, chain_count: int) -> Match:
    """Find ``caffe``'s module in ``converted`` (``index``: the chain's position in the net)."""
    entries = _manifest_entries(manifest)
    position = next((i for i, e in enumerate(entries)
                     if (e.get("caffe_layers") or {}).get("batch_norm") == caffe.batch_norm), None)
    entry = entries[position] if position is not None else None
    rank = _rank(entry, caffe)
    if manifest is not None and entry is None:
        return Match(key_for_layer_name(caffe.batch_norm), None, rank,
                     f"the manifest lists no module for Caffe layer {caffe.batch_norm!r}")
    key = str(entry["key"]) if entry is not None else key_for_layer_name(caffe.batch_norm)
    notes: list[str] = []
    if converted.format == "t7":
        key, note = _t7_path(key, position, index, converted, manifest, chain_count)
        notes.extend([note] if note else [])
    fields = converted.entries.get(key)
    if fields is None or fields.get("running_mean") is None:
        what = "module" if converted.format == "t7" else f"'{key}.running_mean'"
        return Match(key, None, rank, f"no {what} in {converted.path}")
    if converted.format == "t7":
        tensors = {k: fields[k] for k in ("running_mean", "running_var", "weight", "bias")
                   if fields.get(k) is not None}
        module = ConvertedBatchNorm(key, "torch7", str(fields["class_name"]), tensors,
                                    float(fields["eps"]), "the .t7 module")
    elif entry is not None:
        module = ConvertedBatchNorm(key, "pytorch", str(entry.get("module")), dict(fields),
                                    float(entry["eps"]), "the manifest")
    else:
        module = ConvertedBatchNorm(key, "pytorch", batch_norm_class(rank),
                                    dict(fields), caffe.module_eps, "the Caffe files")
    return Match(key, module, rank, None, tuple(notes))


def key_in_manifest(batch_norm: str, manifest: dict[str, Any] | None) -> str:
    """The key the manifest gives a Caffe BatchNorm, else bnconvert's key for its name."""
    for entry in _manifest_entries(manifest):
        if (entry.get("caffe_layers") or {}).get("batch_norm") == batch_norm:
            return str(entry.get("key"))
    return key_for_layer_name(batch_norm)


def _rank(entry: dict[str, Any] | None, caffe: ReferenceChain) -> int:
    rank = entry.get("rank") if entry is not None else None
    if not isinstance(rank, int):
        rank = caffe.rank
    return rank if rank in (2, 3, 4, 5) else 4


def _t7_path(key: str, position: int | None, index: int, converted: LoadedFile,
             manifest: dict[str, Any] | None, chain_count: int) -> tuple[str, str | None]:
    """The module path in a ``.t7``: the key for a table, the 1-based index in a Sequential."""
    if manifest is not None and manifest.get("t7_layout") == "sequential":
        return str((position or 0) + 1), None
    if key in converted.entries or manifest is not None:
        return key, None
    paths = list(converted.entries)
    if paths == [str(i) for i in range(1, len(paths) + 1)] and len(paths) == chain_count:
        return str(index + 1), (f"matched by position: module {index + 1} of the nn.Sequential "
                                "(no manifest, no key)")
    return key, None


def unclaimed_keys(converted: LoadedFile, claimed: set[str]) -> list[str]:
    """BN modules of the file that no Caffe BatchNorm accounts for."""
    return sorted(k for k, fields in converted.entries.items()
                  if k not in claimed and fields.get("running_mean") is not None)
