"""Does a net build and run? ``trial_run`` builds a net without weights and runs it once on a
random input of its declared shapes, and says what happened in one of three ways: it runs (with
its outputs' shapes), it needs layer types bnconvert cannot build (all named), or Caffe itself
refuses a layer at the declared shapes (with Caffe's reason). README's "Tested on" table is made
from it (``scripts/tested_on_table.py``), and ``tests/test_build_corpus.py`` checks it on the
70-file corpus."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RefusedByCaffeError, UnsupportedLayerError
from ..graph.shapes import declared_inputs
from ..read.net import Net
from .api import build_model
from .network import BuildOptions, unsupported_layers

__all__ = ["TrialRun", "trial_run"]


@dataclass(frozen=True)
class TrialRun:
    """What building and running a net did.

    Attributes:
        status: ``"runs"``, ``"needs"`` (layer types bnconvert cannot build) or ``"refused"``
            (Caffe refuses a layer at the declared shapes).
        missing: the layer types bnconvert cannot build, sorted (``needs``).
        reason: Caffe's refusal, naming the layer, without the file name (``refused``).
        outputs: the net's output blob names (``runs``).
        output_shapes: their shapes after the run, in the same order (``runs``).
    """

    status: str
    missing: tuple[str, ...] = ()
    reason: str = ""
    outputs: tuple[str, ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()

    def cell(self) -> str:
        """One Markdown table cell: ``builds and runs``, ``needs: TypeA, TypeB`` or
        ``Caffe refuses: <reason>``."""
        if self.status == "runs":
            return "builds and runs"
        if self.status == "needs":
            return "needs: " + ", ".join(self.missing)
        reason = self.reason.replace(": Caffe refuses it: ", ": ", 1)
        return "Caffe refuses: " + reason.replace("|", "\\|")


def trial_run(net: Net, batch: int = 1, seed: int = 0) -> TrialRun:
    """Build ``net`` without weights and run it on seeded standard-normal inputs of its declared
    shapes with batch size ``batch``.

    Args:
        net: the typed net (``bnconvert.read.load_net``).
        batch: the batch size of every input.
        seed: the seed of the inputs' generator.

    Returns:
        What happened.

    Raises:
        BnConvertError: the net fails for another reason than missing layer types or a Caffe
            refusal (a bug or a limit of bnconvert: not something a table cell should hide).
    """
    shapes = {k: (batch, *v[1:]) for k, v in declared_inputs(net).items() if v}
    try:
        built = build_model(net, BuildOptions(inputs=shapes), weights=False)
    except UnsupportedLayerError:
        missing = tuple(sorted({x.type for x in unsupported_layers(net)}))
        if not missing:
            raise
        return TrialRun("needs", missing=missing)
    except RefusedByCaffeError as exc:
        return TrialRun("refused", reason=_without_file(net, str(exc)))
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(shapes[name], generator=generator) for name in built.inputs]
    with torch.inference_mode():
        result = built.module(*inputs)
    values = result if isinstance(result, tuple) else (result,)
    return TrialRun("runs", outputs=built.outputs,
                    output_shapes=tuple(tuple(v.shape) for v in values))


def _without_file(net: Net, message: str) -> str:
    for prefix in (net.prototxt, net.caffemodel):
        if prefix is not None and message.startswith(f"{prefix}: "):
            return message[len(f"{prefix}: "):]
    return message
