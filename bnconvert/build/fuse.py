"""``fold="fuse"``: a BN chain folded into the convolution or InnerProduct before it.

A chain is fused when its BatchNorm is the only reader of a Convolution's (or InnerProduct's,
channel axis 1) output and carries no fused ReLU; the layer then gets a bias and the chain no
module. With ``s = weight / sqrt(running_var + eps)`` (weight 1 for a non-affine BN)::

    W' = W · s  (per output channel)        b' = (b − running_mean) · s + bias  (b = 0 if none)

computed in float64 and stored as float32. The fused layer's own top is no blob of the built
net any more (its value is the chain's output).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..fold.chains import ChainAnalysis
from ..graph.blobs import BlobGraph
from ..layers.learned import ConvolutionParams, InnerProductParams
from ..layers.normalization import BatchNormParams
from ..naming import key_for_layer_name
from ..read.net import Net
from ..records import FoldedBatchNorm

__all__ = ["fusable", "fuse_state", "FUSABLE_TYPES"]

FUSABLE_TYPES = ("Convolution", "CuDNNConvolution", "ConvolutionDepthwise",
                 "DepthwiseConvolution", "InnerProduct")


def fusable(net: Net, analysis: ChainAnalysis) -> dict[int, str]:
    """Producer layer index -> the BatchNorm layer name fused into it."""
    graph = BlobGraph(net)
    out: dict[int, str] = {}
    for chain in analysis.chains:
        producer, bn = chain.producer, chain.batch_norm
        if producer is None or producer.type not in FUSABLE_TYPES or chain.problems:
            continue
        params = producer.params
        if not isinstance(params, ConvolutionParams | InnerProductParams) or params.axis != 1:
            continue
        if isinstance(bn.params, BatchNormParams) and bn.params.fused_relu:
            continue
        reader, _ = graph.sole_reader(producer)
        if reader is bn and graph.inputs[bn.index][0] == graph.outputs[producer.index][0]:
            out[producer.index] = bn.name
    return out


def fuse_state(state: dict[str, torch.Tensor], net: Net, fused: Mapping[int, str],
               records: Mapping[str, FoldedBatchNorm]) -> dict[str, torch.Tensor]:
    """The state_dict with each fused layer's weight and bias folded (formula above); a
    layer without a bias blob gets one."""
    out = dict(state)
    for index, bn_name in fused.items():
        key = key_for_layer_name(net.layers[index].name)
        record = records[bn_name]
        weight = out[f"{key}.weight"].double().numpy()
        channels = record.channels
        gamma = np.ones(channels) if record.weight is None else record.weight.astype(np.float64)
        beta = np.zeros(channels) if record.bias is None else record.bias.astype(np.float64)
        s = gamma / np.sqrt(record.running_var.astype(np.float64) + record.eps)
        old_bias = out.get(f"{key}.bias")
        b = np.zeros(channels) if old_bias is None else old_bias.double().numpy()
        shape = (channels,) + (1,) * (weight.ndim - 1)
        out[f"{key}.weight"] = torch.from_numpy((weight * s.reshape(shape)).astype(np.float32))
        out[f"{key}.bias"] = torch.from_numpy(
            ((b - record.running_mean) * s + beta).astype(np.float32))
    return out
