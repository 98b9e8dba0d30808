"""``load_model``: a Caffe net as a runnable ``torch.nn.Module`` (a ``torch.fx.GraphModule``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import fx

from ..fold.options import FoldOptions
from ..graph.shapes import Shape
from ..read.net import Net, load_net
from ..records import FoldedBatchNorm
from .network import BuildOptions, BuiltNet, build_net
from .weights_first import assign_weights, paused_gc

__all__ = ["load_model", "build_model", "FOLD_MODES"]

PathLike = str | os.PathLike[str]
FOLD_MODES = ("keep", "fuse")


def build_model(net: Net, options: BuildOptions | None = None,
                weights: bool | None = None) -> BuiltNet:
    """Build ``net`` and, when it has a caffemodel (or ``weights``), load its weights.

    Raises:
        BnConvertError: unsupported or refused layers, missing or misfitting blobs.
    """
    options = options or BuildOptions()
    with_weights = net.caffemodel is not None if weights is None else weights
    if not with_weights:
        built = build_net(net, None, options)
        built.module.eval()
        return built
    from ..api import to_state_dict, whole_net
    from ..whole.records import LearnedLayer  # (the weights' side: not needed to build)

    learned = whole_net(net, options.fold, FoldOptions(flavour=options.flavour))
    index = {layer.name: layer.index for layer in net.layers}
    fused = {index[r.name]: r.fused.batch_norm for r in learned
             if isinstance(r, LearnedLayer) and r.fused is not None}
    records = {r.name: r for r in learned if isinstance(r, FoldedBatchNorm)}
    # On meta without random initialisation: every tensor is then assigned from the weights.
    built = build_net(net, records, options, fused, on_meta=True)
    state = to_state_dict(learned)  # the weights `convert --whole` writes (load_weights)
    if options.bn_train == "caffe":  # CaffeBatchNorm's own buffers (built on meta: empty)
        state.update(_caffe_buffers(records))
    if options.until is not None:  # the layers after it are not built
        wanted = built.module.state_dict().keys()
        state = {k: v for k, v in state.items() if k in wanted}
    assign_weights(built.module, state, net.describe())
    built.module.eval()
    return built


def _caffe_buffers(records: Mapping[str, FoldedBatchNorm]) -> dict[str, torch.Tensor]:
    """``moving_average_fraction`` and ``scale_factor`` of each ``CaffeBatchNorm*d``."""
    from ..naming import key_for_layer_name

    out: dict[str, torch.Tensor] = {}
    for name, record in records.items():
        for field in ("moving_average_fraction", "scale_factor"):
            value = getattr(record, field)
            if value is not None:
                out[f"{key_for_layer_name(name)}.{field}"] = torch.tensor(value,
                                                                          dtype=torch.float32)
    return out


def load_model(prototxt: PathLike, caffemodel: PathLike | None = None, *, fold: str = "keep",
               until: str | None = None, inputs: Mapping[str, Shape] | None = None,
               flavour: str | None = None, class_name: str | None = None,
               bn_train: str | None = None) -> fx.GraphModule:
    """A Caffe net as a ``torch.nn.Module`` in eval mode that computes what Caffe computes.

    Args:
        prototxt: the net definition (deploy, or train/test: loss and accuracy layers are
            left out).
        caffemodel: weights; without it the parameters keep PyTorch's initial values.
        fold: ``"keep"``: every BN chain is one ``nn.BatchNorm*d``; ``"fuse"``: chains after a
            convolution or InnerProduct are folded into it (``build.fuse``).
        until: build up to and including this layer.
        inputs: input shapes overriding the declared ones (only channels matter to the build).
        flavour: the BN flavour of every BN-like layer, None to detect it.
        class_name: the module's class name (default: from the net's name).
        bn_train: ``"caffe"`` builds BatchNorms that continue Caffe's running averages exactly
            at every train step (``CaffeBatchNorm*d``, BVLC/Intel layers; needs the
            caffemodel); default: ``torch.nn.BatchNorm*d`` with the momentum that continues
            them (exact for the next step, or every step for long-trained nets).

    Returns:
        A ``torch.fx.GraphModule``: ``forward(*inputs)`` in declaration order returns the net's
        outputs (one tensor, or a tuple sorted by blob name).

    Raises:
        BnConvertError: a file cannot be read, layers are unsupported or refused by Caffe,
            weights are missing or do not fit.
        ValueError: an unknown ``fold`` mode.

    Example:
        >>> net = load_model(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL)
        >>> tuple(net(torch.randn(2, 8, 8, 8)).shape)
        (2, 16, 8, 8)
    """
    if fold not in FOLD_MODES:
        raise ValueError(f"fold={fold!r}: expected one of {', '.join(FOLD_MODES)}")
    options = BuildOptions(until=until, inputs=inputs, flavour=flavour, class_name=class_name,
                           bn_train=bn_train,
                           fold=fold)
    with paused_gc():  # one full collection of torch's heap would cost more than the build
        return build_model(load_net(prototxt, caffemodel), options).module
