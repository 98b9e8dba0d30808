"""``bnconvert verify`` (#3): a converted file checked against Caffe's numbers: BN chains,
--target (#13) and --whole (#12)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import BnConvertError
from .common import FLAVOR, read_error, usage


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .npy input for the net's first input blob; used for the BatchNorms that "
                   "read it directly (others say it was not used); with --whole --reference, "
                   "what the net runs on.")
@click.option("--atol", type=click.FloatRange(min=0), default=None,
              help="Absolute tolerance added to the allowed error (default 0).")
@click.option("--rtol", type=click.FloatRange(min=0), default=None,
              help="Allowed error relative to each channel's output magnitude (default 1e-06).")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report.")
@click.option("--reference", type=click.Choice(["numpy", "pycaffe", "opencv"]), default="numpy",
              show_default=True, help="What computes Caffe's output: bnconvert's numpy "
                                      "reference, real Caffe (import caffe), or OpenCV's dnn.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--manifest", "manifest",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The manifest to use (default: CONVERTED.json when it exists).")
@click.option("--no-manifest", is_flag=True,
              help="Ignore any manifest: keys, eps and ranks come from the Caffe files.")
@click.option("--target", metavar="SPEC",
              help="Check CONVERTED as weights of your own model (package.module:callable or "
                   "file.py:callable): loaded strictly, run against Caffe's numbers.")
@click.option("--target-kwargs", metavar="JSON", help="Keyword arguments for --target.")
@click.option("--map", "map_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --target: Caffe layer (or regex) -> target module, as convert's.")
@FLAVOR
@click.option("--whole", is_flag=True,
              help="Check a whole-model state_dict (convert --module) end to end, blob by blob, "
                   "against --expected, or against --reference opencv|pycaffe run on the same "
                   "net (on --input, else seeded noise of the declared shape).")
@click.option("--expected", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --whole: a .npz of every blob dumped from pycaffe after net.forward().")
def verify(files: tuple[Path, ...], input_path: Path | None, atol: float | None,
           rtol: float | None, as_json: bool, reference: str, seed: int, manifest: Path | None,
           no_manifest: bool, flavor: str | None, whole: bool, expected: Path | None,
           target: str | None, target_kwargs: str | None, map_file: Path | None) -> None:
    """Check that CONVERTED computes what Caffe computes: [PROTOTXT] CAFFEMODEL CONVERTED.

    Every BatchNorm chain of the Caffe net runs through an independent reference of Caffe's
    TEST forward and through the converted module read back from disk, on seeded inputs.
    Exit 0: all chains match; 1: a chain does not match (or none could be checked);
    2: usage error or a file cannot be read.
    """
    if len(files) not in (2, 3):
        raise click.UsageError("expected [PROTOTXT] CAFFEMODEL CONVERTED (two or three files)")
    if whole or expected:
        _verify_whole(files, expected, rtol, as_json, reference, (input_path, seed))
    if target is not None:
        _verify_target(files, target, target_kwargs, map_file, flavor, seed)
    from ..usage import manifest_usage_problem

    usage(manifest_usage_problem(manifest, no_manifest))
    prototxt, caffemodel, converted = (None, *files) if len(files) == 2 else files
    import numpy as np

    from ..verify import DEFAULT_ATOL, DEFAULT_RTOL, format_report, verify_file

    try:
        user_input = np.load(input_path, allow_pickle=False) if input_path else None
    except (OSError, ValueError) as exc:
        read_error(f"{input_path}: not a readable .npy array: {exc}", as_json)
    try:
        report = verify_file(prototxt, caffemodel, converted, user_input=user_input,
                             manifest=False if no_manifest else (manifest or True),
                             atol=DEFAULT_ATOL if atol is None else atol,
                             rtol=DEFAULT_RTOL if rtol is None else rtol,
                             reference=reference, seed=seed, flavour=flavor)
    except BnConvertError as exc:
        read_error(str(exc), as_json)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else format_report(report))
    sys.exit(0 if report.passed else 1)


def _verify_target(files: tuple[Path, ...], spec: str, kwargs_text: str | None,
                   map_file: Path | None, flavor: str | None, seed: int) -> None:
    """``verify --target``: exit 0 the user's model with these weights computes Caffe's
    numbers, 1 a module differs (named), 2 nothing could be checked."""
    from ..target.mapfile import read_map
    from ..target.run import load_target, verify_target

    prototxt, caffemodel, weights = (None, *files) if len(files) == 2 else files
    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
        entries = read_map(map_file) if map_file is not None else None
        found = verify_target(load_target(spec, dict(kwargs)), prototxt, caffemodel, weights,
                              entries=entries, flavour=flavor, seed=seed)
    except (BnConvertError, json.JSONDecodeError, TypeError) as exc:
        click.echo(f"bnconvert: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    if found is not None:
        click.echo(f"verify {weights} in {spec}: FAIL: {found.message()}")
        sys.exit(1)
    click.echo(f"verify {weights} in {spec}: PASS (every mapped module equals Caffe's output "
               "within float32 rounding)")
    sys.exit(0)


def _verify_whole(files: tuple[Path, ...], expected: Path | None, rtol: float | None,
                  as_json: bool, reference: str, given: tuple[Path | None, int]) -> None:
    """``verify --whole``: exit 0 every blob matches, 1 one diverges, 2 nothing checked."""
    usage("--expected needs --whole" if not click.get_current_context().params["whole"]
           else None)
    usage("--whole needs --expected BLOBS.npz (a pycaffe dump) or --reference opencv|pycaffe"
           if expected is None and reference == "numpy" else None)
    usage(f"--expected and --reference {reference} are exclusive: compare with a pycaffe dump "
           "or with a reference run" if expected is not None and reference != "numpy" else None)
    usage("--input applies to --reference, not --expected (the dump holds the inputs)"
           if expected is not None and given[0] is not None else None)
    prototxt, caffemodel, converted = (None, *files) if len(files) == 2 else files
    from ..build.verify_whole import DEFAULT_WHOLE_RTOL, verify_whole
    from ..build.verify_whole_reference import verify_whole_reference

    tolerance = DEFAULT_WHOLE_RTOL if rtol is None else rtol
    try:
        if expected is not None:
            report = verify_whole(prototxt, caffemodel, converted, expected, tolerance)
        else:
            report = verify_whole_reference(prototxt, caffemodel, converted, reference,
                                            _whole_input(given[0]), given[1], tolerance)
    except BnConvertError as exc:
        read_error(str(exc), as_json)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text())
    sys.exit({"match": 0, "mismatch": 1}.get(report.verdict, 2))


def _whole_input(path: Path | None) -> Any:
    """``--input`` as an array for the whole-net reference (None when not given)."""
    if path is None:
        return None
    import numpy as np

    from ..errors import ParseError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ParseError(f"{path}: not a readable .npy array: {exc}") from None
