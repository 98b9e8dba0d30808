"""``fold="fuse"`` without weights: which layers a BN chain would fold into, decided by the
graph (the BatchNorm the only reader of a Convolution's or InnerProduct's channel-axis-1 output,
no fused ReLU). With a caffemodel the builder follows ``load_weights``' records instead, which
fuse the tensors (``bnconvert.whole.fuse``); the fused layer gets a bias and the chain no
module, and its own top is no blob of the built net any more.
"""

from __future__ import annotations

from ..fold.chains import ChainAnalysis
from ..graph.blobs import BlobGraph
from ..layers.learned import ConvolutionParams, InnerProductParams
from ..layers.normalization import BatchNormParams
from ..read.net import Net

__all__ = ["fusable", "FUSABLE_TYPES"]

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
