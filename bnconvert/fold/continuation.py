"""Fill a folded BN's train-mode fields: the momentum (``--momentum``), ``num_batches_tracked``,
Caffe's ``moving_average_fraction`` and how exactly a plain PyTorch (or Torch7) BatchNorm then
continues Caffe's running averages. The rules are the flavours' (``Flavour.continuation``, built
on ``momentum`` and ``momentum_forks``); this module applies them to records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import NumericError
from ..flavours import Flavour
from ..layers.normalization import BatchNormParams
from ..read.net import Layer
from ..records import ConvertedLayer, FoldedBatchNorm
from .momentum import (
    TORCH_DEFAULT_MOMENTUM,
    Continuation,
    choose_momentum,
    parse_momentum_option,
)

__all__ = ["attach_continuation", "torch7_momentum", "for_torch7"]


def attach_continuation(record: FoldedBatchNorm, layer: Layer, flavour: Flavour,
                        momentum: str | float = "caffe") -> FoldedBatchNorm:
    """The record with its momentum, ``num_batches_tracked`` and averaging facts filled in.

    An averaging parameter no momentum can continue (``moving_average_fraction`` outside
    [0, 1]) does not stop the conversion (eval mode is exact regardless): the BN keeps
    PyTorch's 0.1, with a warning under ``--momentum caffe``.

    Args:
        record: the folded BN (its ``scale_factor`` is blob 2 where the layout has one).
        layer: its Caffe BN layer; flavour: the flavour that folded it.
        momentum: ``--momentum``: ``"caffe"``, ``"default"`` or a number in [0, 1].

    Returns:
        A copy of the record.

    Raises:
        BnConvertError: a bad ``momentum`` option.

    Example:
        >>> from bnconvert.flavours import flavour_by_id
        >>> bn, record = EXAMPLE_NET.layers[2], EXAMPLE_RECORDS[0]  # s = 95.2, maf = 0.999
        >>> round(attach_continuation(record, bn, flavour_by_id("bvlc")).momentum, 8)
        0.01040445
    """
    option = parse_momentum_option(str(momentum))
    plan, warnings = _continuation(record, layer, flavour)
    chosen, tracked = choose_momentum(option, plan)
    params = layer.params
    maf = params.moving_average_fraction if isinstance(params, BatchNormParams) else None
    exact, note = plan.exact, plan.note
    if option.mode != "caffe" and exact != "nothing to continue":
        exact, note, warnings = "approximate", _chosen_note(str(momentum), plan), ()
    return replace(record, momentum=chosen, num_batches_tracked=tracked,
                   moving_average_fraction=maf, running_average=flavour.running_average,
                   momentum_exact=exact, momentum_note=note,
                   warnings=(*record.warnings, *warnings))


def _continuation(record: FoldedBatchNorm, layer: Layer,
                  flavour: Flavour) -> tuple[Continuation, tuple[str, ...]]:
    """The flavour's continuation, or PyTorch's default with a warning where none exists."""
    try:
        return flavour.continuation(layer, record.scale_factor, layer.name), ()
    except NumericError as exc:
        note = (f"{exc}; the converted BN keeps PyTorch's default momentum "
                f"{TORCH_DEFAULT_MOMENTUM} (eval mode is unaffected)")
        return Continuation(TORCH_DEFAULT_MOMENTUM, 0, "approximate", note), (note,)


def _chosen_note(option: str, plan: Continuation) -> str:
    if plan.exact == "approximate" and plan.momentum == TORCH_DEFAULT_MOMENTUM:
        return f"--momentum {option}: {plan.note}"
    caffe = "None (cumulative)" if plan.momentum is None else f"{plan.momentum:.9g}"
    return (f"--momentum {option}: does not continue Caffe's running averages (the momentum "
            f"that does is {caffe})")


def torch7_momentum(record: FoldedBatchNorm) -> float:
    """Torch7's ``momentum`` for a record: its own, or for PyTorch's cumulative average
    (None; Torch7 has none) ``1/(num_batches_tracked + 1)``, Caffe's next step exactly.

    Example:
        >>> cumulative = replace(EXAMPLE_RECORDS[0], momentum=None, num_batches_tracked=37)
        >>> torch7_momentum(cumulative)
        0.02631578947368421
    """
    if record.momentum is not None:
        return record.momentum
    return 1.0 / (record.num_batches_tracked + 1)


def for_torch7(records: Sequence[ConvertedLayer]) -> tuple[ConvertedLayer, ...]:
    """The records as a ``.t7`` file holds them: a cumulative average (momentum None) gets
    ``1/(s + 1)``, exact for the next step only, with a warning saying so."""
    out: list[ConvertedLayer] = []
    for record in records:
        if isinstance(record, FoldedBatchNorm) and record.momentum is None:
            momentum = torch7_momentum(record)
            note = (f"Torch7 has no cumulative average (momentum None): the .t7 carries "
                    f"momentum 1/(s + 1) = {momentum:.9g}, which continues Caffe for the next "
                    "step only")
            record = replace(record, momentum=momentum, num_batches_tracked=0,
                             momentum_exact="next step", momentum_note=note,
                             warnings=(*record.warnings, f"{record.name}: {note}"))
        out.append(record)
    return tuple(out)
