"""Records of whole-model conversion: one frozen record type per kind of learned layer
(convolution, transposed convolution, linear, embedding, PReLU, Scale, Bias), plus the record of a
layer that was skipped. Each carries the tensors of the PyTorch module it becomes, named and
shaped as that module's ``state_dict`` (without the key), and the module's constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..records import ConvertedLayer

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LearnedLayer", "ConvLayer", "ConvTransposeLayer", "LinearLayer", "EmbedLayer",
           "PReLULayer", "ScaleLayer", "BiasLayer", "SkippedLayer", "FusedChain",
           "LEARNED_KINDS"]


@dataclass(frozen=True)
class FusedChain:
    """The BatchNorm chain folded into a learned layer (``--fold fuse``).

    Attributes:
        batch_norm, scale, bias: the Caffe layer names of the chain (None where absent).
        eps: the BatchNorm's eps (float32 value widened).
        flavour: which BN implementation the chain came from.
    """

    batch_norm: str
    scale: str | None
    bias: str | None
    eps: float
    flavour: str


@dataclass(frozen=True, eq=False)
class LearnedLayer(ConvertedLayer):
    """A Caffe layer with learned blobs, as the PyTorch module it becomes.

    Attributes:
        layer: the Caffe layer name (the naming policy turns it into the key).
        caffe_type: the Caffe type string.
        module_class: the module (``Conv2d`` etc. are ``torch.nn``; ``bnconvert.modules.X``
            are Caffe-exact modules of this package).
        arguments: the module's constructor keyword arguments (JSON-ready).
        weights: the module's state_dict entries (``weight``, ``bias``), arrays read-only,
            float32, in the module's order.
        blob_shapes: the shapes of the caffemodel's blobs, as stored.
        caffe: Caffe facts the module needs besides its constructor (``axis``, ``transpose``).
        fused: the BN chain folded into this layer, if any.
        warnings: notes about the layer.
    """

    kind: ClassVar[str] = "learned"
    layer: str
    caffe_type: str
    module_class: str
    arguments: dict[str, Any]
    weights: dict[str, np.ndarray]
    blob_shapes: tuple[tuple[int, ...], ...]
    caffe: dict[str, Any] = field(default_factory=dict)
    fused: FusedChain | None = None
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The Caffe layer's name."""
        return self.layer

    @property
    def module(self) -> str:
        """The module class the tensors belong to."""
        return self.module_class

    def tensors(self) -> dict[str, np.ndarray]:
        """The module's state_dict entries without the key."""
        return dict(self.weights)

    def describe(self) -> dict[str, Any]:
        """Module, constructor arguments, Caffe type and blob shapes, fused chain, warnings."""
        fused = None if self.fused is None else {
            "batch_norm": self.fused.batch_norm, "scale": self.fused.scale,
            "bias": self.fused.bias, "eps": self.fused.eps, "flavour": self.fused.flavour}
        return {"module": self.module_class, "arguments": self.arguments,
                "caffe_layer": self.layer, "caffe_type": self.caffe_type,
                "blob_shapes": [list(s) for s in self.blob_shapes],
                "tensors": {k: list(v.shape) for k, v in self.weights.items()},
                "caffe": self.caffe, "fused_batch_norm": fused,
                "warnings": list(self.warnings)}


@dataclass(frozen=True, eq=False)
class ConvLayer(LearnedLayer):
    """Convolution (and the depthwise fork layers): ``torch.nn.Conv1d/2d/3d``."""

    kind: ClassVar[str] = "conv"


@dataclass(frozen=True, eq=False)
class ConvTransposeLayer(LearnedLayer):
    """Deconvolution: ``torch.nn.ConvTranspose1d/2d/3d``."""

    kind: ClassVar[str] = "conv_transpose"


@dataclass(frozen=True, eq=False)
class LinearLayer(LearnedLayer):
    """InnerProduct: ``torch.nn.Linear`` over the input flattened from ``caffe["axis"]``."""

    kind: ClassVar[str] = "linear"


@dataclass(frozen=True, eq=False)
class EmbedLayer(LearnedLayer):
    """Embed: ``bnconvert.modules.Embed``."""

    kind: ClassVar[str] = "embed"


@dataclass(frozen=True, eq=False)
class PReLULayer(LearnedLayer):
    """PReLU: ``bnconvert.modules.PReLU``."""

    kind: ClassVar[str] = "prelu"


@dataclass(frozen=True, eq=False)
class ScaleLayer(LearnedLayer):
    """A Scale not folded into a BatchNorm: ``bnconvert.modules.Scale`` or ``ScaleBy``."""

    kind: ClassVar[str] = "scale"


@dataclass(frozen=True, eq=False)
class BiasLayer(LearnedLayer):
    """A Bias not folded into a BatchNorm: ``bnconvert.modules.Bias``."""

    kind: ClassVar[str] = "bias"


@dataclass(frozen=True, eq=False)
class SkippedLayer(ConvertedLayer):
    """A layer with learned blobs that bnconvert cannot convert (``--skip-unknown``): no
    tensors, listed in the manifest."""

    kind: ClassVar[str] = "skipped"
    layer: str
    caffe_type: str
    blob_shapes: tuple[tuple[int, ...], ...]
    reason: str
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The Caffe layer's name."""
        return self.layer

    @property
    def module(self) -> str:
        """None: nothing was converted."""
        return ""

    def tensors(self) -> dict[str, np.ndarray]:
        """No tensors."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Caffe type, blob shapes and why it was skipped."""
        return {"module": None, "caffe_layer": self.layer, "caffe_type": self.caffe_type,
                "blob_shapes": [list(s) for s in self.blob_shapes], "reason": self.reason,
                "warnings": list(self.warnings)}


#: kind -> record class
LEARNED_KINDS: dict[str, type[LearnedLayer]] = {
    cls.kind: cls for cls in (ConvLayer, ConvTransposeLayer, LinearLayer, EmbedLayer,
                              PReLULayer, ScaleLayer, BiasLayer)}
