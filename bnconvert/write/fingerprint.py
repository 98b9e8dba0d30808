"""Fingerprints (size and SHA-256) of the files a manifest is about.

A manifest records the fingerprint of the file it describes and of the Caffe files it came
from, so that ``verify`` can tell a manifest that belongs to another (older) file from the right
one, and say when the Caffe files changed since the conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ParseError

__all__ = ["fingerprint", "source_fingerprints", "add_fingerprints", "describes",
           "check_manifest_describes",
           "changed_sources", "remove_stale_manifest"]

_CHUNK = 1 << 20
PathLike = str | os.PathLike[str]


def fingerprint(path: PathLike) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex digest}`` of a file.

    Example:
        >>> path = getfixture("tmp_path") / "abc.bin"
        >>> _ = path.write_bytes(b"abc")
        >>> fingerprint(path)["size"], fingerprint(path)["sha256"][:16]
        (3, 'ba7816bf8f01cfea')
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


def source_fingerprints(sources: dict[str, str | None]) -> dict[str, Any]:
    """The fingerprint of each Caffe file in ``sources`` (None where not given)."""
    return {role: fingerprint(path) if path else None for role, path in sources.items()}


def add_fingerprints(manifest: dict[str, Any], written: PathLike | dict[str, Any],
                     sources: dict[str, Any]) -> dict[str, Any]:
    """The manifest with ``file_fingerprint`` (of ``written``, the output's bytes, or that
    fingerprint itself when computed as they were written) and ``source_fingerprints``
    (``source_fingerprints(...)``' result)."""
    printed = written if isinstance(written, dict) else fingerprint(written)
    return {**manifest, "file_fingerprint": printed, "source_fingerprints": sources}


def describes(manifest: dict[str, Any], path: PathLike) -> bool | None:
    """Whether the manifest describes the file at ``path``: True/False by its recorded
    fingerprint, None when it records none (written by bnconvert 0.1.0 before fingerprints)."""
    recorded = manifest.get("file_fingerprint")
    if not isinstance(recorded, dict):
        return None
    return recorded == fingerprint(path)


def check_manifest_describes(manifest_path: PathLike, manifest: dict[str, Any],
                             path: PathLike) -> None:
    """Raise unless the manifest describes ``path`` (a manifest without a fingerprint passes).

    Raises:
        ParseError: it records another file's size or SHA-256.
    """
    if describes(manifest, path) is not False:
        return
    recorded, actual = manifest["file_fingerprint"], fingerprint(path)
    raise ParseError(
        f"{manifest_path}: this manifest describes another file than {path} (recorded "
        f"{_short(recorded)}, found {_short(actual)}); convert again, or pass --no-manifest")


def changed_sources(manifest: dict[str, Any], sources: dict[str, PathLike | None]) -> list[str]:
    """The Caffe files (by role) whose fingerprint differs from the one the manifest records,
    as readable phrases; empty when they match or the manifest records none."""
    recorded = manifest.get("source_fingerprints")
    if not isinstance(recorded, dict):
        return []
    changed = []
    for role, path in sources.items():
        then = recorded.get(role)
        if path is None or not isinstance(then, dict):
            continue
        now = fingerprint(path)
        if now != then:
            changed.append(f"the {role} {path} ({_short(now)}; recorded {_short(then)})")
    return changed


def remove_stale_manifest(manifest_path: Path, output: Path) -> bool:
    """Remove ``manifest_path`` if it is a bnconvert manifest of ``output``'s name that does
    not describe the file now at ``output`` (left by an earlier conversion).

    Returns:
        True when it was removed. Anything else (not JSON, another tool's JSON, a manifest
        that describes ``output``) is left alone.
    """
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(manifest, dict) and "bnconvert" in manifest
            and manifest.get("file") == output.name) or describes(manifest, output) is True:
        return False
    manifest_path.unlink(missing_ok=True)
    return True


def _short(print_: dict[str, Any]) -> str:
    return f"{print_.get('size')} bytes, SHA-256 {str(print_.get('sha256'))[:12]}..."
