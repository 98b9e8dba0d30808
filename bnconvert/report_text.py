"""Plain-text rendering of reports for the terminal (no click, no torch)."""

from __future__ import annotations

from .inspect import InspectReport

__all__ = ["format_table", "format_inspect"]


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def _value(value: object, fmt: str = "{}") -> str:
    return "?" if value is None else fmt.format(value)


def format_inspect(report: InspectReport) -> str:
    """The human-readable ``inspect`` output."""
    rows = []
    for c in report.chains:
        layers = " -> ".join(n for n in (c.batch_norm, c.scale, c.bias) if n)
        rows.append([c.key, layers, c.flavour, _value(c.channels), _value(c.rank),
                     _value(c.eps, "{:.6g}"), _value(c.scale_factor, "{:.6g}"),
                     "yes" if c.affine else "no", "yes" if c.convertible else "NO"])
    out = [f"{', '.join(report.files)}: {len(report.chains)} BatchNorm chain(s)"]
    if rows:
        out.append(format_table(["key", "layers", "flavour", "C", "rank", "eps", "scale factor",
                                 "affine", "convertible"], rows))
    for c in report.chains:
        out.extend(f"  {c.batch_norm}: {note}" for note in c.notes)
        out.extend(f"  {c.batch_norm}: cannot convert: {problem}" for problem in c.problems)
    if report.standalone_affine:
        out.append("standalone Scale/Bias (not part of a BatchNorm): "
                   + ", ".join(report.standalone_affine))
    if report.unknown_layer_types:
        out.append("layer types outside BVLC Caffe (not needed for BN conversion): " + ", ".join(
            f"{t} x{n}" for t, n in sorted(report.unknown_layer_types.items())))
    if report.unknown_fields:
        out.append(f"fields the Caffe schema does not know, skipped ({len(report.unknown_fields)}):"
                   f" {', '.join(report.unknown_fields[:20])}"
                   + (" ..." if len(report.unknown_fields) > 20 else ""))
    if report.missing_weights:
        out.append("layers without weights in the caffemodel (Caffe keeps their initial values): "
                   + ", ".join(report.missing_weights))
    if report.unused_weights:
        out.append("caffemodel layers the net does not have (ignored, as Caffe does): "
                   + ", ".join(report.unused_weights))
    return "\n".join(out)
