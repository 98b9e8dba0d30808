"""Every learned layer of a net as converted records, in net order: BatchNorm chains as today's
``FoldedBatchNorm`` (their Scale/Bias get no records), every other layer with learned blobs by
its type's handler (``handlers.HANDLERS``), and, with ``fold="fuse"``, each BN chain folded into
the Convolution/Deconvolution/InnerProduct whose output only it reads (``fuse``)."""

from __future__ import annotations

from ..errors import BnConvertError, UnsupportedLayerError
from ..flavours import bn_like_types
from ..fold.batch_norm import fold_batch_norm_chain
from ..fold.chains import ChainAnalysis, pair_batch_norm_chains
from ..fold.options import FoldOptions
from ..graph import infer_blob_ranks
from ..graph.known_shapes import known_shapes
from ..read.net import Layer, Net
from ..records import ConvertedLayer
from . import convolution, elementwise  # noqa: F401  (registers the handlers)
from .checks import NetContext
from .fuse import fuse_chains
from .handlers import HANDLERS
from .records import SkippedLayer

__all__ = ["convert_whole", "unknown_learned_layers", "FOLD_MODES"]

FOLD_MODES = ("keep", "fuse")


def unknown_learned_layers(net: Net) -> list[Layer]:
    """Layers with blobs in the caffemodel that no handler and no BN flavour converts."""
    return [layer for layer in net.layers if layer.blobs and layer.type not in HANDLERS
            and layer.type not in bn_like_types()]


def _check_net(net: Net, analysis: ChainAnalysis, fold: str) -> None:
    if fold not in FOLD_MODES:
        raise BnConvertError(f"unknown fold mode {fold!r}; use one of {', '.join(FOLD_MODES)}")
    if net.refused_by_caffe:
        raise UnsupportedLayerError(f"{net.describe()}: {net.refused_by_caffe}")
    if net.source == "caffemodel" and net.header_problem:
        raise BnConvertError(f"{net.describe()}: {net.header_problem}; pass the prototxt too")
    problems = [p for chain in analysis.chains for p in chain.problems]
    if problems:
        raise UnsupportedLayerError(f"{net.describe()}: cannot convert: {'; '.join(problems)}")


def _unknown_error(net: Net, unknown: list[Layer]) -> UnsupportedLayerError:
    listed = ", ".join(f"{x.name!r} ({x.type}, {len(x.blobs or ())} blobs)" for x in unknown)
    return UnsupportedLayerError(
        f"{net.caffemodel or net.describe()}: {len(unknown)} layer(s) with learned blobs of a "
        f"type bnconvert does not convert: {listed}; --skip-unknown converts the rest")


def convert_whole(net: Net, fold: str = "keep", options: FoldOptions | None = None,
                  skip_unknown: bool = False) -> list[ConvertedLayer]:
    """Convert every layer of ``net`` that has learned blobs.

    Args:
        fold: ``"keep"`` (BN chains stay BatchNorms) or ``"fuse"`` (folded into the layer
            before them where the graph allows; the others keep a warning saying why).
        options: how BN chains are read (affine, strict, clamp_eps, flavour).
        skip_unknown: turn layers of unknown learned types into ``SkippedLayer`` records with
            a warning, instead of failing.

    Returns:
        The records in net order.

    Raises:
        UnsupportedLayerError: unknown learned layers (all listed at once), unfoldable chains.
        MissingLayerError, BlobError, NumericError: a learned layer without weights, blobs that
            disagree with the prototxt, NaN/Inf values.
    """
    options = options or FoldOptions()
    analysis = pair_batch_norm_chains(net, options.flavour)
    _check_net(net, analysis, fold)
    unknown = unknown_learned_layers(net)
    if unknown and not skip_unknown:
        raise _unknown_error(net, unknown)
    ctx = NetContext(net, analysis.graph, infer_blob_ranks(net),
                     known_shapes(net, analysis.graph))
    chains = {chain.batch_norm.index: chain for chain in analysis.chains}
    folded = {x.index for chain in analysis.chains for x in chain.layers()} - set(chains)
    skipped = {x.index for x in unknown}
    records: list[ConvertedLayer] = []
    for layer in net.layers:
        if layer.index in chains:
            records.append(fold_batch_norm_chain(net, chains[layer.index], options))
        elif layer.index in skipped:
            records.append(_skipped(layer))
        elif layer.index not in folded and layer.type in HANDLERS:
            record = HANDLERS[layer.type](ctx, layer)
            if record is not None:
                records.append(record)
    if fold == "fuse":
        records = fuse_chains(ctx, records, analysis.chains)
    return records


def _skipped(layer: Layer) -> SkippedLayer:
    blobs = layer.blobs or ()
    reason = f"no conversion of Caffe type {layer.type!r}"
    return SkippedLayer(layer=layer.name, caffe_type=layer.type,
                        blob_shapes=tuple(b.shape for b in blobs), reason=reason,
                        warnings=(f"{layer.name}: skipped ({layer.type}, {len(blobs)} learned "
                                  "blobs): its weights are not in the output",))
