"""The typed reading of a Caffe layer: one frozen ``Params`` dataclass per layer type, with
Caffe's defaults applied, registered by the exact Caffe ``type`` string.

A ``Params`` class declares fields named as in ``caffe.proto``; ``read_params`` copies them from
the layer's ``<name>_param`` message (protobuf gives Caffe's declared defaults for unset fields;
repeated fields become tuples; floats are Caffe's float32 values). A class whose fields are not a
plain copy overrides ``from_message``. Later stages read these records, never protobuf fields.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .._proto import caffe_pb2
from ..registry import Registry

__all__ = ["Params", "NoParams", "UnknownParams", "UnreadableParams", "LayerParamError",
           "reads", "read_params", "known_layer_types", "bvlc_layer_types", "is_learned",
           "LEARNED", "FORK_TYPES", "float32",
           "PARAMS_BY_TYPE"]

_DEFAULT_LAYER = caffe_pb2.LayerParameter()


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32 and widened back (how Caffe stores a float;
    too large for float32: ±inf, as a C cast).

    Example:
        >>> float32(1e-5), float32(1e300)
        (9.999999747378752e-06, inf)
    """
    return array.array("f", [value])[0]


class LayerParamError(Exception):
    """A layer's parameters cannot be read (malformed fork field, a value Caffe refuses); the
    reader of the net turns it into a problem of that layer."""


@dataclass(frozen=True)
class Params:
    """Base of every layer type's parameters.

    Class attributes:
        proto_field: the ``LayerParameter`` field holding the parameters (``"convolution_param"``),
            or None for types without parameters.
        learned: True for types that carry trained blobs (a caffemodel must supply them).
    """

    proto_field: ClassVar[str | None] = None
    learned: ClassVar[bool] = False

    @classmethod
    def from_message(cls, param: Message, extras: Mapping[str, Any]) -> Params:
        """Copy the dataclass's fields from the ``<name>_param`` message (see the module doc)."""
        return cls(**{f.name: _value(param, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class NoParams(Params):
    """A known layer type that has no parameters bnconvert needs."""


@dataclass(frozen=True)
class UnknownParams(Params):
    """A layer type bnconvert has no reading of (fork layers, custom layers)."""

    type: str = ""


@dataclass(frozen=True)
class UnreadableParams(Params):
    """A layer whose parameters could not be read; ``problem`` says why."""

    type: str = ""
    problem: str = ""


def _value(param: Message, name: str) -> Any:
    descriptor = param.DESCRIPTOR.fields_by_name[name]
    value = getattr(param, name)
    if descriptor.is_repeated:
        if descriptor.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
            return tuple(float32(v) for v in value)
        return tuple(value)
    if descriptor.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return float32(value)
    return value


P = TypeVar("P", bound=type[Params])
_Reader = Callable[[Message, Mapping[str, Any]], Params]
#: Caffe type string -> Params class (one table: ``known_layer_types`` and inspect read it)
PARAMS_BY_TYPE: Registry[Any] = Registry("layer type reading")
#: types whose layers carry learned blobs
LEARNED: set[str] = set()
#: types that exist only in Caffe forks (not in BVLC Caffe)
FORK_TYPES: set[str] = set()


def reads(*types: str, fork: bool = False) -> Callable[[P], P]:
    """Class decorator: register a ``Params`` class as the reading of the Caffe ``types``
    (``fork``: types of Caffe forks, not BVLC's)."""

    def decorate(cls: P) -> P:
        PARAMS_BY_TYPE.register(*types)(cls)
        if cls.learned:
            LEARNED.update(types)
        if fork:
            FORK_TYPES.update(types)
        return cls

    return decorate


def _param_message(message: Message, field: str) -> Message:
    """The layer's ``field`` sub-message; a V1 layer without that field gives the defaults."""
    if field in message.DESCRIPTOR.fields_by_name:
        sub: Message = getattr(message, field)
        return sub
    sub_default: Message = getattr(_DEFAULT_LAYER, field)
    return sub_default


def read_params(layer_type: str, message: Message, extras: Mapping[str, Any]) -> Params:
    """The typed parameters of one layer.

    Args:
        layer_type: the Caffe type string (V1 enums already mapped to it).
        message: the ``LayerParameter`` (or ``V1LayerParameter``).
        extras: fork fields the BVLC schema does not know (``read.fork_params``).

    Returns:
        The type's ``Params``; ``UnknownParams`` for a type bnconvert does not know.

    Raises:
        LayerParamError: the parameters are malformed.
    """
    from . import types  # noqa: F401  (registers every layer type)

    cls = PARAMS_BY_TYPE.get(layer_type)
    if cls is None:
        return UnknownParams(type=layer_type)
    param = _param_message(message, cls.proto_field) if cls.proto_field else _DEFAULT_LAYER
    result: Params = cls.from_message(param, extras)
    return result


def known_layer_types() -> frozenset[str]:
    """Every Caffe type string bnconvert reads."""
    from . import types  # noqa: F401

    return frozenset(PARAMS_BY_TYPE)


def bvlc_layer_types() -> frozenset[str]:
    """The known types that BVLC Caffe itself has (the others are forks')."""
    return known_layer_types() - FORK_TYPES


def is_learned(layer_type: str) -> bool:
    """True for a type whose layers carry trained blobs."""
    from . import types  # noqa: F401

    return layer_type in LEARNED
