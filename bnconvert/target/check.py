"""The numbers behind ``--target``: run the mapped target and bnconvert's Caffe-semantics module
of the same net (``build.load_model``'s, with the caffemodel's weights) on one seeded input, and
name the first target module whose output is not its Caffe unit's (``diagnose``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from ..errors import BnConvertError
from ..naming import key_for_layer_name
from ..read.net import Net
from .diagnose import Divergence, Forward, first_divergence
from .match import Matching

__all__ = ["check_against_caffe", "module_outputs", "RTOL"]

#: Allowed error of a module's output, relative to the largest value of Caffe's. Where the
#: target computes the same function with the same torch ops the outputs are bit-identical
#: (measured: VGG16-BN and DenseNet-121 onto torchvision's, 0); 1e-5 leaves room for other
#: float32 orderings and still fails a BN eps of 1e-3 folded as 1e-5 (9.6e-5 on eps_custom).
RTOL = 1e-5


def module_outputs(model: torch.nn.Module, names: Iterable[str],
                   rename: Mapping[str, str] | None = None) -> Forward:
    """A forward returning the outputs of the named submodules (renamed by ``rename``)."""
    wanted = set(names)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        hooks = [module.register_forward_hook(
            lambda _m, _i, output, name=name: out.__setitem__(
                (rename or {}).get(name, name), output.detach().cpu().numpy().copy()))
            for name, module in model.named_modules() if name in wanted]
        try:
            with torch.no_grad():
                model(torch.from_numpy(x))
        finally:
            for hook in hooks:
                hook.remove()
        return out

    return run


def check_against_caffe(model: torch.nn.Module, net: Net, matching: Matching,
                        seed: int = 0) -> Divergence | None:
    """The first module of ``model`` (its weights loaded) that does not compute Caffe's number
    for its unit, or None: both run on one seeded normal input of the net's declared shape.

    Raises:
        BnConvertError: the net cannot be checked (not one input of known shape), or building
            the Caffe-semantics module fails (e.g. a layer type it does not build).
    """
    from ..build.api import build_model
    from ..graph.shapes import declared_inputs

    inputs = declared_inputs(net)
    shapes = [shape for shape in inputs.values() if shape is not None]
    if len(inputs) != 1 or len(shapes) != 1:
        raise BnConvertError(f"{net.describe()}: the check runs nets with one input of declared "
                             f"shape; this one has {dict(inputs)} (pass --no-check to write "
                             "the mapping unchecked)")
    caffe = build_model(net).module
    x = np.random.default_rng(seed).standard_normal(shapes[0]).astype(np.float32)
    keys = {key_for_layer_name(m.caffe.name): m.caffe.name for m in matching.matches}
    model.eval()
    return first_divergence(module_outputs(model, (m.target.name for m in matching.matches)),
                            module_outputs(caffe, keys, keys), matching, x, rtol=RTOL)
