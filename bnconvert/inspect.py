"""What ``bnconvert inspect`` reports: every BN chain with its layers, flavour, channels, eps,
scale factor and pairing; every Scale/Bias that is not part of a chain, and why; the layers
bnconvert does not convert, and why; plus what the schema or bnconvert does not know.
Never imports torch.

Fork layers that follow a BatchNorm and carry an affine of their own (``EltwiseAffine``) are
*not* folded: bnconvert converts the BatchNorm alone (non-affine, exactly what that layer
computes) and lists the fork layer under ``not_converted`` with the reason (``FORK_AFFINE``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import BnConvertError
from .flavours import Flavour, bn_like_types, flavour_by_id
from .fold.chains import FORK_AFFINE, BatchNormChain, BlobGraph, pair_batch_norm_chains
from .fold.checks import check_chain
from .layers import bvlc_layer_types
from .naming import key_for_layer_name
from .read.fork_fields import is_read_fork_field
from .read.net import Layer, Net

__all__ = ["ChainRow", "AffineRow", "UnconvertedRow", "InspectReport", "inspect_net",
           "chain_kind", "FORK_AFFINE"]

@dataclass(frozen=True)
class ChainRow:
    """One BN chain as ``inspect`` shows it (values None where the files do not tell).

    Attributes:
        flavour: the flavour's title; ``flavour_id`` its id (``bvlc``...; ``bnconvert.flavours``).
        convertible: False when ``convert`` fails on the chain (``problems`` says why).
    """

    key: str
    batch_norm: str
    scale: str | None
    bias: str | None
    flavour: str
    channels: int | None
    rank: int | None
    eps: float | None
    scale_factor: float | None
    affine: bool
    use_global_stats: bool
    convertible: bool
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    flavour_id: str = "bvlc"
    layer_type: str = "BatchNorm"


@dataclass(frozen=True)
class AffineRow:
    """A Scale or Bias layer that no BatchNorm chain claimed, and why."""

    layer: str
    type: str
    reason: str


@dataclass(frozen=True)
class UnconvertedRow:
    """A layer bnconvert does not convert although it sits in or right after a BN chain.

    Attributes:
        after: the chain layer it follows (fork affine layers), None for a chain member.
    """

    layer: str
    type: str
    reason: str
    after: str | None = None


@dataclass(frozen=True)
class InspectReport:
    """Everything ``inspect`` prints; ``to_json`` gives the ``--json`` form.

    Attributes:
        flavour_counts: ``chain_kind`` -> number of chains, e.g.
            ``{"BVLC BatchNorm + Scale": 53}``.
    """

    files: tuple[str, ...]
    chains: tuple[ChainRow, ...]
    standalone_affine: tuple[AffineRow, ...]
    unknown_fields: tuple[str, ...]
    unknown_layer_types: dict[str, int] = field(default_factory=dict)
    missing_weights: tuple[str, ...] = ()
    unused_weights: tuple[str, ...] = ()
    flavour_counts: dict[str, int] = field(default_factory=dict)
    not_converted: tuple[UnconvertedRow, ...] = ()
    refused_by_caffe: str | None = None
    definition_problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def chain_kind(row: ChainRow) -> str:
    """What a chain is, in words: flavour title plus the layers folded into it.

    Example:
        >>> chain_kind(inspect_net(EXAMPLE_NET).chains[0])
        'BVLC BatchNorm + Scale'
    """
    if row.flavour_id == "bvlc" and row.scale is None:
        return "BVLC BatchNorm (no Scale)"
    return " + ".join(x for x in (row.flavour, row.scale and "Scale", row.bias and "Bias") if x)


def _row(chain: BatchNormChain, notes: list[str]) -> ChainRow:
    """What the chain's flavour says of its layer: the same rules ``convert`` and ``verify``
    apply (eps, batch statistics, the flavour's notes, the scale factor)."""
    bn = chain.batch_norm
    flavour = flavour_by_id(chain.flavour)
    blobs = bn.blobs
    factor = flavour.scale_factor(bn) if flavour is not None else None
    batch = flavour.batch_statistics(bn) if flavour is not None else None
    if flavour is not None:
        notes.extend(flavour.notes(bn))
    if batch is not None:
        notes.append(f"{batch}: Caffe uses batch statistics in TEST")
    if factor == 0:
        notes.append("scale factor 0: Caffe ignores the stored statistics")
    return ChainRow(
        key=key_for_layer_name(bn.name), batch_norm=bn.name,
        scale=chain.scale.name if chain.scale else None,
        bias=chain.bias.name if chain.bias else None,
        flavour=_title(flavour, chain.flavour),
        channels=blobs[0].shape_count if blobs else None, rank=chain.rank,
        eps=flavour.eps(bn) if flavour is not None else None, scale_factor=factor,
        affine=chain.scale is not None or (flavour is not None and flavour.fused_affine(bn)),
        use_global_stats=batch is None,
        convertible=not chain.problems, notes=tuple(notes), problems=chain.problems,
        flavour_id=chain.flavour, layer_type=bn.type)


def _title(flavour: Flavour | None, flavour_id: str) -> str:
    return flavour.title if flavour is not None else flavour_id


def _conversion_problem(net: Net, chain: BatchNormChain) -> str | None:
    """What ``convert`` would refuse in the chain's weights (missing or miscounted blobs, channel
    counts that disagree with the producing layer, NaN/Inf, negative variance, eps): the checks
    ``convert`` runs (``fold.checks``, no numpy), so inspect and convert give one verdict."""
    flavour = flavour_by_id(chain.flavour)
    if net.caffemodel is None or chain.problems or flavour is None \
            or flavour.id == "bn-unknown":
        return None
    bn = chain.batch_norm
    try:
        check_chain(net, bn, chain.scale, chain.bias, chain.producer, flavour.layout(bn),
                    flavour.eps(bn))
    except BnConvertError as exc:
        return " ".join(str(exc).split())
    return None


def _fork_followers(chain: BatchNormChain, graph: BlobGraph) -> list[UnconvertedRow]:
    """Fork affine layers reading the chain's output (``FORK_AFFINE``)."""
    last = chain.layers()[-1]
    return [UnconvertedRow(r.name, r.type, FORK_AFFINE[r.type], last.name)
            for r in graph.readers_of(last) if r.type in FORK_AFFINE]


def _standalone_reason(layer: Layer, graph: BlobGraph, owner: dict[int, BatchNormChain]) -> str:
    """Why a Scale/Bias is not part of a BatchNorm chain."""
    if len(layer.bottoms) > 1:
        return (f"{len(layer.bottoms)} bottoms: it takes its factors from another blob (e.g. SE "
                "gating), it is not a BatchNorm's affine")
    writer = graph.producer_of(layer)
    if writer is None:
        source = layer.bottoms[0] if layer.bottoms else "nothing"
        return f"reads the net input {source!r}: a standalone affine, no BatchNorm feeds it"
    chain = owner.get(writer.index)
    if chain is None:
        return (f"reads {writer.name!r} ({writer.type}), not a BatchNorm: a standalone affine, "
                "not part of any BN record")
    bn = chain.batch_norm
    mentioned = [p for p in (*chain.problems, *chain.notes) if repr(layer.name) in p]
    if mentioned:
        return mentioned[0]
    if writer is not bn:
        return (f"follows BatchNorm {bn.name!r}'s chain, which already has its "
                f"{writer.type}: a second affine, not folded")
    flavour = flavour_by_id(chain.flavour)
    if flavour is not None and flavour.fused_affine(bn):
        return (f"follows {bn.name!r} ({flavour.title}), "
                "which carries its own scale and shift: kept as a separate affine")
    return f"reads {bn.name!r}'s output but was not paired with it"


def inspect_net(net: Net, flavour: str | None = None) -> InspectReport:
    """Build the inspect report of a net (prototxt structure, plus blobs when loaded).

    Args:
        net: from ``load_net`` (a caffemodel is optional).
        flavour: a ``--flavor`` override for every BN-like layer.

    Returns:
        The report; building it never fails on unsupported layers (they are listed).

    Example:
        >>> inspect_net(EXAMPLE_NET).flavour_counts
        {'BVLC BatchNorm + Scale': 4}
    """
    analysis = pair_batch_norm_chains(net, flavour)
    rows: list[ChainRow] = []
    not_converted: list[UnconvertedRow] = []
    owner: dict[int, BatchNormChain] = {}
    for chain in analysis.chains:
        owner.update((x.index, chain) for x in chain.layers())
        followers = _fork_followers(chain, analysis.graph)
        refused = _conversion_problem(net, chain)
        if refused is not None:
            chain = replace(chain, problems=(*chain.problems, refused))
        rows.append(_row(chain, list(chain.notes)))
        not_converted.extend(UnconvertedRow(chain.batch_norm.name, chain.batch_norm.type, p)
                             for p in chain.problems)
        not_converted.extend(followers)
    return InspectReport(
        files=tuple(p for p in (net.prototxt, net.caffemodel) if p),
        chains=tuple(rows),
        standalone_affine=tuple(
            AffineRow(x.name, x.type, _standalone_reason(x, analysis.graph, owner))
            for x in analysis.standalone),
        unknown_fields=_skipped_fields(net),
        unknown_layer_types=dict(Counter(
            x.type for x in net.layers if x.type not in bvlc_layer_types() | bn_like_types())),
        missing_weights=tuple(n for n in net.missing_learned_weights()
                              if n not in {net.layers[i].name for i in owner}),
        unused_weights=net.unused_weights,
        flavour_counts=dict(Counter(chain_kind(row) for row in rows)),
        not_converted=tuple(not_converted), refused_by_caffe=net.refused_by_caffe,
        definition_problems=net.definition_problems())


def _skipped_fields(net: Net) -> tuple[str, ...]:
    """Fields the schema does not know and nothing reads (fork fields bnconvert reads are
    not skipped)."""
    types = {layer.name: layer.type for layer in net.layers}
    return tuple(f"{u.path} (line {u.line})" for u in net.unknown
                 if not is_read_fork_field(u, types))
