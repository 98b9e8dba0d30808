"""Does the manifest belong to the converted file, and to these Caffe files?

The manifest records the fingerprints (size, SHA-256) of the file it describes and of the Caffe
files it was made from (``write.fingerprint``). A manifest of another file is refused: its
keys, eps and ranks would be checked against the wrong numbers. Caffe files that differ from
the recorded ones are only noted: verifying a file against other Caffe files is legitimate.
"""

from __future__ import annotations

import os
from typing import Any

from ..write.fingerprint import changed_sources, check_manifest_describes

__all__ = ["check_manifest_belongs", "source_notes"]

PathLike = str | os.PathLike[str]


def check_manifest_belongs(manifest_path: PathLike, manifest: dict[str, Any],
                           converted: PathLike) -> None:
    """Raise unless ``manifest`` describes ``converted`` (skipped when ``converted`` is not a
    readable file: its reader reports that).

    Raises:
        ParseError: the manifest records another file's fingerprint.
    """
    if os.path.isfile(converted):
        check_manifest_describes(manifest_path, manifest, converted)


def source_notes(manifest: dict[str, Any] | None, prototxt: PathLike | None,
                 caffemodel: PathLike) -> tuple[str, ...]:
    """A report note when the Caffe files differ from those the manifest records."""
    if manifest is None:
        return ()
    changed = changed_sources(manifest, {"prototxt": prototxt, "caffemodel": caffemodel})
    if not changed:
        return ()
    return (f"the Caffe files differ from the ones this file was converted from: "
            f"{'; '.join(changed)}",)
