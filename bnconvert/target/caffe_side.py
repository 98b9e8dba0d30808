"""The Caffe side of a mapping: the net's learned units in layer order, each BatchNorm →
Scale (→ Bias) chain as one ``batch_norm`` unit, with tensor shapes in PyTorch's layout (from
the caffemodel's blobs where loaded, else from the layer parameters and the input shape
Caffe's shape inference gives, ``graph.known_shapes``) and the units that feed each one,
followed through the blob graph."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..flavours import flavour_by_id
from ..fold.chains import BatchNormChain, pair_batch_norm_chains
from ..graph import BlobGraph, Version
from ..graph.known_shapes import known_shapes
from ..layers.learned import (
    ConvolutionParams,
    EmbedParams,
    InnerProductParams,
    PReLUParams,
    ScaleParams,
    per_axis,
)
from ..read.net import Layer, Net
from .units import NET_INPUT, Shape, Unit

__all__ = ["caffe_units"]

_KIND_BY_TYPE = {"Convolution": "conv", "CuDNNConvolution": "conv",
                 "ConvolutionDepthwise": "conv", "DepthwiseConvolution": "conv",
                 "Deconvolution": "deconv", "InnerProduct": "linear", "PReLU": "prelu",
                 "Scale": "scale", "Bias": "bias", "Embed": "embed"}

#: fork convolution types that are depthwise (one group per input channel)
_DEPTHWISE = ("ConvolutionDepthwise", "DepthwiseConvolution")


def _blob_shapes(layer: Layer) -> tuple[tuple[int, ...], ...] | None:
    return tuple(b.shape for b in layer.blobs) if layer.blobs else None


def _conv_shapes(layer: Layer, params: ConvolutionParams, c_in: int | None) -> dict[str, Shape]:
    axes = len(params.kernel) if len(params.kernel) > 1 else 2
    kernel = per_axis(params.kernel, axes, 1)
    out, group = params.num_output, max(params.group, 1)
    if layer.type in _DEPTHWISE and c_in is not None:
        group = c_in  # the fork layers are depthwise whatever ``group`` says
    if layer.type == "Deconvolution":
        weight: Shape = (c_in, None if out is None else out // group, *kernel)
    else:
        weight = (out, None if c_in is None else c_in // group, *kernel)
    blobs = _blob_shapes(layer)
    if blobs:
        weight = blobs[0]
    shapes: dict[str, Shape] = {"weight": weight}
    if params.bias_term:
        shapes["bias"] = (weight[1] * group if layer.type == "Deconvolution" and weight[1]
                          else weight[0],)
    return shapes


def _linear_shapes(layer: Layer, params: InnerProductParams,
                   shape_in: tuple[int, ...] | None) -> dict[str, Shape]:
    blobs = _blob_shapes(layer)
    k = None
    if shape_in is not None and -len(shape_in) <= params.axis < len(shape_in):
        k = math.prod(shape_in[params.axis % len(shape_in):])
    weight: Shape = (params.num_output, k)
    if blobs:
        weight = blobs[0][-2:]
        if params.transpose:
            weight = weight[::-1]
    shapes: dict[str, Shape] = {"weight": weight}
    if params.bias_term:
        shapes["bias"] = (weight[0],)
    return shapes


def _plain_shapes(layer: Layer, c_in: int | None) -> dict[str, Shape]:
    params, blobs = layer.params, _blob_shapes(layer)
    if isinstance(params, EmbedParams):
        shapes: dict[str, Shape] = {"weight": blobs[0] if blobs else
                                    (params.input_dim, params.num_output)}
        return shapes
    if isinstance(params, PReLUParams):
        return {"weight": (1,) if params.channel_shared else (c_in,)}
    has_bias = getattr(params, "bias_term", layer.type == "Bias")
    shapes = {} if layer.type == "Bias" else {"weight": (c_in,)}
    return {**shapes, "bias": (c_in,)} if has_bias else shapes


def _layer_unit(layer: Layer, index: int, shape_in: tuple[int, ...] | None) -> Unit:
    params, kind = layer.params, _KIND_BY_TYPE.get(layer.type, f"other:{layer.type}")
    c_in = shape_in[1] if shape_in is not None and len(shape_in) > 1 else None
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    if isinstance(params, ConvolutionParams):
        shapes = _conv_shapes(layer, params, c_in)
        kernel = tuple(int(k) for k in shapes["weight"][2:] if k is not None)
        stride = per_axis(params.stride, len(kernel), 1)
    elif isinstance(params, InnerProductParams):
        shapes = _linear_shapes(layer, params, shape_in)
    else:
        shapes = _plain_shapes(layer, c_in)
    return Unit(index, layer.name, kind, shapes, kernel=kernel, stride=stride,
                layers=(layer.name,))


def _affine_names(chain: BatchNormChain) -> tuple[str, ...]:
    """The affine tensors the chain carries: weight (and bias) from a Scale (and its bias term
    or a Bias layer), or both from a BN that fuses them (NVIDIA's scale_bias, the fork BNs)."""
    found = flavour_by_id(chain.flavour)
    if found is not None and found.fused_affine(chain.batch_norm):
        return ("weight", "bias")
    if chain.scale is None:
        return ()
    params = chain.scale.params
    has_bias = chain.bias is not None or (isinstance(params, ScaleParams) and params.bias_term)
    return ("weight", "bias") if has_bias else ("weight",)


def _chain_unit(chain: BatchNormChain, index: int, c_in: int | None) -> Unit:
    layer = chain.batch_norm
    blobs = _blob_shapes(layer)
    channels = blobs[0][-1] if blobs and blobs[0] else c_in
    names = ("running_mean", "running_var") + _affine_names(chain)
    found = flavour_by_id(chain.flavour)
    eps = found.eps(layer) if found is not None else None
    return Unit(index, layer.name, "batch_norm", {n: (channels,) for n in names}, eps=eps,
                layers=tuple(x.name for x in chain.layers()))


def _entry_layers(net: Net, flavour: str | None) -> list[tuple[Layer, BatchNormChain | None]]:
    """Each unit's first layer in net order, with its chain for a BatchNorm."""
    analysis = pair_batch_norm_chains(net, flavour)
    chain_of = {c.batch_norm.index: c for c in analysis.chains}
    members = {x.index for c in analysis.chains for x in c.layers()}
    return [(layer, chain_of.get(layer.index)) for layer in net.layers
            if layer.index in chain_of or (layer.learned and layer.index not in members)]


def caffe_units(net: Net, flavour: str | None = None) -> tuple[Unit, ...]:
    """The net's learned units in layer order (BN chains as one ``batch_norm`` unit).

    Args:
        net: the typed net (``bnconvert.read.load_net``); its blobs give exact shapes when a
            caffemodel is loaded.
        flavour: a ``--flavor`` override for BN-like layers.

    Returns:
        One ``Unit`` per learned layer or BN chain, with ``inputs`` and ``feeds`` filled in.
    """
    graph = BlobGraph(net)
    known = known_shapes(net, graph)  # a net Caffe refuses: no shapes, the blobs' where loaded
    entries = _entry_layers(net, flavour)
    owner: dict[int, int] = {}
    units: list[Unit] = []
    for index, (layer, chain) in enumerate(entries):
        shape_in = known.input_shape(layer)
        c_in = shape_in[1] if shape_in is not None and len(shape_in) > 1 else None
        unit = (_chain_unit(chain, index, c_in) if chain
                else _layer_unit(layer, index, shape_in))
        owner.update({x.index: index for x in (chain.layers() if chain else (layer,))})
        units.append(unit)
    return tuple(_linked(unit, layer, graph, owner) for unit, (layer, _) in
                 zip(units, entries, strict=True))


def _linked(unit: Unit, layer: Layer, graph: BlobGraph, owner: Mapping[int, int]) -> Unit:
    from dataclasses import replace

    memo: dict[Version, frozenset[int]] = {}
    sources = frozenset().union(*(_sources(v, graph, owner, memo)
                                  for v in graph.inputs[layer.index])) or frozenset({NET_INPUT})
    reader, _ = graph.sole_reader(layer) if unit.kind in ("conv", "deconv", "linear") \
        else (None, [])
    feeds = owner.get(reader.index) if reader is not None and reader.index in owner \
        and reader.type not in _KIND_BY_TYPE and reader.learned else None
    return replace(unit, inputs=sources, feeds=feeds)


def _sources(version: Version, graph: BlobGraph, owner: Mapping[int, int],
             memo: dict[Version, frozenset[int]]) -> frozenset[int]:
    """The units whose outputs reach ``version`` through parameter-free layers."""
    stack, found, seen = [version], set(), set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        writer = current[1]
        if writer < 0 or not graph.inputs[writer]:
            found.add(writer if writer in owner else NET_INPUT)
        elif writer in owner:
            found.add(owner[writer])
        else:
            stack.extend(graph.inputs[writer])
    return frozenset(found)
