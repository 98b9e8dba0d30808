"""The target side of a mapping: a PyTorch model's parametric modules in the order they run,
traced with ``torch.fx`` (no input needed), with their kind, state_dict shapes, geometry, and
the modules whose outputs feed each one through parameter-free operations."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import fx, nn

from ..errors import BnConvertError
from .units import NET_INPUT, Shape, Unit

__all__ = ["TargetTraceError", "target_units", "parametric_modules", "module_kind",
           "state_dict_spec", "to_tensors", "own_state"]

_KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.modules.conv._ConvTransposeNd, "deconv"), (nn.modules.conv._ConvNd, "conv"),
    (nn.Linear, "linear"), (nn.modules.batchnorm._BatchNorm, "batch_norm"),
    (nn.PReLU, "prelu"), (nn.Embedding, "embed"))


#: what torch.fx raises on code it cannot trace symbolically
_TRACE_FAILURES = (fx.proxy.TraceError, TypeError, RuntimeError, AttributeError,
                   NotImplementedError, ValueError)


class TargetTraceError(BnConvertError):
    """The target model cannot be traced (data-dependent control flow, a module called twice):
    its structure is unknown, so only a ``--map`` of every layer can map onto it."""


def module_kind(module: nn.Module) -> str:
    """``conv``, ``deconv``, ``linear``, ``batch_norm``, ``prelu``, ``embed``, else
    ``other:<Class>``."""
    for cls, kind in _KINDS:
        if isinstance(module, cls):
            return kind
    return f"other:{type(module).__name__}"


def own_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own parameters and persistent buffers (not its children's), by name."""
    skip: set[str] = getattr(module, "_non_persistent_buffers_set", set())
    found: dict[str, torch.Tensor] = dict(module.named_parameters(recurse=False))
    found.update((n, b) for n, b in module.named_buffers(recurse=False) if n not in skip)
    return found


def parametric_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules holding parameters or persistent buffers themselves, by qualified name."""
    return {name: module for name, module in model.named_modules()
            if name and own_state(module)}


class _Tracer(fx.Tracer):
    def __init__(self, leaves: Iterable[nn.Module]) -> None:
        super().__init__()
        self.leaves = {id(m) for m in leaves}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return id(m) in self.leaves or super().is_leaf_module(m, module_qualified_name)


def _unit(index: int, name: str, module: nn.Module) -> Unit:
    shapes: dict[str, Shape] = {k: tuple(v.shape) for k, v in own_state(module).items()
                                if k != "num_batches_tracked"}
    kernel = tuple(getattr(module, "kernel_size", ())) if module_kind(module) == "conv" else ()
    stride = tuple(getattr(module, "stride", ())) if kernel else ()
    eps = float(module.eps) if isinstance(module, nn.modules.batchnorm._BatchNorm) else None
    return Unit(index, name, module_kind(module), shapes, eps=eps, kernel=kernel,
                stride=stride, layers=(name,))


def target_units(model: nn.Module) -> tuple[Unit, ...]:
    """The model's parametric modules in the order its forward calls them.

    Returns:
        One ``Unit`` per module called, then the parametric modules never called (no inputs).

    Raises:
        TargetTraceError: ``torch.fx`` cannot trace the model, or it calls a module twice.
    """
    modules = parametric_modules(model)
    try:
        graph = _Tracer(modules.values()).trace(model)
    except _TRACE_FAILURES as exc:
        raise TargetTraceError(f"cannot trace the target model ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}): mapping "
                               "follows the model's structure with torch.fx; make its forward "
                               "traceable (no branching on tensor values)") from exc
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target in modules]
    order = [str(n.target) for n in calls]
    twice = sorted({t for t in order if order.count(t) > 1})
    if twice:
        raise TargetTraceError(f"the target model calls {', '.join(twice)} more than once "
                               "(shared weights): a Caffe layer maps onto one call")
    index = {n: i for i, n in enumerate(calls)}
    units = [_linked(_unit(i, str(n.target), modules[str(n.target)]), n, index)
             for i, n in enumerate(calls)]
    unused = [name for name in modules if name not in order]
    return tuple(units) + tuple(_unit(len(units) + i, n, modules[n]) for i, n in enumerate(unused))


def _linked(unit: Unit, node: fx.Node, index: dict[fx.Node, int]) -> Unit:
    from dataclasses import replace

    sources: set[int] = set()
    stack, seen = list(node.all_input_nodes), set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in index:
            sources.add(index[current])
        elif current.op == "placeholder":
            sources.add(NET_INPUT)
        else:
            stack.extend(current.all_input_nodes)
    users = list(node.users)
    feeds = index.get(users[0]) if len(users) == 1 and unit.kind in ("conv", "deconv",
                                                                      "linear") else None
    return replace(unit, inputs=frozenset(sources), feeds=feeds)


def state_dict_spec(model: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every key of ``model.state_dict()`` with its shape and numpy dtype name."""
    return {k: (tuple(v.shape), str(v.detach().cpu().numpy().dtype))
            for k, v in model.state_dict().items()}


def to_tensors(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """numpy arrays -> torch tensors (copies), ready for ``load_state_dict(strict=True)``."""
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}
