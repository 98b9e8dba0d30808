"""The verification report: one row per BN chain and a verdict, as text or JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import VerificationError
from ..text_table import format_table

__all__ = ["ChainResult", "VerifyReport", "format_report", "PASS", "FAIL", "NOT_CHECKED"]

PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"


@dataclass(frozen=True)
class ChainResult:
    """The verdict on one BatchNorm chain.

    Attributes:
        layers: the chain's Caffe layers (BatchNorm, Scale, Bias).
        key: the module's key or path in the converted file.
        status: ``"pass"``, ``"fail"`` or ``"not checked"`` (the chosen reference cannot run it).
        max_abs_err, max_rel_err, worst_channel: see ``compare.measure`` (None if not run).
        eps: the eps the candidate ran with, and where it came from.
        inputs: what the chain was fed.
        reason: why it failed or was not checked.
        notes: other facts worth knowing (input not used, match by position...).
        flavour: whose BN implementation the reference ran (``bvlc``, ``segnet``, ``yjxiong``,
            ``nvcaffe``, ``nvcaffe-digits``, ``intel``; see ``bnconvert.flavours``).
    """

    layers: tuple[str, ...]
    key: str
    status: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    worst_channel: int | None = None
    eps: float | None = None
    eps_source: str | None = None
    inputs: tuple[str, ...] = ()
    reason: str | None = None
    notes: tuple[str, ...] = ()
    flavour: str = "bvlc"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite errors as strings ``"inf"``/``"nan"``)."""
        return {"batch_norm": self.layers[0], "caffe_layers": list(self.layers), "key": self.key,
                "flavour": self.flavour, "status": self.status,
                "max_abs_err": _number(self.max_abs_err),
                "max_rel_err": _number(self.max_rel_err), "worst_channel": self.worst_channel,
                "eps": self.eps, "eps_source": self.eps_source, "inputs": list(self.inputs),
                "reason": self.reason, "notes": list(self.notes)}


def _number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)


@dataclass(frozen=True)
class VerifyReport:
    """Everything ``verify`` found.

    Attributes:
        converted, fmt, manifest: the file checked, its format, the manifest used (or None).
        prototxt, caffemodel: the Caffe files.
        reference: ``numpy``, ``pycaffe`` or ``opencv``; seed, atol, rtol: the settings.
        chains: one result per BatchNorm chain, in net order.
        notes: file-level remarks (modules no Caffe layer accounts for...).
    """

    converted: str
    fmt: str
    manifest: str | None
    prototxt: str | None
    caffemodel: str
    reference: str
    seed: int
    atol: float
    rtol: float
    chains: tuple[ChainResult, ...]
    notes: tuple[str, ...] = field(default=())

    def count(self, status: str) -> int:
        """Number of chains with ``status``."""
        return sum(r.status == status for r in self.chains)

    @property
    def passed(self) -> bool:
        """No chain failed and at least one was checked."""
        return self.count(FAIL) == 0 and self.count(PASS) > 0

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"fail"`` or ``"nothing checked"``."""
        if self.count(FAIL):
            return FAIL
        return PASS if self.count(PASS) else "nothing checked"

    def raise_for_failure(self) -> None:
        """Raise ``VerificationError`` naming the failing layers unless the report passed."""
        if self.passed:
            return
        failing = [f"{r.layers[0]} ({r.reason})" for r in self.chains if r.status == FAIL]
        raise VerificationError(f"{self.converted} does not reproduce Caffe: "
                                + ("; ".join(failing) or "no chain could be checked"))

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (what ``verify --json`` prints)."""
        return {"verdict": self.verdict, "converted": self.converted, "format": self.fmt,
                "manifest": self.manifest,
                "caffe": {"prototxt": self.prototxt, "caffemodel": self.caffemodel},
                "reference": self.reference, "seed": self.seed, "atol": self.atol,
                "rtol": self.rtol,
                "error_measure": "per channel c: max|candidate - reference| / magnitude_c, "
                                 "magnitude_c = max(max|ref_c|, |gamma_c|*max|x_hat_c|, "
                                 "|gamma_c*mean_c/std_c|, |beta_c|); fail if > atol + "
                                 "rtol*magnitude_c",
                "summary": {PASS: self.count(PASS), FAIL: self.count(FAIL),
                            NOT_CHECKED: self.count(NOT_CHECKED)},
                "chains": [r.to_json() for r in self.chains], "notes": list(self.notes)}


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_report(report: VerifyReport) -> str:
    """The human-readable report: a table of chains, the reasons, the verdict."""
    head = (f"verify {report.converted} ({report.fmt}) against the {report.reference} reference "
            f"of Caffe's TEST forward; seed {report.seed}, rtol {report.rtol:g}, "
            f"atol {report.atol:g}")
    rows = [[" -> ".join(r.layers), r.key, _err(r.max_abs_err), _err(r.max_rel_err),
             r.status.upper() if r.status == FAIL else r.status] for r in report.chains]
    titles = ["caffe layers", "key", "max abs err", "max rel err", "result"]
    lines = [head, "", format_table(titles, rows)]
    details = [f"  {r.layers[0]}: {r.reason}" for r in report.chains if r.reason]
    details += [f"  {r.layers[0]}: checked on {' and '.join(r.inputs)}"
                for r in report.chains if len(r.inputs) > 1]
    details += [f"  {r.layers[0]}: {note}" for r in report.chains for note in r.notes]
    details += [f"  {note}" for note in report.notes]
    if details:
        lines += ["", *details]
    summary = (f"{report.count(PASS)} pass, {report.count(FAIL)} fail, "
               f"{report.count(NOT_CHECKED)} not checked")
    lines += ["", f"verdict: {report.verdict.upper()} ({summary})"]
    return "\n".join(lines)
