"""``bnconvert inspect --whole``: one row per layer with learned blobs (and per layer a learned
type needs weights for): its type, its blob shapes, and what ``convert --whole`` makes of it.
Reads the layer types and the BN pairing only; never imports torch or numpy (the handlers of
``bnconvert.whole`` do, so the table of what each type becomes is kept here, and
``tests/test_convert_whole.py`` checks that it names every handled type). A layer whose input
shape Caffe's shape inference cannot give gets a note: its input channels cannot be checked,
and why (what ``convert --whole`` then says too)."""

from __future__ import annotations

from typing import Any

from .flavours import bn_like_types
from .fold.chains import pair_batch_norm_chains
from .graph.known_shapes import KnownShapes, known_shapes
from .naming import key_for_layer_name
from .read.net import Layer, Net
from .text_table import format_table

__all__ = ["BECOMES", "whole_table", "format_whole_table"]

#: Caffe type -> the module its layers become (``{d}``: the number of spatial axes)
BECOMES = {
    "Convolution": "Conv{d}d", "CuDNNConvolution": "Conv{d}d",
    "ConvolutionDepthwise": "Conv{d}d (groups = channels)",
    "DepthwiseConvolution": "Conv{d}d (groups = channels)",
    "Deconvolution": "ConvTranspose{d}d", "InnerProduct": "Linear",
    "Embed": "bnconvert.modules.Embed", "PReLU": "bnconvert.modules.PReLU",
    "Scale": "bnconvert.modules.Scale", "Bias": "bnconvert.modules.Bias",
}


def _becomes(layer: Layer, chain_of: dict[int, str], folded_into: dict[int, str]) -> str:
    if layer.index in chain_of:
        return chain_of[layer.index]
    if layer.index in folded_into:
        return f"folded into BatchNorm {key_for_layer_name(folded_into[layer.index])}"
    what = BECOMES.get(layer.type)
    if what is None:
        return "NOT CONVERTED: unknown learned type (--skip-unknown skips it)"
    blobs = layer.blobs or ()
    if layer.type in ("Scale", "Bias") and len(layer.bottoms) > 1:
        return "bnconvert.modules.ScaleBy" if blobs else "nothing learned (second bottom)"
    axes = len(blobs[0].shape) - 2 if blobs and not blobs[0].legacy else 2
    return what.format(d=axes)


def _not_checked(known: KnownShapes, layer: Layer, converted: bool) -> str | None:
    """Why the layer's input dims cannot be checked against its blobs, or None."""
    if not converted or layer.type == "Embed" or known.input_shape(layer) is not None:
        return None
    if layer.type in ("Scale", "Bias") and len(layer.bottoms) > 1:
        return None
    return f"input channels not checked: {known.why_unknown(layer)}"


def whole_table(net: Net, flavour: str | None = None) -> list[dict[str, Any]]:
    """One row per layer with blobs, or of a learned type: layer, type, blob shapes, key, what
    it becomes, and why its input channels cannot be checked (None: they can; JSON-ready)."""
    analysis = pair_batch_norm_chains(net, flavour)
    known = known_shapes(net, analysis.graph)
    chain_of = {c.batch_norm.index: f"{c.batch_norm.type} chain -> BatchNorm "
                f"(flavour {c.flavour})" for c in analysis.chains}
    folded_into = {x.index: c.batch_norm.name for c in analysis.chains
                   for x in c.layers() if x is not c.batch_norm}
    rows = []
    for layer in net.layers:
        if not layer.blobs and not (layer.learned or layer.type in bn_like_types()):
            continue
        shapes = [list(b.shape) for b in layer.blobs] if layer.blobs else None
        converted = layer.type in BECOMES and layer.index not in folded_into
        rows.append({"layer": layer.name, "type": layer.type, "blob_shapes": shapes,
                     "key": key_for_layer_name(layer.name),
                     "becomes": _becomes(layer, chain_of, folded_into),
                     "not_checked": _not_checked(known, layer, converted)})
    return rows


def format_whole_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a text table."""
    def shapes(row: dict[str, Any]) -> str:
        if row["blob_shapes"] is None:
            return "(no weights)"
        return " ".join("x".join(map(str, s)) or "scalar" for s in row["blob_shapes"])

    table = [[r["layer"], r["type"], shapes(r), r["becomes"]] for r in rows]
    notes = [f"note: {r['layer']}: {r['not_checked']}" for r in rows if r.get("not_checked")]
    return "\n".join([format_table(["layer", "type", "blobs", "becomes"], table), *notes])
