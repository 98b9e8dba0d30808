"""Building a module whose every tensor comes from the caffemodel: no random initialisation,
no uninitialised memory, and no garbage collection of the caller's heap while it is built.

``torch.nn``'s convolution, linear and batch-norm classes end their constructor with
``reset_parameters()`` (Kaiming-uniform draws, fills). When the caffemodel's weights replace
every tensor, that work is wasted: even on the meta device each draw goes through torch's
dispatcher, ~0.1 s for ResNet-152's 310 such modules. ``construct_on_meta`` builds those
classes on the meta device (no memory at all) without it; ``assign_weights`` then puts the
loaded tensors in place (``load_state_dict(assign=True)``: no second allocation, no copy) and
refuses a module in which any tensor is still on the meta device, so a tensor the caffemodel
does not provide is an error, never uninitialised memory.

``paused_gc``: ``import torch`` leaves ~10^6 young objects behind; the first few hundred
thousand allocations after it (parsing and building a net) trigger one full collection that
walks all of them, 0.13-0.18 s here, which is most of what a profile of the build blames on
whichever function happened to allocate (the prototxt's field specs, the parser's ``_add``).
The build creates no garbage cycles worth collecting, so collection is paused while it runs
and restored afterwards (the caller's setting is kept; the heap is not frozen).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import BnConvertError

__all__ = ["construct_on_meta", "assign_weights", "paused_gc"]

#: classes whose ``__init__`` ends with ``self.reset_parameters()`` and takes ``device=``
_INITIALISING = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase)


def _no_initialisation() -> None:
    """Stands in for ``reset_parameters`` while a module is constructed on meta."""


def construct_on_meta(factory: Callable[..., nn.Module], args: tuple[Any, ...],
                      kwargs: Mapping[str, Any]) -> nn.Module:
    """``factory(*args, **kwargs)`` on the meta device, without PyTorch's random
    initialisation for the ``torch.nn`` classes that have one.

    Args:
        factory: a module class or factory (``Made.factory``).
        args, kwargs: its constructor arguments.

    Returns:
        The module; its tensors are meta tensors (shape and dtype only, no memory).
    """
    cls = factory if isinstance(factory, type) and issubclass(factory, _INITIALISING) else None
    if cls is None:
        with torch.device("meta"):
            return factory(*args, **kwargs)
    module: nn.Module = cls.__new__(cls)
    # An instance attribute shadows the class's method for the constructor's call only.
    object.__setattr__(module, "reset_parameters", _no_initialisation)
    try:
        module.__init__(*args, **kwargs, device="meta")  # type: ignore[misc]
    finally:
        object.__delattr__(module, "reset_parameters")
    return module


def assign_weights(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Put ``state``'s tensors into the meta-device ``module`` (strict: every key).

    Each tensor takes the dtype of the tensor it replaces, as ``load_state_dict`` would copy
    it; the module then owns the given tensors (no copy).

    Args:
        module: built by ``construct_on_meta``.
        state: the weights (tensors the caller no longer uses).
        where: the net's description, for the error.

    Raises:
        BnConvertError: a tensor of the module that ``state`` does not provide (still on
            the meta device, e.g. a non-persistent buffer).
    """
    current = module.state_dict()
    fitted = {key: value if key not in current or value.dtype == current[key].dtype
              else value.to(current[key].dtype) for key, value in state.items()}
    module.load_state_dict(fitted, strict=True, assign=True)
    left = [name for name, tensor in (*module.named_parameters(), *module.named_buffers())
            if tensor.is_meta]
    if left:
        raise BnConvertError(f"{where}: the weights do not provide {', '.join(left)}")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then restore the caller's setting.

    Example:
        >>> with paused_gc():
        ...     gc.isenabled()
        False
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
