"""What a BN flavour is: one Caffe implementation of batch normalization (BVLC's or a fork's),
as an object that knows everything about its layers — how to recognize them, their blob layout,
their eps rule, what ``use_global_stats`` (or the fork's mode) means in TEST, how they fold into
a PyTorch BatchNorm, and how verify's independent reference reads their raw blobs.

Each flavour lives in a module of its own and registers itself with ``@flavour``; detection
tries the flavours of a layer type in registration order. Nothing here imports numpy or torch
(``inspect`` uses flavours): ``fold`` and ``read_reference`` import what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..fold.checks import BlobLayout
from ..read.net import Layer

if TYPE_CHECKING:
    from ..fold.chains import BatchNormChain
    from ..fold.momentum import Continuation
    from ..fold.options import FoldOptions
    from ..read.net import Net
    from ..records import FoldedBatchNorm
    from ..verify.reference_forks import ReferenceChain

__all__ = ["Flavour", "FLAVOURS", "flavour"]


class Flavour:
    """One BN implementation. Subclasses set the class attributes and override what differs.

    Class attributes:
        id: the flavour id (``bvlc``, ``segnet``, ...), as ``--flavor`` and manifests name it.
        title: how reports name it.
        layer_type: the Caffe type string of its layers (``BatchNorm`` or ``BN``).
        selectable: offered by ``--flavor`` (variants of another flavour are not).
        running_average: see the attribute's comment.
        batch_statistics_in_test: the layer normalizes with each batch's statistics in TEST
            (see ``batch_statistics``).
    """

    id: ClassVar[str]
    title: ClassVar[str]
    layer_type: ClassVar[str]
    selectable: ClassVar[bool] = True
    #: how its running averages move in TRAIN: ``"scale-factor"`` (BVLC's sums and scale
    #: factor; ``bnconvert.modules.CaffeBatchNorm*d`` continues them at every step),
    #: ``"fixed-factor"`` (a constant factor, like PyTorch's momentum) or ``"none"``
    running_average: ClassVar[str] = "none"

    def claims(self, layer: Layer) -> bool:
        """True when ``layer`` (of ``layer_type``) is this flavour's, by its parameters and
        (when the caffemodel is loaded) its blobs."""
        raise NotImplementedError

    def refine(self, layer: Layer) -> Flavour:
        """The flavour to use when ``--flavor`` names this one (a variant may fit better)."""
        return self

    def layout(self, layer: Layer) -> BlobLayout:
        """What the layer's blobs are (count, names, which is the variance and the scale
        factor): ``fold.checks`` checks them by it, for ``convert`` and ``inspect`` alike."""
        raise NotImplementedError

    def fused_affine(self, layer: Layer) -> bool:
        """True when the layer carries its own scale and shift (no Scale layer is paired)."""
        return False

    def eps(self, layer: Layer) -> float | None:
        """The eps its TEST forward adds to the variance (float32 widened), None for none."""
        raise NotImplementedError

    def batch_statistics(self, layer: Layer) -> str | None:
        """Why the layer normalizes with each batch's own statistics in TEST (so eval-mode
        PyTorch cannot match it), or None when it uses its stored statistics."""
        return None

    def notes(self, layer: Layer) -> tuple[str, ...]:
        """Facts about how this implementation runs the layer worth a line in every report
        (without the layer name: each report says which layer)."""
        return ()

    def scale_factor(self, layer: Layer) -> float | None:
        """The stored scale factor s, or None for layouts without one (no numpy needed)."""
        return None

    def continuation(self, layer: Layer, scale_factor: float | None,
                     where: str = "") -> Continuation:
        """How a plain PyTorch BatchNorm continues the layer's running averages in train mode
        (``bnconvert.fold.momentum``/``momentum_forks``; imports numpy).

        Args:
            layer: the BN layer; scale_factor: its folded record's scale factor (blob 2).
            where: file and layer, to prefix error messages.

        Raises:
            NumericError: an averaging parameter outside [0, 1], a bad scale factor.
        """
        from ..fold.momentum import TORCH_DEFAULT_MOMENTUM, Continuation

        return Continuation(TORCH_DEFAULT_MOMENTUM, 0, "approximate",
                            f"how {self.title} updates its running averages is not known to "
                            "bnconvert; PyTorch's default momentum is kept")

    def fold(self, net: Net, chain: BatchNormChain, options: FoldOptions) -> FoldedBatchNorm:
        """Caffe's effective TEST-phase parameters of the chain as PyTorch's BatchNorm."""
        raise NotImplementedError

    def read_reference(self, net: Net, chain: BatchNormChain) -> ReferenceChain:
        """The chain's raw blobs as this implementation loads them, for verify's reference
        (shares no arithmetic with ``fold``)."""
        raise NotImplementedError


#: flavour id -> flavour, in detection order
FLAVOURS: dict[str, Flavour] = {}


def flavour(cls: type[Flavour]) -> type[Flavour]:
    """Class decorator: register one instance of a flavour (a second id is an error)."""
    if cls.id in FLAVOURS:
        raise RuntimeError(f"flavour {cls.id!r} registered twice")
    FLAVOURS[cls.id] = cls()
    return cls
