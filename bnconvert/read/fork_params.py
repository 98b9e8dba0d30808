"""Parameters of Caffe forks that BVLC's schema does not know, as one plain mapping per layer.

From a prototxt they come from the parser's ``layer_extras`` (values as written). From a
caffemodel they are decoded from the layer's unknown protobuf fields by the forks' own field
numbers (sources: each fork's ``caffe.proto``):

- SegNet/ENet (alexgkendall/caffe-segnet): ``LayerParameter.bn_param = 45``:
  ``scale_filler = 1``, ``shift_filler = 2``, ``bn_mode = 3`` (LEARN 0, INFERENCE 1).
- PSPNet / yjxiong: ``LayerParameter.bn_param = 152``: ``slope_filler = 1``,
  ``bias_filler = 2``, ``momentum = 3``, ``eps = 4``, ``frozen = 5``, ``engine = 6``.
- NVIDIA Caffe 0.17: ``BatchNormParameter.scale_bias = 7`` (``scale_filler = 5``,
  ``bias_filler = 6``).

Both forms give e.g. ``{"bn_param": {"bn_mode": "INFERENCE"}}`` or
``{"batch_norm_param": {"scale_bias": "true"}}``: last value wins, nested blocks are dicts,
scalars are strings as a prototxt would write them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from .wire import FIXED32, LENGTH, VARINT, WireFormatError, iter_fields

__all__ = ["flatten_extras", "binary_fork_params", "truthy"]

_SEGNET_BN, _YJXIONG_BN, _BATCH_NORM_PARAM = 45, 152, 139
_SEGNET_FIELDS = {1: "scale_filler", 2: "shift_filler", 3: "bn_mode"}
_SEGNET_MODES = {0: "LEARN", 1: "INFERENCE"}
_YJXIONG_FIELDS = {1: "slope_filler", 2: "bias_filler", 3: "momentum", 4: "eps", 5: "frozen",
                   6: "engine"}
_NVIDIA_BN_FIELDS = {5: "scale_filler", 6: "bias_filler", 7: "scale_bias"}


def flatten_extras(extras: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Parser extras (lists of values per field) -> last value per field, recursively."""
    out: dict[str, Any] = {}
    for name, values in extras.items():
        if not values:
            continue
        last = values[-1]
        out[name] = flatten_extras(last) if isinstance(last, Mapping) else last
    return out


def _decode(raw: bytes, start: int, end: int, names: Mapping[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, a, b in iter_fields(raw, start, end):
        name = names.get(number)
        if name is None:
            continue
        if wire == VARINT:
            out[name] = "true" if a == 1 and name in ("frozen", "scale_bias") else str(a)
        elif wire == FIXED32:
            out[name] = repr(struct.unpack("<f", raw[a:b])[0])
        elif wire == LENGTH:
            out[name] = {}  # a filler: its presence is what matters
    return out


def binary_fork_params(params: Message) -> dict[str, Any]:
    """Fork fields kept as unknown fields in a decoded layer definition (see module doc)."""
    raw = params.SerializeToString()
    out: dict[str, Any] = {}
    try:
        for number, wire, a, b in iter_fields(raw, 0, len(raw)):
            if wire != LENGTH:
                continue
            if number == _SEGNET_BN:
                fields = _decode(raw, a, b, _SEGNET_FIELDS)
                if "bn_mode" in fields:
                    fields["bn_mode"] = _SEGNET_MODES.get(int(fields["bn_mode"]), fields["bn_mode"])
                out["bn_param"] = fields
            elif number == _YJXIONG_BN:
                out["bn_param"] = _decode(raw, a, b, _YJXIONG_FIELDS)
            elif number == _BATCH_NORM_PARAM:
                fields = _decode(raw, a, b, _NVIDIA_BN_FIELDS)
                if fields:
                    out["batch_norm_param"] = fields
    except WireFormatError:
        return out
    return out


def truthy(value: Any) -> bool:
    """A prototxt boolean as written (``true``, ``True``, ``t``, ``1``)."""
    return str(value).strip().lower() in ("true", "t", "1")
