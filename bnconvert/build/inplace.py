"""In-place ReLUs where Caffe's ReLU is in place and nothing else can see the difference.

Caffe runs ``ReLU`` with ``top == bottom`` in place; a hand-written PyTorch net writes
``nn.ReLU(inplace=True)`` after a convolution or BatchNorm. An out-of-place ReLU allocates and
writes a whole new feature map: on MobileNet-v1 (27 ReLUs on large maps) that made the built
forward ~15 % slower than the hand-written one. A ReLU becomes in place only when

- the Caffe layer is in place (``top == bottom``),
- its input is produced by a ``torch.nn`` convolution, linear or BatchNorm module or an
  Eltwise SUM of several bottoms (a fresh tensor: never the caller's input, a view, or a
  parameter; none of them needs its output for backward, as in torchvision's ResNet),
- the ReLU is that value's only reader, and the value is no blob's final value (``probe`` and
  ``verify --whole`` read those).
"""

from __future__ import annotations

from collections.abc import Collection

from torch import fx, nn

from ..modules.structure import EltwiseSum
from ..naming import key_for_layer_name
from ..read.net import Net
from .context import Made

__all__ = ["make_relus_inplace"]

#: exact classes (not subclasses such as CaffeBatchNorm*d) whose output is a fresh tensor
_FRESH_OUTPUT = frozenset({
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d})
_RELUS = (nn.ReLU, nn.LeakyReLU)


def make_relus_inplace(graph: fx.Graph, root: nn.Module, made: dict[str, Made], net: Net,
                       kept: Collection[str]) -> list[str]:
    """Turn the qualifying ReLU modules in place (module and its recorded constructor).

    Args:
        graph, root: the built graph and the module holding its layers.
        made: constructor calls by attribute name (updated, for the model source).
        net: the typed net (which ReLU layers are in place).
        kept: names of the nodes holding a blob's final value.

    Returns:
        The attribute names of the ReLUs made in place.
    """
    in_place = {key_for_layer_name(x.name) for x in net.layers
                if x.type == "ReLU" and x.tops == x.bottoms}
    changed = []
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in in_place:
            continue
        relu = root.get_submodule(str(node.target))
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(relu, _RELUS) or not isinstance(source, fx.Node) \
                or not _fresh(source, root) or len(source.users) != 1 or source.name in kept:
            continue
        relu.inplace = True
        name = str(node.target)
        made[name] = Made(made[name].factory, made[name].args,
                          {**made[name].kwargs, "inplace": True})
        changed.append(name)
    return changed


def _fresh(node: fx.Node, root: nn.Module) -> bool:
    """The node's value is a new tensor: from a module in ``_FRESH_OUTPUT``, or an Eltwise SUM
    of two or more bottoms (one bottom without coefficients is passed through)."""
    if node.op != "call_module":
        return False
    kind = type(root.get_submodule(str(node.target)))
    return kind in _FRESH_OUTPUT or (kind is EltwiseSum and len(node.args) >= 2)
