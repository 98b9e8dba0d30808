"""Assemble a typed Caffe net into a ``torch.fx.GraphModule`` with Caffe's semantics.

The net's inputs (legacy header, ``Input`` and ``DummyData`` tops, in declaration order) become
the forward's arguments; each layer's handler (``handlers``) adds its module, named by the
layer's state_dict key; blob names map to graph nodes as the layers run, so in-place layers
follow Caffe (a blob's readers see its last writer's value). The outputs are Caffe's
``net.outputs``: the blobs no layer consumes, sorted by name (one tensor, or a tuple).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from torch import fx, nn

from ..errors import BnConvertError, MissingLayerError, RefusedByCaffeError, UnsupportedLayerError
from ..fold.chains import pair_batch_norm_chains
from ..graph.blobs import BlobGraph
from ..graph.shapes import Shape, declared_inputs, infer_shapes
from ..layers import UnreadableParams
from ..read.net import Layer, Net
from ..records import FoldedBatchNorm
from .context import BuildContext, Made, Node
from .fuse import fusable
from .handlers import DATA_SOURCES, HANDLERS, LEFT_OUT, load_handlers
from .inplace import make_relus_inplace

__all__ = ["BuildOptions", "BuiltNet", "build_net", "class_name_for", "unsupported_layers"]

_INPUT_TYPES = ("Input", "DummyData")


@dataclass(frozen=True)
class BuildOptions:
    """Attributes:
    until: build the net up to and including this layer (a backbone without its head).
    inputs: input shapes overriding the declared ones, by blob name.
    flavour: the BN flavour id of every BN-like layer (``--flavor``), None to detect it.
    class_name: the module's class name, None for one derived from the net's name.
    bn_train: ``"caffe"``: BatchNorms that continue Caffe's running averages exactly in train
        mode (``bnconvert.modules.CaffeBatchNorm*d``; BVLC and Intel layers), None for
        ``torch.nn.BatchNorm*d`` with the momentum that continues them for the next step.
    fold: ``keep`` (every BN chain one ``nn.BatchNorm*d``) or ``fuse`` (folded into the
        convolution or InnerProduct before it where possible, ``fuse``).
    """

    until: str | None = None
    inputs: Mapping[str, Shape] | None = None
    flavour: str | None = None
    class_name: str | None = None
    fold: str = "keep"
    bn_train: str | None = None


@dataclass(frozen=True, eq=False)
class BuiltNet:
    """The built module and what it was built from.

    Attributes:
        module: the ``torch.fx.GraphModule`` (train mode, as constructed).
        inputs, outputs: the forward's argument and result blob names, in order.
        made: each module attribute's constructor (for ``source``).
        writers: blob name -> the layer that last wrote it (in-place chains: the last one).
        blob_nodes: blob name -> the graph node holding its final value (``probe``).
        notes: layers left out, inputs nothing reads.
        fused: with ``fold="fuse"``: fused layer index -> the BatchNorm layer folded into it.
    """

    module: fx.GraphModule
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    made: dict[str, Made]
    writers: dict[str, str]
    blob_nodes: dict[str, str]
    notes: tuple[str, ...] = field(default=())
    fused: dict[int, str] = field(default_factory=dict)


def class_name_for(net_name: str) -> str:
    """A Python class name from the net's name (``ResNet-50`` -> ``ResNet50``).

    Example:
        >>> class_name_for("ResNet-50"), class_name_for("vgg_style_lrn"), class_name_for("")
        ('ResNet50', 'VggStyleLrn', 'CaffeNet')
    """
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", net_name) if p]
    name = "".join(p[0].upper() + p[1:] for p in parts)
    if not name or name[0].isdigit():
        name = "CaffeNet" + name
    return name


def _truncate(net: Net, until: str | None) -> Net:
    if until is None:
        return net
    for layer in net.layers:
        if layer.name == until:
            return replace(net, layers=net.layers[:layer.index + 1])
    raise MissingLayerError(f"{net.describe()}: --until {until!r}: the TEST-phase net has no "
                            "layer of that name")


def unsupported_layers(net: Net) -> list[Layer]:
    """The layers no handler builds (data sources, unknown or unreadable types), in order."""
    load_handlers()
    return [x for x in net.layers
            if x.type not in _INPUT_TYPES and x.type not in LEFT_OUT
            and (x.type not in HANDLERS or x.type in DATA_SOURCES
                 or isinstance(x.params, UnreadableParams))]


def _refuse_unsupported(net: Net) -> None:
    missing = unsupported_layers(net)
    if missing:
        listed = ", ".join(f"{x.name!r} ({x.type})" for x in missing)
        types = ", ".join(sorted({x.type for x in missing}))
        raise UnsupportedLayerError(
            f"{net.describe()}: cannot build {len(missing)} layer(s) of type(s) {types}: "
            f"{listed}; build up to an earlier layer with --until, or replace them")


def caffe_outputs(layers: tuple[Layer, ...], inputs: list[str]) -> list[str]:
    """Caffe's ``net.outputs`` of the built net: the blobs no built layer consumes, sorted by
    name. Left-out layers (loss, accuracy) are not part of it, so what they read becomes an
    output, except a net input only they read (a label).

    Example:
        >>> caffe_outputs(EXAMPLE_NET.layers, ["data"])
        ['res2a']
    """
    available = set(inputs)
    for layer in layers:
        if layer.type in LEFT_OUT:
            continue
        available.difference_update(layer.bottoms)
        available.update(layer.tops)
    left_out_reads = {b for x in layers if x.type in LEFT_OUT for b in x.bottoms}
    return sorted(b for b in available if not (b in inputs and b in left_out_reads))


def build_net(net: Net, records: Mapping[str, FoldedBatchNorm] | None = None,
              options: BuildOptions = BuildOptions(),
              fused: Mapping[int, str] | None = None, *, on_meta: bool = False) -> BuiltNet:
    """Build the module computing what Caffe's TEST-phase forward of ``net`` computes.

    Args:
        net: the typed net (a prototxt; weights are not needed to build).
        records: folded BN records by BatchNorm layer name (class, eps, affine come from them).
        fused: with ``fold="fuse"``, the layers the weights fused a BN chain into (layer index
            -> BatchNorm name, from ``load_weights``' records); None decides by the graph.
        options: ``until``, input shapes, flavour override, class name.
        on_meta: construct the modules on the meta device without PyTorch's random
            initialisation, for a caller that assigns every tensor (``weights_first``).

    Returns:
        The ``BuiltNet`` (its module holds freshly initialised parameters, or meta tensors).

    Raises:
        UnsupportedLayerError: layers no handler builds, all listed in one message.
        RefusedByCaffeError: a layer Caffe refuses to set up, with Caffe's reason.
        MissingLayerError: ``until`` names no layer.
    """
    net = _truncate(net, options.until)
    _refuse_unsupported(net)
    shapes = infer_shapes(net, options.inputs)
    analysis = pair_batch_norm_chains(net, options.flavour)
    ctx = BuildContext(net, fx.Graph(), nn.Module(), shapes, BlobGraph(net).inputs,
                       {c.batch_norm.index: c for c in analysis.chains}, dict(records or {}),
                       bn_train=options.bn_train, on_meta=on_meta)
    fused = {} if options.fold != "fuse" else dict(fused) if fused is not None \
        else fusable(net, analysis)
    ctx.fused = frozenset(fused)
    folded = {x.index for c in analysis.chains for x in (c.scale, c.bias) if x is not None}
    folded |= {c.batch_norm.index for c in analysis.chains if c.batch_norm.name in
               fused.values()}
    env, notes = _placeholders(ctx, net)
    writers: dict[str, str] = {}
    for layer in net.layers:
        if layer.type in _INPUT_TYPES:
            continue
        if layer.type in LEFT_OUT:
            notes.append(f"layer {layer.name!r} ({layer.type}) left out: train/test only")
            continue
        tops = ([env[layer.bottoms[0]]] if layer.index in folded
                else _run_handler(ctx, layer, [env[b] for b in layer.bottoms]))
        env.update(zip(layer.tops, tops, strict=True))
        for top in layer.tops:  # ordered by the last write
            writers.pop(top, None)
            writers[top] = layer.name
    outputs = caffe_outputs(net.layers, list(declared_inputs(net)))
    nodes = [env[name] for name in outputs]
    ctx.graph.output(nodes[0] if len(nodes) == 1 else tuple(nodes))
    used = _prune_inputs(ctx.graph, notes)
    make_relus_inplace(ctx.graph, ctx.root, ctx.made, net, {n.name for n in env.values()})
    name = options.class_name or class_name_for(net.name)
    module = fx.GraphModule(ctx.root, ctx.graph, class_name=name)
    hidden = _fused_away(net, fused, writers)
    blob_nodes = {blob: node.name for blob, node in env.items() if blob not in hidden}
    writers = {blob: layer for blob, layer in writers.items() if blob not in hidden}
    return BuiltNet(module, used, tuple(outputs), ctx.made, writers, blob_nodes, tuple(notes),
                    fused)


def _fused_away(net: Net, fused: Mapping[int, str], writers: Mapping[str, str]) -> set[str]:
    """Tops of fused layers whose final value is no longer computed (the BN chain wrote
    another blob)."""
    return {top for index in fused for top in net.layers[index].tops
            if writers.get(top) == net.layers[index].name}


def _placeholders(ctx: BuildContext, net: Net) -> tuple[dict[str, Node], list[str]]:
    env: dict[str, Node] = {}
    for name in declared_inputs(net):
        node = ctx.graph.placeholder(_identifier(name))
        node.meta["blob"] = name
        env[name] = node
    return env, []


def _identifier(blob: str) -> str:
    name = re.sub(r"\W", "_", blob)
    return name if name.isidentifier() and not name[0].isdigit() else f"input_{name}"


def _prune_inputs(graph: fx.Graph, notes: list[str]) -> tuple[str, ...]:
    """Drop inputs nothing reads (a label only the left-out loss read); their blob names."""
    used = []
    for node in list(graph.nodes):
        if node.op != "placeholder":
            continue
        if node.users:
            used.append(str(node.meta["blob"]))
        else:
            notes.append(f"input {node.meta['blob']!r} is read by no built layer: not an "
                         "argument of forward")
            graph.erase_node(node)
    return tuple(used)


def _run_handler(ctx: BuildContext, layer: Layer, inputs: list[Node]) -> list[Node]:
    where = f"{ctx.net.describe()}: layer {layer.name!r} ({layer.type})"
    try:
        tops = HANDLERS[layer.type](ctx, layer, inputs)
    except UnsupportedLayerError as exc:
        raise UnsupportedLayerError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise RefusedByCaffeError(f"{where}: {exc}") from None
    if len(tops) != len(layer.tops):
        raise BnConvertError(f"{where}: built {len(tops)} outputs for {len(layer.tops)} tops")
    return tops
