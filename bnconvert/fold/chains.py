"""Pair each BatchNorm with the Scale (and Bias) that carry its affine parameters, by
following blob versions through the graph in layer order (in-place layers included).

A Scale joins a chain only when it is the *sole* reader of the BatchNorm's output and has the
per-channel form (one bottom, axis 1, num_axes 1); a Bias likewise after the Scale. Layer names
are never consulted. Anything that looks like a chain member but cannot be folded is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedLayerError
from ..flavours import bn_like_types, detect_flavour, flavour_by_id
from ..graph import BlobGraph, Version, infer_blob_ranks
from ..layers.learned import BiasParams, ScaleParams
from ..read.net import Layer, Net

__all__ = ["BatchNormChain", "ChainAnalysis", "BlobGraph", "pair_batch_norm_chains",
           "FORK_AFFINE"]

#: Fork layers that apply a learned affine after a BatchNorm, and why bnconvert does not fold
#: them. The BatchNorm before one is converted on its own (non-affine); the fork layer's
#: weights are not in the output.
FORK_AFFINE = {
    "EltwiseAffine": (
        "a layer of an unmerged Caffe pull request (BVLC/caffe#2996, y = slope * x + bias, "
        "replaced upstream by Scale with bias_term) whose blob layout and channel sharing "
        "bnconvert has no reference output for; it is not folded into the BatchNorm, port its "
        "slope and bias separately (or rewrite it as a Scale layer with bias_term: true)"),
}


@dataclass(frozen=True, eq=False)
class BatchNormChain:
    """A BatchNorm and the layers folded into it.

    Attributes:
        flavour: the BN implementation's id (``bnconvert.flavours``), ``"unrecognized"`` when
            its blobs fit no known layout (``problems`` says why).
        rank: rank of the BatchNorm's input blob, None if the net does not tell.
        producer: the layer that wrote the BatchNorm's input (None for a net input).
        notes: why a neighbouring layer was not folded (information, not an error).
        problems: layers inside the chain that cannot be folded; converting fails on them.
    """

    batch_norm: Layer
    scale: Layer | None
    bias: Layer | None
    rank: int | None
    flavour: str = "bvlc"
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    producer: Layer | None = None

    def layers(self) -> tuple[Layer, ...]:
        """The chain's layers in graph order."""
        return tuple(x for x in (self.batch_norm, self.scale, self.bias) if x is not None)


@dataclass(frozen=True, eq=False)
class ChainAnalysis:
    """All BatchNorm chains of a net, and the Scale/Bias layers no BatchNorm claimed."""

    chains: tuple[BatchNormChain, ...]
    standalone: tuple[Layer, ...]
    graph: BlobGraph


def _per_channel_problem(layer: Layer, rank: int | None) -> str | None:
    params = layer.params
    if not isinstance(params, ScaleParams | BiasParams):
        return None
    axis, num_axes = params.axis, params.num_axes
    if axis < 0 and rank is not None:
        axis %= rank
    if axis != 1 or num_axes != 1:
        return (f"layer {layer.name!r} ({layer.type}) has axis {axis}, num_axes {num_axes}: only "
                "the per-channel form (axis 1, num_axes 1) folds into a BatchNorm")
    return None


def _follow(graph: BlobGraph, head: Layer, wanted: str, rank: int | None,
            notes: list[str], problems: list[str]) -> Layer | None:
    reader, readers = graph.sole_reader(head)
    typed = [r for r in readers if r.type == wanted]
    if not typed:
        return None
    if reader is None:
        others = ", ".join(repr(r.name) for r in readers if r.type != wanted)
        notes.append(f"{wanted} {typed[0].name!r} not folded: {head.name!r}'s output is also "
                     f"read by {others}, and folding would change their input")
        return None
    if len(reader.bottoms) != 1:
        notes.append(f"{wanted} {reader.name!r} has {len(reader.bottoms)} bottoms (it multiplies "
                     "by another blob, e.g. SE gating): not part of the BatchNorm")
        return None
    problem = _per_channel_problem(reader, rank)
    if problem:
        problems.append(problem)
        return None
    return reader


def _chain_of(layer: Layer, net: Net, graph: BlobGraph, ranks: dict[Version, int | None],
              flavour: str | None) -> BatchNormChain:
    """The chain that starts at the BN-like ``layer``."""
    inputs = graph.inputs[layer.index]
    rank = ranks.get(inputs[0]) if inputs else None
    notes: list[str] = []
    problems: list[str] = []
    try:
        kind = detect_flavour(layer, flavour).id
    except UnsupportedLayerError as exc:
        kind = "unrecognized"
        problems.append(str(exc))
    found = flavour_by_id(kind)
    scale = bias = None
    if found is not None and not found.fused_affine(layer):
        scale = _follow(graph, layer, "Scale", rank, notes, problems)
    if scale is not None:
        bias = _follow(graph, scale, "Bias", rank, notes, problems)
    last = bias or scale or layer
    notes.extend(f"{r.type} {r.name!r} after {last.name!r} is not folded (a fork layer with no "
                 "reference semantics): the BatchNorm is converted without it, port it "
                 "separately" for r in graph.sole_reader(last)[1] if r.type in FORK_AFFINE)
    problems.extend(f"layer {x.name!r} ({x.type}): {x.problem}"
                    for x in (layer, scale, bias) if x is not None and x.problem)
    return BatchNormChain(layer, scale, bias, rank, kind, tuple(notes), tuple(problems),
                          graph.producer_of(layer))


def pair_batch_norm_chains(net: Net, flavour: str | None = None) -> ChainAnalysis:
    """Find every BatchNorm → Scale → Bias chain of ``net`` (and every fork BN layer).

    Args:
        flavour: a ``--flavor`` override for every BN-like layer.

    Returns:
        The chains in net order and the standalone Scale/Bias layers.

    Example:
        >>> analysis = pair_batch_norm_chains(EXAMPLE_NET)
        >>> [(c.batch_norm.name, c.scale and c.scale.name) for c in analysis.chains][:2]
        [('bn2a_branch1', 'scale2a_branch1'), ('bn2a_branch2a', 'scale2a_branch2a')]
    """
    graph = BlobGraph(net)
    ranks = infer_blob_ranks(net)
    chains = [_chain_of(layer, net, graph, ranks, flavour) for layer in net.layers
              if layer.type in bn_like_types()]
    claimed = {x.index for chain in chains for x in chain.layers()}
    standalone = tuple(x for x in net.layers
                       if x.type in ("Scale", "Bias") and x.index not in claimed)
    return ChainAnalysis(tuple(chains), standalone, graph)
