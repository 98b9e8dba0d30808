"""verify's own pairing of BatchNorm, Scale and Bias layers: a plain walk over the layers' tops
and bottoms, written apart from ``fold.chains`` so that a pairing bug in the converter cannot
hide in the reference (the flavour, a fact of the layer, is shared).

From a BN-like layer, its top is followed forward in layer order: the layers after it that read
that blob name, up to the next layer that writes the name again (an in-place reader included).
A single reader of type ``Scale`` with one bottom and the per-channel form (axis 1, num_axes 1)
is its Scale; the same walk from the Scale finds a ``Bias``. A flavour that carries its own
scale and shift pairs nothing.
"""

from __future__ import annotations

from ..errors import UnsupportedLayerError
from ..flavours import bn_like_types, detect_flavour
from ..fold.chains import BatchNormChain
from ..graph import infer_blob_ranks
from ..layers.learned import BiasParams, ScaleParams
from ..read.net import Layer, Net

__all__ = ["walk_chains"]


def _readers_of_top(net: Net, layer: Layer) -> list[Layer]:
    """The layers after ``layer`` that read its first top before the name is written again."""
    if not layer.tops:
        return []
    blob = layer.tops[0]
    readers = []
    for later in net.layers[layer.index + 1:]:
        if blob in later.bottoms:
            readers.append(later)
        if blob in later.tops:
            break
    return readers


def _per_channel(layer: Layer, rank: int | None) -> bool:
    params = layer.params
    if not isinstance(params, ScaleParams | BiasParams) or len(layer.bottoms) != 1:
        return False
    axis = params.axis % rank if params.axis < 0 and rank else params.axis
    return axis == 1 and params.num_axes == 1


def _next(net: Net, layer: Layer, wanted: str, rank: int | None) -> Layer | None:
    readers = _readers_of_top(net, layer)
    if len(readers) == 1 and readers[0].type == wanted and _per_channel(readers[0], rank):
        return readers[0]
    return None


def walk_chains(net: Net, flavour: str | None = None) -> list[BatchNormChain]:
    """Every BN-like layer of ``net`` with the Scale and Bias the walk pairs with it.

    Args:
        flavour: a ``--flavor`` override, as ``convert`` was given it.

    Returns:
        One chain per BN-like layer, in net order (flavour ``"unrecognized"`` and the reason in
        ``problems`` when its blobs fit no known layout).

    Example:
        >>> [c.scale.name for c in walk_chains(load_net(EXAMPLE_PROTOTXT, None))][:2]
        ['scale2a_branch1', 'scale2a_branch2a']
    """
    ranks = infer_blob_ranks(net)
    chains = []
    for layer in net.layers:
        if layer.type not in bn_like_types():
            continue
        rank = ranks.get((layer.bottoms[0], _writer(net, layer))) if layer.bottoms else None
        try:
            found = detect_flavour(layer, flavour)
        except UnsupportedLayerError as exc:
            chains.append(BatchNormChain(layer, None, None, rank, "unrecognized",
                                         problems=(str(exc),)))
            continue
        scale = None if found.fused_affine(layer) else _next(net, layer, "Scale", rank)
        bias = _next(net, scale, "Bias", rank) if scale is not None else None
        chains.append(BatchNormChain(layer, scale, bias, rank, found.id))
    return chains


def _writer(net: Net, layer: Layer) -> int:
    """Index of the layer that last wrote ``layer``'s first bottom before it (-1: net input)."""
    name = layer.bottoms[0]
    return next((x.index for x in reversed(net.layers[:layer.index]) if name in x.tops), -1)
