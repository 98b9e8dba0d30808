"""``--map FILE``: Caffe layer -> target module, settling what the structure leaves open.

The file is a JSON object (or YAML mapping, where PyYAML is installed). A key is a Caffe layer
name (a BN chain answers to its BatchNorm's, Scale's or Bias's name) or, when no layer has that
exact name, a regular expression matched against whole names; the value is the target module's
name (a state_dict key prefix; a trailing dot is ignored), where ``\\1`` refers to the key's
groups. Every entry must name a layer, a module, and a pair whose kinds and shapes fit.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence

from ..errors import ParseError
from .match import MatchError, compatible
from .units import Unit

__all__ = ["read_map", "resolve_map"]


def read_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """The entries of a ``--map`` file.

    Raises:
        ParseError: the file cannot be read, is not JSON/YAML, or is not a mapping of strings.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ParseError(f"{name}: cannot read the map file: {exc.strerror}") from exc
    data = _parse(name, text)
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ParseError(f"{name}: a map file holds one object of Caffe layer name (or regex) "
                         "-> target module name, all strings")
    return dict(data)


def _parse(name: str, text: str) -> object:
    if name.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as exc:
            raise ParseError(f"{name}: reading a YAML map needs PyYAML (pip install pyyaml); "
                             "or write the map as JSON") from exc
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ParseError(f"{name}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc


def _caffe_hits(key: str, caffe: Sequence[Unit]) -> list[tuple[Unit, re.Match[str] | None]]:
    exact: list[tuple[Unit, re.Match[str] | None]] = [(u, None) for u in caffe
                                                      if key in u.layers]
    if exact:
        return exact
    try:
        pattern = re.compile(key)
    except re.error as exc:
        raise MatchError(f"--map entry {key!r}: no Caffe layer has this name, and it is not a "
                         f"valid regular expression ({exc})") from exc
    hits: list[tuple[Unit, re.Match[str] | None]] = []
    for unit in caffe:
        found = next((m for m in map(pattern.fullmatch, unit.layers) if m), None)
        if found:
            hits.append((unit, found))
    return hits


def resolve_map(entries: Mapping[str, str], caffe: Sequence[Unit],
                target: Sequence[Unit]) -> dict[int, int]:
    """Caffe unit index -> target unit index for every ``--map`` entry.

    Raises:
        MatchError: an entry names no Caffe layer or no target module, two entries claim one
            module, or a pair's kinds/shapes do not fit (the message names the entry).
    """
    by_name = {t.name: t for t in target}
    fixed: dict[int, int] = {}
    for key, value in entries.items():
        hits = _caffe_hits(key, caffe)
        if not hits:
            raise MatchError(f"--map entry {key!r}: no Caffe layer of the net has this name or "
                             "matches it as a regular expression")
        for unit, found in hits:
            name = (found.expand(value) if found else value).rstrip(".")
            module = by_name.get(name)
            if module is None:
                raise MatchError(f"--map entry {key!r}: the target model has no parametric "
                                 f"module {name!r} (for Caffe layer {unit.name!r})")
            if compatible(unit, module) is None:
                raise MatchError(f"--map entry {key!r}: Caffe {unit.describe()} does not fit "
                                 f"target {module.describe()}")
            if module.index in fixed.values() and fixed.get(unit.index) != module.index:
                raise MatchError(f"--map entry {key!r}: target module {name!r} is claimed "
                                 "by two Caffe layers")
            fixed[unit.index] = module.index
    return fixed
