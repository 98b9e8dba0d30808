"""``--fold fuse``: fold each BatchNorm chain into the Convolution, Deconvolution or
InnerProduct producing its input, when the BN is the only reader of that output (the graph's
blob versions decide, never names). Chains that cannot be fused stay BatchNorms with a warning
saying why. The arithmetic is ``fuse_numeric``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..fold.chains import BatchNormChain
from ..layers.learned import ConvolutionParams, InnerProductParams
from ..records import ConvertedLayer, FoldedBatchNorm
from .checks import NetContext
from .fuse_numeric import bn_multiplier, fused_bias, fused_weight
from .records import ConvLayer, ConvTransposeLayer, FusedChain, LearnedLayer, LinearLayer

__all__ = ["fuse_chains", "why_not_fused", "fuse_record"]

_FUSABLE = (ConvLayer, ConvTransposeLayer, LinearLayer)


def why_not_fused(ctx: NetContext, chain: BatchNormChain, bn: FoldedBatchNorm,
                  target: ConvertedLayer | None) -> str | None:
    """Why the chain cannot be folded into the layer before it, or None when it can."""
    producer = chain.producer
    if not bn.use_global_stats:
        return "Caffe normalizes with batch statistics in TEST; no fixed folding reproduces that"
    if producer is None:
        return "its input is a net input, not the output of a convolution or inner product"
    if not isinstance(target, _FUSABLE):
        return (f"its input comes from {producer.name!r} ({producer.type}), not a Convolution, "
                "Deconvolution or InnerProduct")
    if len(producer.tops) != 1:
        return f"{producer.name!r} has {len(producer.tops)} tops sharing its weights"
    if ctx.graph.inputs[chain.batch_norm.index][0] != ctx.graph.outputs[producer.index][0]:
        return f"it does not read {producer.name!r}'s output"
    readers = ctx.graph.readers_of(producer)
    others = [r.name for r in readers if r.index != chain.batch_norm.index]
    if others:
        return (f"{producer.name!r}'s output is also read by "
                f"{', '.join(map(repr, others))}, which need it unnormalized")
    params = producer.params
    if isinstance(params, ConvolutionParams | InnerProductParams) and params.axis != 1:
        return f"{producer.name!r} works on axis {params.axis}, the BatchNorm on axis 1"
    return None


def fuse_record(target: LearnedLayer, bn: FoldedBatchNorm) -> LearnedLayer:
    """``target`` with ``bn`` folded in (see ``fuse_numeric``); it gains a bias if it had none."""
    multiplier = bn_multiplier(bn.running_var, bn.eps, bn.weight)
    transposed = isinstance(target, ConvTransposeLayer)
    groups = int(target.arguments.get("groups", 1))
    weight = fused_weight(target.weights["weight"], multiplier, transposed, groups)
    bias = fused_bias(target.weights.get("bias"), bn.running_mean, multiplier, bn.bias)
    for array in (weight, bias):
        array.flags.writeable = False
    layers = bn.layers
    return replace(target, weights={"weight": weight, "bias": bias},
                   arguments={**target.arguments, "bias": True},
                   fused=FusedChain(layers.batch_norm, layers.scale, layers.bias, bn.eps,
                                    bn.flavour),
                   warnings=(*target.warnings, *bn.warnings))


def fuse_chains(ctx: NetContext, records: Sequence[ConvertedLayer],
                chains: Sequence[BatchNormChain]) -> list[ConvertedLayer]:
    """The records with every fusable chain folded into its producer's record (the BN record
    dropped), and a ``not fused`` warning on each BN record that stays."""
    by_name = {r.name: r for r in records}
    replaced: dict[str, ConvertedLayer] = {}
    dropped: set[str] = set()
    for chain in chains:
        bn = by_name.get(chain.batch_norm.name)
        if not isinstance(bn, FoldedBatchNorm):
            continue
        target = by_name.get(chain.producer.name) if chain.producer else None
        reason = why_not_fused(ctx, chain, bn, target)
        if reason is None and isinstance(target, LearnedLayer):
            replaced[target.name] = fuse_record(target, bn)
            dropped.add(bn.name)
        else:
            note = f"{bn.name}: not fused, kept as a BatchNorm: {reason}"
            replaced[bn.name] = replace(bn, warnings=(*bn.warnings, note))
    return [replaced.get(r.name, r) for r in records if r.name not in dropped]
