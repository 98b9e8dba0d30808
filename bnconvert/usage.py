"""Option combinations the command line refuses as usage errors (exit 2): contradictory or
meaningless ones. Pure checks returning the message; ``cli`` turns it into a usage error."""

from __future__ import annotations

from pathlib import Path

from .write.registry import format_for_path

__all__ = ["convert_usage_problem", "manifest_usage_problem", "momentum_usage_problem"]


def momentum_usage_problem(momentum: str) -> str | None:
    """``--momentum`` must be ``caffe``, ``default`` or a number in [0, 1].

    Example:
        >>> momentum_usage_problem("fast")
        "--momentum: expected 'caffe', 'default' or a number in [0, 1], got 'fast'"
    """
    from .errors import BnConvertError
    from .fold.momentum import parse_momentum_option

    try:
        parse_momentum_option(momentum)
    except BnConvertError as exc:
        return str(exc)
    return None


def manifest_usage_problem(manifest: Path | None, no_manifest: bool) -> str | None:
    """``--manifest PATH`` and ``--no-manifest`` together contradict each other."""
    if manifest is not None and no_manifest:
        return "--manifest and --no-manifest contradict each other; give one of them"
    return None


def convert_usage_problem(output: Path, fmt: str | None, manifest: Path | None,
                          no_manifest: bool, t7_only_options: list[str]) -> str | None:
    """The first problem with ``convert``'s options, or None.

    Args:
        output: ``-o``; fmt: ``--format`` (None when not given).
        t7_only_options: the Torch7-only options given explicitly (``--t7-layout``,
            ``--cudnn``).

    Example:
        >>> convert_usage_problem(Path("x.pt"), "t7", None, False, [])[:55]
        "--format t7 disagrees with the output's extension '.pt'"
    """
    problem = manifest_usage_problem(manifest, no_manifest)
    if problem:
        return problem
    by_extension = format_for_path(output)
    if fmt is not None and by_extension is not None and fmt != by_extension:
        return (f"--format {fmt} disagrees with the output's extension {output.suffix!r} "
                f"(a {by_extension} file); rename the output or drop --format")
    chosen = fmt or by_extension
    if t7_only_options and chosen is not None and chosen != "t7":
        verb = "applies" if len(t7_only_options) == 1 else "apply"
        return (f"{' and '.join(t7_only_options)} only {verb} to a Torch7 (.t7) output; "
                f"{output} is a {chosen} file")
    return None
