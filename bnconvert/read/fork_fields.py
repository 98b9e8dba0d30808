"""Fork fields that bnconvert reads although BVLC's schema does not know them.

The prototxt parser reports every field the schema lacks as skipped (``UnknownField``); the
ones below are not lost, ``read.fork_params`` keeps them and the fold reads them, so reports
must not call them skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prototxt import UnknownField

__all__ = ["READ_FORK_FIELDS", "is_read_fork_field"]

#: (schema message, field) -> the layer types whose field is read.
READ_FORK_FIELDS: Mapping[tuple[str, str], frozenset[str]] = {
    # SegNet/ENet and PSPNet/yjxiong `BN` layers: the whole block.
    ("LayerParameter", "bn_param"): frozenset({"BN"}),
    ("V1LayerParameter", "bn_param"): frozenset({"BN"}),
    # NVIDIA Caffe 0.17's scale/bias inside the BatchNorm, and Intel's fused ReLU.
    ("BatchNormParameter", "scale_bias"): frozenset({"BatchNorm"}),
    ("BatchNormParameter", "scale_filler"): frozenset({"BatchNorm"}),
    ("BatchNormParameter", "bias_filler"): frozenset({"BatchNorm"}),
    ("BatchNormParameter", "relu"): frozenset({"BatchNorm"}),
    # The fork field ceil_mode of Pooling (false: floor rounding), read by layers.structure.
    ("PoolingParameter", "ceil_mode"): frozenset({"Pooling"}),
}


def is_read_fork_field(unknown: UnknownField, layer_types: Mapping[str, str]) -> bool:
    """True when ``unknown`` is a fork field bnconvert reads (see ``READ_FORK_FIELDS``).

    Args:
        unknown: a skipped field reported by the prototxt parser.
        layer_types: layer name -> type, to tell e.g. a ``BN`` layer's ``bn_param`` (read) from
            one on another layer (not read).
    """
    if unknown.kind != "field" or unknown.layer is None:
        return False
    types = READ_FORK_FIELDS.get((unknown.message, unknown.field))
    return types is not None and layer_types.get(unknown.layer) in types
