"""Plain-text tables for the terminal (shared by ``inspect`` and ``verify`` reports)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, no trailing blanks.

    Example:
        >>> print(format_table(["a", "bb"], [["xyz", "1"]]))
        a    bb
        xyz  1
    """
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])
