"""``verify --whole``: a converted whole-model state_dict, loaded into the module built from the
prototxt, checked end to end, blob by blob, against what a user dumped from pycaffe
(``{name: net.blobs[name].data}`` after ``net.forward()``, inputs included).

Blobs are compared in the order their last writer runs; each within ``rtol`` of its Caffe
magnitude (max |got − caffe| / max |caffe|). The Split blobs Caffe inserts (``*_split_N``) are
not tops of the prototxt and are skipped. The report names the first blob that diverges and
the layer that (last) wrote it. The same comparison serves ``--reference opencv|pycaffe``
(``verify_whole_reference``), where blobs the reference cannot compute as Caffe are listed as
not checked, with the reason, and never count as passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BnConvertError, ParseError
from ..read.net import Net, load_net
from .api import build_model
from .network import BuildOptions, BuiltNet
from .probe import blob_values

__all__ = ["WholeReport", "BlobCheck", "verify_whole", "compare_blobs", "fitting_build",
           "DEFAULT_WHOLE_RTOL"]

PathLike = str | os.PathLike[str]
DEFAULT_WHOLE_RTOL = 1e-5


@dataclass(frozen=True)
class BlobCheck:
    """One blob: its last writer, the relative error (inf: wrong shape, not computed or not
    checked); ``checked`` False: the reference has no Caffe value for it (``problem``: why)."""

    blob: str
    layer: str
    error: float
    passed: bool
    problem: str = ""
    checked: bool = True


@dataclass(frozen=True)
class WholeReport:
    """All blob checks in forward order; ``first_failure`` is the first that diverges."""

    checks: tuple[BlobCheck, ...]
    rtol: float
    skipped: tuple[str, ...]
    reference: str = "expected"

    @property
    def compared(self) -> tuple[BlobCheck, ...]:
        """The blobs the reference gave a Caffe value for."""
        return tuple(c for c in self.checks if c.checked)

    @property
    def passed(self) -> bool:
        """True when every compared blob matched and at least one was compared."""
        return all(c.passed for c in self.compared) and bool(self.compared)

    @property
    def verdict(self) -> str:
        """``match``, ``mismatch`` or ``nothing checked`` (exit 0, 1, 2)."""
        return ("nothing checked" if not self.compared else
                "match" if self.passed else "mismatch")

    @property
    def first_failure(self) -> BlobCheck | None:
        """The first diverging blob in forward order, or None."""
        return next((c for c in self.compared if not c.passed), None)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report."""
        first = self.first_failure
        return {"verdict": self.verdict, "reference": self.reference, "rtol": self.rtol,
                "first_diverging": None if first is None else vars(first),
                "blobs": [vars(c) for c in self.checks], "skipped": list(self.skipped)}

    def text(self) -> str:
        """A short human-readable report (then one line per blob not checked)."""
        unchecked = self._not_checked_lines()
        tail = f"; {len(unchecked)} blobs not checked:" if unchecked else ""
        return "\n".join([self._headline() + tail, *unchecked])

    def _headline(self) -> str:
        first, compared = self.first_failure, self.compared
        source = "Caffe's" if self.reference == "expected" else f"the {self.reference} reference's"
        if first is None and compared:
            worst = max(compared, key=lambda c: c.error)
            return (f"match: {len(compared)} blobs within {self.rtol:g} of {source} magnitude "
                    f"(worst {worst.blob!r}: {worst.error:.3g})")
        if first is None:
            return f"nothing checked: no blob could be compared with {source} values"
        why = first.problem or f"relative error {first.error:.3g} > {self.rtol:g}"
        return (f"mismatch: first diverging blob {first.blob!r}, written by layer "
                f"{first.layer!r}: {why} ({sum(not c.passed for c in compared)} of "
                f"{len(compared)} blobs differ)")

    def _not_checked_lines(self) -> list[str]:
        return [f"blob {c.blob!r} (layer {c.layer!r}): {c.problem}"
                for c in self.checks if not c.checked]


def _load_state(path: PathLike) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, ValueError) as exc:
        raise ParseError(f"{path}: not a readable PyTorch state_dict: {exc}") from None
    if not isinstance(state, dict):
        raise ParseError(f"{path}: holds a {type(state).__name__}, expected a state_dict")
    return state


def _expected(path: PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise ParseError(f"{path}: not a readable .npz of blobs: {exc}") from None


def _check(name: str, layer: str, got: torch.Tensor | None, ref: np.ndarray,
           rtol: float) -> BlobCheck:
    if got is None:
        return BlobCheck(name, layer, float("inf"), False, "not computed (an earlier blob broke "
                                                           "the forward)")
    value = got.detach().double().numpy()
    if value.shape != ref.shape:
        return BlobCheck(name, layer, float("inf"), False,
                         f"shape {list(value.shape)}, Caffe's {list(ref.shape)}")
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(value - ref))) if ref.size else 0.0
    error = diff / scale if scale else diff
    return BlobCheck(name, layer, error, error <= rtol)


def compare_blobs(built: BuiltNet, expected: dict[str, np.ndarray],
                  rtol: float = DEFAULT_WHOLE_RTOL, not_checked: Mapping[str, str] | None = None,
                  reference: str = "expected") -> WholeReport:
    """Run ``built`` on the dump's inputs and compare every blob of the dump.

    Args:
        expected: blob name -> Caffe's value after the forward, the inputs included.
        not_checked: blob name -> why the reference has no Caffe value for it (reported as
            not checked, in forward order).
        reference: what ``expected`` came from, for the report.

    Raises:
        BnConvertError: the dump lacks one of the net's inputs.
    """
    missing = [name for name in built.inputs if name not in expected]
    if missing:
        raise BnConvertError(f"the blob dump has no input {', '.join(missing)} (dump every "
                             "net.blobs entry, the inputs included)")
    inputs = [torch.from_numpy(np.asarray(expected[n], dtype=np.float32)) for n in built.inputs]
    values = blob_values(built, *inputs, partial=True)
    order = list(built.writers)  # blobs in the order their (last) writer ran
    unchecked = not_checked or {}
    checks = [_check(b, built.writers[b], values.get(b), expected[b], rtol) if b in expected
              else BlobCheck(b, built.writers[b], float("inf"), False, unchecked[b], False)
              for b in order if b in expected or b in unchecked]
    skipped = tuple(k for k in expected if k not in built.writers and k not in built.inputs)
    return WholeReport(tuple(checks), rtol, skipped, reference)


def verify_whole(prototxt: PathLike | None, caffemodel: PathLike, converted: PathLike,
                 expected: PathLike, rtol: float = DEFAULT_WHOLE_RTOL) -> WholeReport:
    """Check a whole-model state_dict end to end against a pycaffe blob dump.

    Args:
        prototxt, caffemodel: the Caffe net (the module is built from them).
        converted: the ``.pt`` state_dict (``convert --module``), loaded strictly.
        expected: ``blobs.npz`` dumped from pycaffe after ``net.forward()``.

    Returns:
        The report (``passed``, ``first_failure``).

    Raises:
        ParseError: a file cannot be read (exit 2).
        BnConvertError: the state_dict does not fit the net, the dump lacks an input.
    """
    net = load_net(prototxt, caffemodel)
    built = fitting_build(net, converted)
    return compare_blobs(built, _expected(expected), rtol)


def fitting_build(net: Net, converted: PathLike) -> BuiltNet:
    """The net built with the fold (keep, else fuse) whose state_dict ``converted`` fills,
    loaded strictly.

    Raises:
        ParseError: ``converted`` is not a readable state_dict.
        BnConvertError: it fits neither build of the net.
    """
    state = _load_state(converted)
    problem = ""
    for fold in ("keep", "fuse"):  # a state_dict of convert --module --fold fuse has no BN
        built = build_model(net, BuildOptions(fold=fold))
        try:
            built.module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            lines = str(exc).splitlines()
            problem = problem or (lines[1].strip() if len(lines) > 1 else str(exc))
            continue
        return built
    raise BnConvertError(f"{converted}: does not fit the net of {net.describe()}: {problem}")
