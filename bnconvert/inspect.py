"""What ``bnconvert inspect`` reports: every BN chain with its layers, channels, eps, scale
factor and pairing, plus what the schema or bnconvert does not know. Never imports torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .fold.batch_norm import uses_global_stats
from .fold.chains import BatchNormChain, pair_batch_norm_chains
from .fold.flavours import BN_LIKE_TYPES, FLAVOUR_TITLES, declared_eps, has_fused_affine
from .naming import key_for_layer_name
from .read.net import Net

__all__ = ["ChainRow", "InspectReport", "inspect_net", "BVLC_LAYER_TYPES"]

BVLC_LAYER_TYPES = frozenset({
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "BatchNorm", "BatchReindex", "Bias", "Clip",
    "Concat", "ContrastiveLoss", "Convolution", "Crop", "Data", "Deconvolution", "Dropout",
    "DummyData", "ELU", "Eltwise", "Embed", "EuclideanLoss", "Exp", "Filter", "Flatten",
    "HDF5Data", "HDF5Output", "HingeLoss", "Im2col", "ImageData", "InfogainLoss", "InnerProduct",
    "Input", "LRN", "LSTM", "Log", "MVN", "MemoryData", "MultinomialLogisticLoss", "PReLU",
    "Parameter", "Pooling", "Power", "Python", "RNN", "ReLU", "Recurrent", "Reduction", "Reshape",
    "SPP", "Scale", "Sigmoid", "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax",
    "SoftmaxWithLoss", "Split", "Swish", "TanH", "Threshold", "Tile", "WindowData", "LSTMUnit",
    "CuDNNConvolution",
})


#: Layer types that carry learned blobs: only these can miss weights in a caffemodel.
WEIGHTED_TYPES = frozenset({
    "Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "BN", "Scale", "Bias", "PReLU",
    "Embed", "LSTM", "RNN", "Parameter", "ConvolutionDepthwise", "DepthwiseConvolution",
    "Normalize", "CuDNNConvolution",
})


@dataclass(frozen=True)
class ChainRow:
    """One BN chain as ``inspect`` shows it (values None where the files do not tell)."""

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


@dataclass(frozen=True)
class InspectReport:
    """Everything ``inspect`` prints; ``to_json`` gives the ``--json`` form."""

    files: tuple[str, ...]
    chains: tuple[ChainRow, ...]
    standalone_affine: tuple[str, ...]
    unknown_fields: tuple[str, ...]
    unknown_layer_types: dict[str, int] = field(default_factory=dict)
    missing_weights: tuple[str, ...] = ()
    unused_weights: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _row(chain: BatchNormChain) -> ChainRow:
    bn = chain.batch_norm
    blobs = bn.blobs
    channels = blobs[0].shape_count if blobs else None
    has_factor = chain.flavour in ("bvlc", "intel") or (chain.flavour == "nvcaffe" and blobs
                                                        and len(blobs) == 3)
    factor = blobs[2].first() if has_factor and blobs and blobs[2].spans else None
    notes = list(chain.notes)
    global_stats = uses_global_stats(bn) if chain.flavour == "bvlc" else True
    if not global_stats:
        notes.append("use_global_stats: false: Caffe uses batch statistics in TEST")
    if chain.flavour == "segnet" and declared_eps(bn, "segnet") is not None:
        global_stats = False
        notes.append("bn_mode LEARN (SegNet's default): batch statistics in TEST")
    eps = declared_eps(bn, chain.flavour) if chain.flavour in FLAVOUR_TITLES else None
    if factor == 0:
        notes.append("scale factor 0: Caffe ignores the stored statistics")
    return ChainRow(
        key=key_for_layer_name(bn.name), batch_norm=bn.name,
        scale=chain.scale.name if chain.scale else None,
        bias=chain.bias.name if chain.bias else None,
        flavour=FLAVOUR_TITLES.get(chain.flavour, chain.flavour),
        channels=channels, rank=chain.rank, eps=eps, scale_factor=factor,
        affine=chain.scale is not None or has_fused_affine(bn, chain.flavour),
        use_global_stats=global_stats,
        convertible=not chain.problems, notes=tuple(notes), problems=chain.problems)


def inspect_net(net: Net, flavour: str | None = None) -> InspectReport:
    """Build the inspect report of a net (prototxt structure, plus blobs when loaded)."""
    analysis = pair_batch_norm_chains(net, flavour)
    types: dict[str, int] = {}
    for layer in net.layers:
        if layer.type not in BVLC_LAYER_TYPES and layer.type not in BN_LIKE_TYPES:
            types[layer.type] = types.get(layer.type, 0) + 1
    unknown = tuple(f"{u.path} (line {u.line})" for u in net.unknown)
    types_by_name = {layer.name: layer.type for layer in net.layers}
    return InspectReport(
        files=tuple(p for p in (net.prototxt, net.caffemodel) if p),
        chains=tuple(_row(chain) for chain in analysis.chains),
        standalone_affine=tuple(f"{x.name} ({x.type})" for x in analysis.standalone),
        unknown_fields=unknown, unknown_layer_types=types,
        missing_weights=tuple(n for n in net.missing_weights if types_by_name.get(n)
                              in WEIGHTED_TYPES) if net.caffemodel and net.prototxt else (),
        unused_weights=net.unused_weights)
