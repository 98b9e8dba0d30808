"""Refuse an output path that is one of the inputs, before anything is read or written.

Two paths are the same file when they resolve (symlinks followed) to the same device and inode,
which also catches hard links and different spellings of one path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..errors import OutputError
from .manifest import manifest_path_for

__all__ = ["same_file", "refuse_inputs_as_outputs", "output_paths"]

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when both paths exist and are the same file (device and inode, links followed)."""
    try:
        first, second = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def refuse_inputs_as_outputs(outputs: Mapping[str, PathLike | None],
                             inputs: Mapping[str, PathLike | None]) -> None:
    """Raise if an output would overwrite an input, or two outputs are one file.

    Args:
        outputs: role -> path, e.g. ``{"output": "bn.pt", "manifest": "bn.pt.json"}``.
        inputs: role -> path, e.g. ``{"prototxt": ..., "caffemodel": ...}`` (None: not given).

    Raises:
        OutputError: naming the path and both roles.

    Example:
        >>> model = getfixture("tmp_path") / "m.caffemodel"
        >>> _ = model.write_bytes(b"")
        >>> refuse_inputs_as_outputs({"output": model}, {"caffemodel": model})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        bnconvert.errors.OutputError: ...m.caffemodel: the output is the caffemodel given as ...
    """
    given_outputs = [(role, path) for role, path in outputs.items() if path is not None]
    for role, path in given_outputs:
        for in_role, in_path in inputs.items():
            if in_path is not None and same_file(path, in_path):
                raise OutputError(f"{path}: the {role} is the {in_role} given as input; "
                                  f"writing it would destroy the {in_role}; choose another path")
    _refuse_same_outputs(given_outputs)


def _refuse_same_outputs(outputs: Sequence[tuple[str, PathLike]]) -> None:
    for i, (role, path) in enumerate(outputs):
        for other_role, other in outputs[i + 1:]:
            if os.path.abspath(path) == os.path.abspath(other) or same_file(path, other):
                raise OutputError(f"{path}: the {role} and the {other_role} are the same file; "
                                  "choose another path for one of them")


def output_paths(output: PathLike, manifest: PathLike | bool) -> dict[str, PathLike | None]:
    """The files a conversion writes: ``{"output": ..., "manifest": path or None}`` for the
    ``manifest`` option of ``api.save`` (True: ``<output>.json``, a path, False: none)."""
    if manifest is False:
        return {"output": output, "manifest": None}
    return {"output": output,
            "manifest": manifest_path_for(os.fspath(output)) if manifest is True else manifest}
