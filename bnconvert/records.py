"""What crosses from converting to writing: a net's converted layers. Each ``ConvertedLayer``
is named tensors plus the PyTorch module they belong to; a BatchNorm chain (``FoldedBatchNorm``)
is one kind. Writers never look at Caffe messages, and keys are not fixed here: a naming policy
(``bnconvert.naming``) turns a record's Caffe layer name into its key when writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ChainLayers", "ConvertedLayer", "FoldedBatchNorm", "batch_norm_class"]

#: rank of a BN's input -> the torch.nn class (the one table of this fact)
_BATCH_NORM_CLASS = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


def batch_norm_class(rank: int | None) -> str:
    """``BatchNorm1d``/``2d``/``3d`` for an input rank (2d where the rank is unknown).

    Example:
        >>> batch_norm_class(2), batch_norm_class(None), batch_norm_class(5)
        ('BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d')
    """
    return _BATCH_NORM_CLASS.get(rank or 4, "BatchNorm2d")


class ConvertedLayer:
    """One converted unit of a net. Subclasses are frozen dataclasses.

    Class attributes:
        kind: what the record is (``"batch_norm"``, ...), as the manifest names it.
    """

    kind: ClassVar[str]
    warnings: tuple[str, ...]

    @property
    def name(self) -> str:
        """The Caffe layer whose name a naming policy turns into the key."""
        raise NotImplementedError

    @property
    def module(self) -> str:
        """The ``torch.nn`` class the tensors belong to."""
        raise NotImplementedError

    def tensors(self) -> dict[str, np.ndarray]:
        """The module's state_dict entries (without the key), in the module's order."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a manifest records of this layer besides its key and tensors (JSON-ready)."""
        raise NotImplementedError


@dataclass(frozen=True)
class ChainLayers:
    """The Caffe layers one BN record was folded from, by layer name (None where absent)."""

    batch_norm: str
    scale: str | None = None
    bias: str | None = None
    batch_norm_type: str = "BatchNorm"

    def names(self) -> tuple[str, ...]:
        """The layer names in graph order, absent ones left out."""
        return tuple(n for n in (self.batch_norm, self.scale, self.bias) if n is not None)


@dataclass(frozen=True, eq=False)
class FoldedBatchNorm(ConvertedLayer):
    """Caffe's effective TEST-phase batch normalization of one chain, in PyTorch's terms.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel (axis 1).
    ``weight``/``bias`` are None for a non-affine BN (a BatchNorm with no Scale). Arrays are
    float32 of shape ``(channels,)`` and read-only.

    Attributes:
        layers: the Caffe layers folded into this record.
        channels: number of channels C.
        rank: rank of the BN's input blob (2 for (N,C), 4 for (N,C,H,W), 5 for (N,C,D,H,W)),
            or None where the net does not tell.
        eps: Caffe's eps as a float32 value widened to float.
        scale_factor: the BatchNorm's third blob (s), None for layers without one.
        use_global_stats: False when Caffe normalizes with batch statistics in TEST.
        flavour: which BN implementation the layer came from (``bnconvert.flavours``).
        momentum: PyTorch's ``momentum`` to train on with (``--momentum``; by default the one
            that continues Caffe's running averages, ``bnconvert.fold.momentum``); None for
            PyTorch's cumulative average (``num_batches_tracked`` then counts the batches).
        num_batches_tracked: the state_dict's count (Caffe's s for a cumulative average).
        moving_average_fraction: ``batch_norm_param.moving_average_fraction`` of a
            ``BatchNorm`` layer, None for the forks' ``BN``.
        running_average: how the flavour's running averages move in TRAIN
            (``Flavour.running_average``: ``scale-factor``, ``fixed-factor``, ``none``).
        momentum_exact: for how many train-mode steps ``momentum`` continues Caffe
            (``Continuation.exact``); momentum_note: why, in one sentence.
        warnings: human-readable notes about this record (zero scale factor, batch stats, ...).
    """

    kind: ClassVar[str] = "batch_norm"
    layers: ChainLayers
    channels: int
    rank: int | None
    eps: float
    running_mean: np.ndarray
    running_var: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None
    scale_factor: float | None = None
    use_global_stats: bool = True
    flavour: str = "bvlc"
    warnings: tuple[str, ...] = field(default=())
    momentum: float | None = 0.1
    num_batches_tracked: int = 0
    moving_average_fraction: float | None = None
    running_average: str = "none"
    momentum_exact: str = "approximate"
    momentum_note: str = "PyTorch's default momentum"

    @property
    def name(self) -> str:
        """The BatchNorm layer's name."""
        return self.layers.batch_norm

    @property
    def key(self) -> str:
        """The key under the default naming policy (Caffe's layer name, ``bnconvert.naming``)."""
        from .naming import key_for_layer_name

        return key_for_layer_name(self.name)

    @property
    def affine(self) -> bool:
        """True when the record carries weight and bias."""
        return self.weight is not None

    @property
    def module(self) -> str:
        """``BatchNorm1d``/``2d``/``3d`` from the input rank."""
        return batch_norm_class(self.rank)

    torch_class = module

    def tensors(self) -> dict[str, np.ndarray]:
        """``weight``, ``bias`` (affine only), ``running_mean``, ``running_var``,
        ``num_batches_tracked`` (int64: the batch count of a cumulative average, else 0)."""
        import numpy as np

        out: dict[str, np.ndarray] = {}
        if self.weight is not None and self.bias is not None:
            out["weight"], out["bias"] = self.weight, self.bias
        out["running_mean"], out["running_var"] = self.running_mean, self.running_var
        out["num_batches_tracked"] = np.array(self.num_batches_tracked, dtype=np.int64)
        return out

    def describe(self) -> dict[str, Any]:
        """Module class, Caffe layers, channels, rank, eps, scale factor, affine, flavour,
        and how train mode continues Caffe's running averages (momentum ...)."""
        return {
            "module": self.module,
            "caffe_layers": {"batch_norm": self.layers.batch_norm, "scale": self.layers.scale,
                             "bias": self.layers.bias,
                             "batch_norm_type": self.layers.batch_norm_type},
            "channels": self.channels, "rank": self.rank, "eps": self.eps,
            "scale_factor": self.scale_factor, "affine": self.affine,
            "use_global_stats": self.use_global_stats, "flavour": self.flavour,
            "momentum": self.momentum, "num_batches_tracked": self.num_batches_tracked,
            "moving_average_fraction": self.moving_average_fraction,
            "running_average": self.running_average, "momentum_exact": self.momentum_exact,
            "momentum_note": self.momentum_note,
            "warnings": list(self.warnings),
        }
