"""Plain-text rendering of reports for the terminal (no click, no torch)."""

from __future__ import annotations

from .inspect import InspectReport
from .text_table import format_table

__all__ = ["format_inspect"]


def _value(value: object, fmt: str = "{}") -> str:
    return "?" if value is None else fmt.format(value)


def _chain_rows(report: InspectReport) -> list[list[str]]:
    rows = []
    for c in report.chains:
        layers = " -> ".join(n for n in (c.batch_norm, c.scale, c.bias) if n)
        rows.append([c.key, layers, c.flavour, _value(c.channels), _value(c.rank),
                     _value(c.eps, "{:.6g}"), _value(c.scale_factor, "{:.6g}"),
                     "yes" if c.affine else "no", "yes" if c.convertible else "NO"])
    return rows


def _summary(report: InspectReport) -> str:
    kinds = ", ".join(f"{kind} x{n}" for kind, n in report.flavour_counts.items())
    return (f"{', '.join(report.files)}: {len(report.chains)} BatchNorm chain(s)"
            + (f": {kinds}" if kinds else ""))


def _per_layer(report: InspectReport) -> list[str]:
    out: list[str] = []
    for c in report.chains:
        out.extend(f"  {c.batch_norm}: {note}" for note in c.notes)
        out.extend(f"  {c.batch_norm}: cannot convert: {problem}" for problem in c.problems)
    out.extend(_not_converted(report))
    if report.standalone_affine:
        out.append(f"Scale/Bias not part of a BatchNorm ({len(report.standalone_affine)}; "
                   "not converted, they stay layers of their own):")
        out.extend(f"  {r.layer} ({r.type}): {r.reason}" for r in report.standalone_affine)
    return out


def _not_converted(report: InspectReport) -> list[str]:
    """Rows with the same type and reason on one line (seven EltwiseAffine, one reason)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in report.not_converted:
        where = f"{r.layer} (after {r.after})" if r.after else r.layer
        groups.setdefault((r.type, r.reason), []).append(where)
    if not groups:
        return []
    out = [f"not converted ({len(report.not_converted)}):"]
    out.extend(f"  {kind} x{len(layers)}: {', '.join(layers)}: {reason}"
               for (kind, reason), layers in groups.items())
    return out


def format_inspect(report: InspectReport) -> str:
    """The human-readable ``inspect`` output."""
    out = [_summary(report)]
    rows = _chain_rows(report)
    if rows:
        out.append(format_table(["key", "layers", "flavour", "C", "rank", "eps", "scale factor",
                                 "affine", "convertible"], rows))
    out.extend(_per_layer(report))
    if report.refused_by_caffe:
        out.append(f"warning: {report.refused_by_caffe}")
    out.extend(f"warning: not read faithfully: {problem}" for problem in report.definition_problems)
    if report.unknown_layer_types:
        out.append("layer types outside BVLC Caffe (not needed for BN conversion): " + ", ".join(
            f"{t} x{n}" for t, n in sorted(report.unknown_layer_types.items())))
    if report.unknown_fields:
        out.append(f"fields the Caffe schema does not know, skipped ({len(report.unknown_fields)}):"
                   f" {', '.join(report.unknown_fields[:20])}"
                   + (" ..." if len(report.unknown_fields) > 20 else ""))
    if report.missing_weights:
        out.append("layers without weights in the caffemodel (Caffe keeps their initial values; "
                   "not needed for BN conversion): " + ", ".join(report.missing_weights))
    if report.unused_weights:
        out.append("caffemodel layers the net does not have (ignored, as Caffe does): "
                   + ", ".join(report.unused_weights))
    return "\n".join(out)
