"""bnconvert.modules against real Caffe, layer by layer, on the whole-net fixtures.

Each layer's module is built from the prototxt's parameters (Caffe's defaults read from the
proto with HasField) and the caffemodel's blobs, run on Caffe's recorded input (the recorded
output of the layer that wrote each bottom) and compared with Caffe's recorded output:
max|diff| / max|ref| <= 1e-5, NaN exactly where Caffe has NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from whole_fixtures import NETS, RecordedLayer, layers_of, recorded, relative_error

from bnconvert._proto import caffe_pb2
from bnconvert.modules import (
    Bias,
    CaffePool2d,
    Concat,
    EltwiseMax,
    EltwiseProd,
    EltwiseSum,
    LRNWithinChannel,
    Power,
    PReLU,
    Reshape,
    Scale,
    caffe_lrn,
    caffe_pooling,
)

TOLERANCE = 1e-5
P = caffe_pb2


def _pair(param: caffe_pb2.PoolingParameter, name: str, default: int) -> tuple[int, int]:
    if param.HasField(f"{name}_h"):
        return getattr(param, f"{name}_h"), getattr(param, f"{name}_w")
    single = "kernel_size" if name == "kernel" else name
    value = getattr(param, single) if param.HasField(single) else default
    return value, value


def pooling_args(param: caffe_pb2.PoolingParameter) -> dict[str, object]:
    """Caffe's pooling_param as caffe_pooling keyword arguments."""
    return {"kernel": _pair(param, "kernel", 0), "stride": _pair(param, "stride", 1),
            "pad": _pair(param, "pad", 0), "max_pool": param.pool == P.PoolingParameter.MAX,
            "ceil_mode": param.round_mode == P.PoolingParameter.CEIL,
            "global_pooling": param.global_pooling}


def _pooling(layer: RecordedLayer) -> nn.Module:
    return caffe_pooling(**pooling_args(layer.param.pooling_param))  # type: ignore[arg-type]


def _lrn(layer: RecordedLayer) -> nn.Module:
    p = layer.param.lrn_param
    return caffe_lrn(p.local_size, p.alpha, p.beta, p.k,
                     p.norm_region == P.LRNParameter.WITHIN_CHANNEL)


def _eltwise(layer: RecordedLayer) -> nn.Module:
    p = layer.param.eltwise_param
    if p.operation == P.EltwiseParameter.PROD:
        return EltwiseProd()
    if p.operation == P.EltwiseParameter.MAX:
        return EltwiseMax()
    return EltwiseSum(tuple(p.coeff) or None)


def _concat(layer: RecordedLayer) -> nn.Module:
    p = layer.param.concat_param
    return Concat(p.concat_dim if p.HasField("concat_dim") else p.axis)


def _reshape(layer: RecordedLayer) -> nn.Module:
    p = layer.param.reshape_param
    return Reshape(tuple(p.shape.dim), p.axis, p.num_axes)


def _prelu(layer: RecordedLayer) -> nn.Module:
    (slopes,) = layer.blobs
    module = PReLU(layer.inputs[0].shape[1], layer.param.prelu_param.channel_shared)
    module.weight.data = torch.from_numpy(slopes)
    return module


def _scale(layer: RecordedLayer) -> nn.Module:
    p, ndim = layer.param.scale_param, layer.inputs[0].ndim
    module = Scale(layer.blobs[0].shape, p.axis, ndim, p.bias_term)
    module.weight.data = torch.from_numpy(layer.blobs[0])
    if p.bias_term:
        assert module.bias is not None
        module.bias.data = torch.from_numpy(layer.blobs[1])
    return module


def _bias(layer: RecordedLayer) -> nn.Module:
    p = layer.param.bias_param
    module = Bias(layer.blobs[0].shape, p.axis, layer.inputs[0].ndim)
    module.bias.data = torch.from_numpy(layer.blobs[0])
    return module


def _relu(layer: RecordedLayer) -> nn.Module:
    slope = layer.param.relu_param.negative_slope
    return nn.LeakyReLU(slope) if slope else nn.ReLU()


BUILDERS: dict[str, Callable[[RecordedLayer], nn.Module]] = {
    "Pooling": _pooling, "LRN": _lrn, "Eltwise": _eltwise, "Concat": _concat,
    "Reshape": _reshape, "PReLU": _prelu, "Scale": _scale, "Bias": _bias, "ReLU": _relu,
    "Flatten": lambda r: nn.Flatten(r.param.flatten_param.axis, r.param.flatten_param.end_axis),
    "Softmax": lambda r: nn.Softmax(dim=r.param.softmax_param.axis),
    "Power": lambda r: Power(r.param.power_param.power, r.param.power_param.scale,
                             r.param.power_param.shift),
    "TanH": lambda r: nn.Tanh(), "Sigmoid": lambda r: nn.Sigmoid(),
    "Dropout": lambda r: nn.Identity(),
}
CASES = [(net, name) for net in NETS for name in layers_of(net, *BUILDERS)]


def run(module: nn.Module, layer: RecordedLayer) -> np.ndarray:
    """The module's first output on Caffe's recorded inputs."""
    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in layer.inputs))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def layer_error(net: str, name: str) -> tuple[str, str, float]:
    """(Caffe type, module class, relative error) of one fixture layer."""
    layer = recorded(net, name)
    module = BUILDERS[layer.param.type](layer)
    return layer.param.type, type(module).__name__, relative_error(run(module, layer),
                                                                   layer.output)


@pytest.mark.parametrize(("net", "name"), CASES, ids=[f"{n}/{m}" for n, m in CASES])
def test_module_reproduces_caffe(net: str, name: str) -> None:
    assert layer_error(net, name)[2] <= TOLERANCE


def test_every_pooling_and_lrn_of_the_fixtures_is_covered() -> None:
    assert len(layers_of("pooling_semantics", "Pooling")) == 14
    covered = {(n, m) for n, m in CASES}
    for net in NETS:
        for name in layers_of(net, "Pooling", "LRN", "Eltwise", "Concat", "Scale", "PReLU"):
            assert (net, name) in covered


@pytest.mark.parametrize("name", layers_of("pooling_semantics", "Pooling") + ["pool1", "pool3"])
def test_general_pooling_path_reproduces_caffe(name: str) -> None:
    """CaffePool2d (explicit padding, Caffe's formulas) on every pooling, fast-path ones too."""
    net = "vgg_style_lrn" if name in ("pool1", "pool3") else "pooling_semantics"
    layer = recorded(net, name)
    args = pooling_args(layer.param.pooling_param)
    if args.pop("global_pooling"):
        h, w = layer.inputs[0].shape[2:]
        args.update(kernel=(h, w), stride=(1, 1), pad=(0, 0))
    module = CaffePool2d(**args)  # type: ignore[arg-type]
    assert relative_error(run(module, layer), layer.output) <= TOLERANCE


def test_the_pad_2_poolings_need_the_general_path() -> None:
    for name in ("ave_k3s3p2", "max_k3s3p2"):
        module = _pooling(recorded("pooling_semantics", name))
        assert isinstance(module, CaffePool2d)
    assert isinstance(_pooling(recorded("pooling_semantics", "max_k3s2p1")), nn.MaxPool2d)
    assert isinstance(_lrn(recorded("vgg_style_lrn", "norm2")), LRNWithinChannel)


def test_floor_rounding_for_a_ceil_pool_fails() -> None:
    layer = recorded("pooling_semantics", "ave_k2s2_ceil")
    args = pooling_args(layer.param.pooling_param)
    args["ceil_mode"] = False
    with pytest.raises(AssertionError, match="shape"):
        relative_error(run(caffe_pooling(**args), layer), layer.output)  # type: ignore[arg-type]


def test_an_ave_divisor_ignoring_padding_fails() -> None:
    layer = recorded("pooling_semantics", "ave_k3s2p1")
    wrong = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert relative_error(run(wrong, layer), layer.output) > 1e-2


def test_lrn_within_channel_honouring_k_fails() -> None:
    """norm2 has k: 2; a version that adds k instead of 1 is visibly off."""
    layer = recorded("vgg_style_lrn", "norm2")
    p = layer.param.lrn_param
    x = torch.from_numpy(layer.inputs[0])
    pooled = nn.functional.avg_pool2d(x * x, p.local_size, 1, p.local_size // 2)
    wrong = (x * (pooled * p.alpha + p.k).pow(-p.beta)).numpy()
    assert relative_error(wrong, layer.output) > 0.1
    assert layer_error("vgg_style_lrn", "norm2")[2] <= TOLERANCE


def test_eltwise_sum_without_its_coefficients_fails() -> None:
    layer = recorded("pooling_semantics", "esum")
    assert relative_error(run(EltwiseSum(), layer), layer.output) > 1e-2
