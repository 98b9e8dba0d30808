"""The whole-model state_dict of a built net, from the caffemodel's blobs.

INTERIM: issue #11 writes the whole-model weights (``convert --whole``,
``bnconvert.load_weights``) under the same contract this module follows: every layer's key is
``naming.key_for_layer_name(layer.name)``; Convolution / Deconvolution / InnerProduct tensors
are ``nn.Conv*d`` / ``nn.ConvTranspose*d`` / ``nn.Linear``'s (a legacy (1, 1, N, K) or a
``transpose: true`` InnerProduct weight made (N, K)); Embed, PReLU, Scale and Bias keep their
Caffe-shaped blobs under ``bnconvert.modules``' parameter names; a BN chain is its
``FoldedBatchNorm`` record's tensors under the BatchNorm layer's key. When #11 is merged,
``load_model`` calls its loader instead of ``caffe_state_dict`` (one line in ``api``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import BlobError, MissingLayerError
from ..layers.learned import ConvolutionParams, InnerProductParams, ScaleParams
from ..naming import key_for_layer_name
from ..read.blob import BlobRef
from ..read.net import Layer, Net
from ..records import FoldedBatchNorm

__all__ = ["caffe_state_dict"]

_BLOB_NAMES = {"Convolution": ("weight", "bias"), "CuDNNConvolution": ("weight", "bias"),
               "ConvolutionDepthwise": ("weight", "bias"),
               "DepthwiseConvolution": ("weight", "bias"), "Deconvolution": ("weight", "bias"),
               "InnerProduct": ("weight", "bias"), "Embed": ("weight", "bias"),
               "PReLU": ("weight",), "Bias": ("bias",)}


def _names(layer: Layer, module: nn.Module) -> tuple[str, ...]:
    if isinstance(layer.params, ConvolutionParams | InnerProductParams):
        return ("weight", "bias") if layer.params.bias_term else ("weight",)
    if layer.type == "Scale":
        params = layer.params
        two_bottoms = len(layer.bottoms) == 2
        bias = isinstance(params, ScaleParams) and params.bias_term
        return ("bias",) if two_bottoms else ("weight", "bias") if bias else ("weight",)
    return tuple(n for n in _BLOB_NAMES.get(layer.type, ()) if getattr(module, n, None) is not None)


def _tensor(net: Net, layer: Layer, ref: BlobRef, target: torch.Tensor) -> torch.Tensor:
    blob = ref.values()
    params = layer.params
    if isinstance(params, InnerProductParams) and params.transpose and len(ref.shape) >= 2:
        blob = blob.reshape(-1, ref.shape[-1]).T
    if blob.size != target.numel():
        raise BlobError(f"{net.caffemodel}: layer {layer.name!r} ({layer.type}): blob of shape "
                        f"{list(blob.shape)} does not fit {list(target.shape)}; is the "
                        "caffemodel from this net?")
    return torch.from_numpy(np.array(blob, dtype=np.float32)).reshape(target.shape)


def caffe_state_dict(net: Net, module: nn.Module,
                     records: Mapping[str, FoldedBatchNorm]) -> dict[str, torch.Tensor]:
    """The state_dict of the built ``module`` from ``net``'s caffemodel blobs and BN records.

    Raises:
        MissingLayerError: a built layer with parameters has no weights in the caffemodel.
        BlobError: a blob count or size that does not fit the layer.
    """
    children = dict(module.named_children())
    out: dict[str, torch.Tensor] = {}
    for layer in net.layers:
        key = key_for_layer_name(layer.name)
        if key not in children or not children[key].state_dict():
            continue
        if layer.name in records:
            for name, array in records[layer.name].tensors().items():
                out[f"{key}.{name}"] = torch.from_numpy(np.array(array))
            continue
        names = _names(layer, children[key])
        if layer.blobs is None:
            raise MissingLayerError(f"{net.describe()}: layer {layer.name!r} ({layer.type}) "
                                    "has no weights in the caffemodel")
        if len(layer.blobs) != len(names):
            raise BlobError(f"{net.caffemodel}: layer {layer.name!r} ({layer.type}) has "
                            f"{len(layer.blobs)} blobs, expected {len(names)} ({', '.join(names)})")
        for name, blob in zip(names, layer.blobs, strict=True):
            target = getattr(children[key], name)
            out[f"{key}.{name}"] = _tensor(net, layer, blob, target)
    return out
