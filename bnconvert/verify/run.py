"""``verify_file``: read the Caffe files and the converted file, run both on the same inputs,
measure, report. Read errors raise; mismatches are rows of the report."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BlobError, ParseError, UnsupportedLayerError
from ..fold.chains import BatchNormChain
from ..read.net import load_net
from ..write.manifest import manifest_entries, manifest_path_for, read_manifest
from .candidate import (
    CandidateError,
    ConvertedBatchNorm,
    format_of,
    load_converted,
    run_candidate,
)
from .compare import DEFAULT_ATOL, DEFAULT_RTOL, Measurement, measure
from .external import REFERENCES, ExternalReference, Unsupported, external_reference
from .inputs import random_input
from .match import Match, key_in_manifest, match_chain, unclaimed_keys
from .provenance import check_manifest_belongs, source_notes
from .reference import CaffeChain, ChainForward, read_reference_chain
from .reference_forks import (
    ForkChain,
    ReferenceChain,
    batch_statistics_reason,
    reference_forward,
    with_recorded_eps,
)
from .report import FAIL, NOT_CHECKED, PASS, ChainResult, VerifyReport
from .walk import walk_chains

__all__ = ["verify_file"]

PathLike = str | os.PathLike[str]


def verify_file(prototxt: PathLike | None, caffemodel: PathLike, converted: PathLike, *,
                manifest: PathLike | bool = True, user_input: np.ndarray | None = None,
                atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                reference: str = "numpy", seed: int = 0,
                flavour: str | None = None) -> VerifyReport:
    """Check that ``converted`` computes what Caffe computes, BN chain by BN chain.

    Args:
        prototxt: the net definition, or None to use the caffemodel's own layers.
        caffemodel: the trained weights (the reference reads its raw blobs).
        converted: ``.pt``/``.pth``/``.safetensors``/``.t7``, read back from disk.
        manifest: True for ``CONVERTED.json`` when it exists, a path, or False for none (eps and
            ranks then come from the Caffe files).
        user_input: an input for the net's first input blob; used for chains that read it.
        atol, rtol: tolerances of ``compare.measure``.
        reference: ``numpy`` (default), ``pycaffe`` or ``opencv``.
        seed: seed of the random inputs.
        flavour: which implementation's BN layers these are (``convert --flavor``), when the
            files are ambiguous; default: detected as ``convert`` detects it.

    Returns:
        The report; ``report.passed`` / ``report.raise_for_failure()`` give the verdict.

    Raises:
        ParseError, BlobError, MissingLayerError: a file cannot be read (Caffe, converted,
            manifest); ReferenceUnavailableError: the chosen reference is not installed.

    Example:
        >>> from bnconvert import convert
        >>> out = getfixture("tmp_path") / "bn.pt"
        >>> _ = convert(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, out)
        >>> verify_file(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, out).verdict
        'pass'
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {REFERENCES}")
    runner = (reference, external_reference(reference)) if reference != "numpy" else None
    manifest_path, manifest_data = _manifest(converted, manifest)
    net = load_net(prototxt, caffemodel)
    chains = walk_chains(net, flavour)
    if not chains:
        raise ParseError(f"{net.describe()}: no BatchNorm layers in the TEST-phase net; "
                         "nothing to verify")
    fmt = format_of(converted, manifest_data)
    loaded = load_converted(converted, fmt)
    rows, claimed = [], set()
    for index, chain in enumerate(chains):
        try:
            caffe = read_reference_chain(net, chain)
        except UnsupportedLayerError as exc:
            key = key_in_manifest(chain.batch_norm.name, manifest_data)
            claimed.add(key)
            rows.append(ChainResult(tuple(x.name for x in chain.layers()), key, NOT_CHECKED,
                                    reason=str(exc), flavour=chain.flavour))
            continue
        match = match_chain(caffe, index, loaded, manifest_data, len(chains))
        claimed.add(match.key)
        row = _check_chain(caffe, index, match, user_input, seed, atol, rtol, runner)
        rows.append(_pairing(_flavour_note(row, manifest_data), chain, manifest_data))
    extra = unclaimed_keys(loaded, claimed)
    notes: tuple[str, ...] = (
        f"modules no Caffe BatchNorm accounts for (not checked): {', '.join(extra)}",) \
        if extra else ()
    notes += source_notes(manifest_data, prototxt, caffemodel)
    return VerifyReport(str(converted), fmt, str(manifest_path) if manifest_path else None,
                        str(prototxt) if prototxt is not None else None, str(caffemodel),
                        reference, seed, atol, rtol, tuple(rows), notes)


def _manifest(converted: PathLike,
              manifest: PathLike | bool) -> tuple[Path | None, dict[str, Any] | None]:
    if manifest is False:
        return None, None
    if manifest is True:
        path = manifest_path_for(str(converted))
        if not path.exists():
            return None, None
    else:
        path = Path(manifest)
    try:
        data = read_manifest(path)
    except (OSError, ValueError) as exc:
        raise ParseError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(data, dict) or not (isinstance(data.get("layers"), list)
                                          or isinstance(data.get("batch_norms"), list)):
        raise ParseError(f"{path}: not a bnconvert manifest (no 'layers' list)")
    check_manifest_belongs(path, data, converted)
    return path, data


def _flavour_note(row: ChainResult, manifest: dict[str, Any] | None) -> ChainResult:
    """Say so when the manifest records another flavour than the one checked (a file
    converted with ``--flavor``): the reference follows the Caffe files, not the manifest."""
    entry = next((e for e in manifest_entries(manifest, "batch_norm")
                  if (e.get("caffe_layers") or {}).get("batch_norm") == row.layers[0]), None)
    recorded = entry.get("flavour") if entry is not None else None
    if not isinstance(recorded, str) or recorded == row.flavour:
        return row
    return replace(row, notes=row.notes + (
        f"the manifest says this layer was converted as flavour {recorded!r}; checked as "
        f"{row.flavour!r} (verify_file(..., flavour=...) to check it as converted)",))


def _pairing(row: ChainResult, chain: BatchNormChain,
             manifest: dict[str, Any] | None) -> ChainResult:
    """Fail a chain whose converted module was folded from other Caffe layers than verify's own
    walk of the net pairs with the BatchNorm (a pairing bug in the converter)."""
    entry = next((e for e in manifest_entries(manifest, "batch_norm")
                  if (e.get("caffe_layers") or {}).get("batch_norm") == chain.batch_norm.name),
                 None)
    if entry is None:
        return row
    recorded = entry.get("caffe_layers") or {}
    found = {"scale": chain.scale.name if chain.scale else None,
             "bias": chain.bias.name if chain.bias else None}
    differ = [f"{role} {recorded.get(role)!r} (verify pairs {found[role]!r})"
              for role in ("scale", "bias") if recorded.get(role) != found[role]]
    if not differ:
        return row
    reason = (f"the converted module was folded from other layers than the Caffe net pairs with "
              f"{chain.batch_norm.name!r}: the manifest records {', '.join(differ)}")
    return replace(row, status=FAIL, reason=f"{reason}; {row.reason}" if row.reason else reason)


def _inputs(caffe: ReferenceChain, match: Match, index: int, seed: int,
            user_input: np.ndarray | None) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    x = random_input(caffe, match.rank, seed, index)
    inputs = [(f"random {list(x.shape)} (seed {seed})", x)]
    notes = []
    if user_input is not None:
        if not caffe.reads_net_input:
            notes.append("--input not used: this BatchNorm's input is computed by layers verify "
                         "does not run")
        elif user_input.ndim < 2 or user_input.shape[1] != caffe.channels:
            raise BlobError(f"--input has shape {list(user_input.shape)}; layer "
                            f"{caffe.batch_norm!r} reads it directly and has {caffe.channels} "
                            "channels on axis 1")
        else:
            inputs.append((f"--input {list(user_input.shape)}",
                           np.asarray(user_input, np.float32)))
    return inputs, notes


def _check_chain(caffe: ReferenceChain, index: int, match: Match, user_input: np.ndarray | None,
                 seed: int, atol: float, rtol: float,
                 runner: tuple[str, ExternalReference] | None) -> ChainResult:
    row = ChainResult(caffe.layers, match.key, FAIL, notes=match.notes, flavour=caffe.flavour)
    if match.module is None:
        return replace(row, reason=match.problem)
    caffe, eps_note = with_recorded_eps(caffe, match.module.eps)
    inputs, notes = _inputs(caffe, match, index, seed, user_input)
    fork_notes = caffe.notes if isinstance(caffe, ForkChain) else ()
    notes = [*fork_notes, *([eps_note] if eps_note else []), *notes]
    row = replace(row, eps=match.module.eps, eps_source=match.module.eps_source,
                  inputs=tuple(label for label, _ in inputs), notes=match.notes + tuple(notes))
    try:
        result = _measure_inputs(caffe, match.module, [x for _, x in inputs], atol, rtol, runner)
    except CandidateError as exc:
        return replace(row, reason=f"{match.key}: {exc}")
    if isinstance(result, Unsupported):
        assert runner is not None
        return replace(row, status=NOT_CHECKED, reason=f"not checked by {runner[0]}: "
                                                       f"{result.reason}")
    return replace(row, status=PASS if result.passed else FAIL,
                   max_abs_err=result.max_abs_err, max_rel_err=result.max_rel_err,
                   worst_channel=result.worst_channel,
                   reason=None if result.passed else _why(caffe, result, atol, rtol))


def _measure_inputs(caffe: ReferenceChain, module: ConvertedBatchNorm, inputs: list[np.ndarray],
                    atol: float, rtol: float,
                    runner: tuple[str, ExternalReference] | None) -> Measurement | Unsupported:
    """The worst measurement over the inputs (reference and candidate on each)."""
    result: Measurement | None = None
    for x in inputs:
        forward = reference_forward(caffe, x)
        if runner is not None:
            expected = runner[1](caffe, x) if isinstance(caffe, CaffeChain) else Unsupported(
                f"{runner[0]} runs BVLC layers only; this is a {caffe.flavour} layer (the numpy "
                "reference implements its formula)")
            if isinstance(expected, Unsupported):
                return expected
            forward = ChainForward(expected, forward.normalized, forward.mean, forward.std)
        got = run_candidate(module, x)
        m = measure(got, forward, caffe.gamma, _shift(caffe), atol=atol, rtol=rtol)
        result = m if result is None else result.merged(m)
    assert result is not None
    return result


def _shift(caffe: ReferenceChain) -> np.ndarray | None:
    parts = [p.astype(np.float64) for p in (caffe.beta, caffe.bias) if p is not None]
    return sum(parts[1:], parts[0]) if parts else None


def _why(caffe: ReferenceChain, result: Measurement, atol: float, rtol: float) -> str:
    channels = result.failing_channels
    listed = ", ".join(str(c) for c in channels[:8]) + (", ..." if len(channels) > 8 else "")
    limit = f"rtol {rtol:g}" + (f" + atol {atol:g}" if atol else "")
    text = (f"{len(channels)} of {caffe.channels} channels differ ({listed}); worst channel "
            f"{result.worst_channel}: rel err {result.max_rel_err:.3g} > {limit}")
    batch = batch_statistics_reason(caffe)
    return text if batch is None else f"{text}. {batch}"
