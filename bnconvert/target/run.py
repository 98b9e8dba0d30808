"""From the command line's ``--target SPEC`` to the target's weights: load the user's model,
read the Caffe weights (``load_weights``), map them (``plan.map_onto``), load them into the
model strictly, and check the numbers against bnconvert's Caffe-semantics module."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import BnConvertError, ParseError
from ..records import ConvertedLayer
from .diagnose import Divergence
from .plan import TargetMapping

__all__ = ["load_target", "map_to", "MapResult"]

PathLike = str | os.PathLike[str]


def load_target(spec: str, kwargs: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The user's model: ``package.module:callable`` or ``path/to/file.py:callable``, called
    with ``kwargs``.

    Raises:
        ParseError: the spec is malformed, the module or callable is missing, or calling it
            fails or gives something that is not a ``torch.nn.Module``.

    Example:
        >>> load_target("torch.nn:Identity").__class__.__name__
        'Identity'
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ParseError(f"--target {spec!r}: expected package.module:callable or "
                         "path/to/file.py:callable")
    try:
        module = _import(where)
        factory = getattr(module, name)
    except (ImportError, AttributeError, OSError, SyntaxError) as exc:
        raise ParseError(f"--target {spec!r}: {type(exc).__name__}: {exc}") from None
    try:
        model = factory(**dict(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is reported
        raise ParseError(f"--target {spec!r}: calling {name}(...) failed: "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ParseError(f"--target {spec!r}: {name}(...) returned {type(model).__name__}, "
                         "not a torch.nn.Module")
    return model


def _import(where: str) -> Any:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise OSError(f"no such file {where}")
        loaded = importlib.util.spec_from_file_location(f"bnconvert_target_{path.stem}", path)
        assert loaded is not None and loaded.loader is not None
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
        return module
    return importlib.import_module(where)


@dataclass(frozen=True, eq=False)
class MapResult:
    """What ``map_to`` did.

    Attributes:
        records: the target's weights as records (write them with ``save(...,
            naming=TargetNames())``).
        mapping: the mapping (``table()`` for the manifest).
        checked: whether the numbers were compared with Caffe's; divergence: the first module
            that differs (None when equal or not checked).
    """

    records: tuple[ConvertedLayer, ...]
    mapping: TargetMapping
    checked: bool
    divergence: Divergence | None

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The target's state_dict in its own names."""
        from .torch_side import to_tensors

        return to_tensors(self.mapping.weights.state_dict)


def map_to(model: torch.nn.Module, prototxt: PathLike | None, caffemodel: PathLike, *,
           entries: Mapping[str, str] | None = None, flavour: str | None = None,
           check: bool = True) -> MapResult:
    """Map a Caffe net's weights onto an already constructed ``model`` and load them into it
    (strictly, eval mode).

    Args:
        entries: ``--map`` entries (``mapfile.read_map``) settling what the structure does not.
        check: run the model and Caffe's forward on the same seeded input and name the first
            module that differs.

    Raises:
        MatchError, TargetTraceError: the structures do not match / the model cannot be traced.
        BnConvertError: the Caffe files (as ``load_weights``).
    """
    from ..api import whole_net
    from ..fold.options import FoldOptions
    from ..read.net import load_net
    from .plan import map_onto
    from .records import mapped_records

    net = load_net(prototxt, caffemodel)
    records = whole_net(net, "keep", FoldOptions(flavour=flavour))
    tensors = {r.name: r.tensors() for r in records}
    mapping = map_onto(model, net, tensors, entries, flavour)
    result = MapResult(tuple(mapped_records(mapping, _classes(model))), mapping, False, None)
    try:
        model.load_state_dict(result.state_dict, strict=True)
    except RuntimeError as exc:
        raise BnConvertError(f"the mapped weights do not load into the target: "
                             f"{' '.join(str(exc).split())[:400]}") from None
    model.eval()
    if not check:
        return result
    from .check import check_against_caffe

    return MapResult(result.records, mapping, True,
                     check_against_caffe(model, net, mapping.matching))


def _classes(model: torch.nn.Module) -> dict[str, str]:
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def convert_to_target(prototxt: PathLike | None, caffemodel: PathLike, output: PathLike,
                      model: torch.nn.Module, *, entries: Mapping[str, str] | None = None,
                      check: bool = True, options: Any = None) -> MapResult:
    """Map onto ``model`` and write its state_dict in its own names (and the manifest with the
    mapping table). With ``check``, a model that does not compute Caffe's numbers is refused
    before anything is written.

    Args:
        options: a ``ConvertOptions`` (format, manifest, dtype; its naming is the target's).

    Raises:
        VerificationError: the checked model differs from Caffe (the first module named).
        MatchError, BnConvertError: as ``map_to``; OutputError: as ``save``.
    """
    from dataclasses import replace

    from ..api import ConvertOptions, save
    from ..errors import VerificationError
    from .records import TargetNames

    chosen = options or ConvertOptions()
    result = map_to(model, prototxt, caffemodel, entries=entries, flavour=chosen.fold.flavour,
                    check=check)
    if result.divergence is not None:
        raise VerificationError(f"{output}: not written: the target does not compute what Caffe "
                                f"computes: {result.divergence.message()}")
    write = replace(chosen.write, naming=TargetNames())
    save(result.records, output, replace(chosen, write=write),
         sources={"prototxt": str(prototxt) if prototxt else None,
                  "caffemodel": str(caffemodel)})
    return result


def verify_target(model: torch.nn.Module, prototxt: PathLike | None, caffemodel: PathLike,
                  weights: PathLike, *, entries: Mapping[str, str] | None = None,
                  flavour: str | None = None, seed: int = 0) -> Divergence | None:
    """Check what the user ships: ``weights`` (a state_dict in the model's own names) loaded
    strictly into ``model``, run against Caffe's numbers (``check.check_against_caffe``), BN eps
    and every other constructor setting of the model included.

    Returns:
        The first module that differs, or None when the model computes Caffe's numbers.

    Raises:
        ParseError: ``weights`` cannot be read; BnConvertError: they do not load strictly, the
            structures do not match (``MatchError``), or the check cannot run.
    """
    from ..read.net import load_net
    from ..write.registry import EXTENSIONS, loader_for
    from .caffe_side import caffe_units
    from .check import check_against_caffe
    from .mapfile import resolve_map
    from .match import match_units
    from .torch_side import target_units

    fmt = EXTENSIONS.get(Path(weights).suffix.lower(), "pt")
    loaded = loader_for(fmt)(str(weights))
    state = {f"{key}.{name}" if key else name: value
             for key, fields in loaded.entries.items() for name, value in fields.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BnConvertError(f"{weights}: does not load into the target: "
                             f"{' '.join(str(exc).split())[:400]}") from None
    net = load_net(prototxt, caffemodel)
    caffe, target = caffe_units(net, flavour), target_units(model)
    fixed = resolve_map(entries, caffe, target) if entries else None
    matching = match_units(caffe, target, fixed).require_complete()
    return check_against_caffe(model, net, matching, seed)
