"""The ``bnconvert`` command line. The only module that imports click; it parses options into
one options object and calls the API (``bnconvert.api``, ``bnconvert.verify``).

Exit codes: 0 success; 1 the inputs were read but cannot be converted (verify: a mismatch);
2 a usage error or a file that cannot be read (verify: nothing could be checked). Errors are one
line on stderr.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._version import __version__
from .errors import BnConvertError
from .write.registry import EXTENSIONS, supported_formats

if TYPE_CHECKING:
    from .build.network import BuildOptions

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BnConvertError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"bnconvert: error: {message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _split_files(files: tuple[Path, ...], need_model: bool) -> tuple[Path | None, Path | None]:
    """``[PROTOTXT] CAFFEMODEL`` (or, for inspect, either alone, told apart by content)."""
    if len(files) == 2:
        return files[0], files[1]
    if len(files) == 1:
        from .read.caffemodel import caffemodel_path_kind

        if not need_model and files[0].is_file() and caffemodel_path_kind(files[0]) == "prototxt":
            return files[0], None
        return None, files[0]
    raise click.UsageError("expected [PROTOTXT] CAFFEMODEL (one or two files)")


def _usage(problem: str | None) -> None:
    """A usage error (exit 2) when ``problem`` is set."""
    if problem:
        raise click.UsageError(problem)


def _t7_only_options(cudnn: bool) -> list[str]:
    """The Torch7-only options given explicitly on the command line."""
    source = click.get_current_context().get_parameter_source("t7_layout")
    given = ["--t7-layout"] if source is click.core.ParameterSource.COMMANDLINE else []
    return given + (["--cudnn"] if cudnn else [])


class _FlavourChoice(click.Choice):
    """``--flavor``'s choices, read from the flavour registry when click first needs them:
    the registry imports the net reader and protobuf, which ``--help`` and ``--version`` of
    other commands need not pay for."""

    def __init__(self) -> None:
        self._loaded: tuple[str, ...] | None = None
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            from .flavours import selectable_ids

            self._loaded = selectable_ids()
        return self._loaded

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """``click.Choice.__init__`` stores the placeholder; the registry's ids replace it."""


_FLAVOR = click.option(
    "--flavor", type=_FlavourChoice(),
    help="Which Caffe's BN layers these are, when the files are ambiguous (default: detected "
         "from layer type, parameters and blobs).")
_FILES = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))


@click.group(name="bnconvert", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnconvert")
def main() -> None:
    """Convert Caffe BatchNorm (+Scale/+Bias) layers into PyTorch and Torch7 weights that
    compute exactly what Caffe computed."""


@main.command()
@_FILES
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help=f"Output file: {', '.join(EXTENSIONS)} (missing folders are created).")
@click.option("--format", "fmt", type=click.Choice(supported_formats()),
              help="Output format (default: from the extension).")
@click.option("--affine", is_flag=True,
              help="Give BatchNorms without a Scale weight 1 / bias 0 (for loaders that "
                   "require affine modules).")
@click.option("--strict", is_flag=True,
              help="Fail where PyTorch cannot reproduce Caffe (use_global_stats: false).")
@click.option("--prefix", default="", help="Prefix for every key, e.g. 'backbone.'.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--manifest", "manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the JSON manifest (default: OUTPUT.json).")
@click.option("--no-manifest", is_flag=True,
              help="Do not write a manifest (an OUTPUT.json left by an earlier conversion of "
                   "OUTPUT is removed).")
@click.option("--t7-layout", type=click.Choice(["table", "sequential"]), default="table",
              show_default=True, help="Torch7: a table keyed by BN name, or an nn.Sequential.")
@click.option("--cudnn", is_flag=True,
              help="Torch7: cudnn.BatchNormalization accepts affine modules only; write "
                   "BatchNorms without a Scale as weight 1 / bias 0 (implies --affine).")
@_FLAVOR
@click.option("--clamp-eps", is_flag=True,
              help="PSPNet/yjxiong BN: raise eps to 1e-5 as that fork's cuDNN builds do.")
@click.option("--momentum", default="caffe", show_default=True, metavar="caffe|default|VALUE",
              help="The BatchNorms' momentum for training: 'caffe' continues Caffe's running "
                   "averages (1/(maf·s + 1); None with num_batches_tracked = s for maf 1), "
                   "'default' is PyTorch's 0.1, or a number in [0, 1].")
@click.option("--whole", is_flag=True,
              help="Every layer with learned blobs (convolutions, inner products, PReLU, "
                   "Scale, ...), not only the BatchNorm chains.")
@click.option("--fold", "bn_fold", type=click.Choice(["keep", "fuse"]), default=None,
              help="With --whole or --module: keep BN chains as BatchNorms (default) or fuse "
                   "them into the convolution / inner product before them where the graph "
                   "allows.")
@click.option("--skip-unknown", is_flag=True,
              help="With --whole: convert the rest when layers of unknown learned types "
                   "exist (named in a warning and the manifest).")
@click.option("--target", metavar="SPEC",
              help="Your own model, 'package.module:callable' or 'path/to/file.py:callable': "
                   "write the Caffe weights in its names, matched by the structure of both "
                   "nets, after checking that it computes Caffe's numbers.")
@click.option("--target-kwargs", metavar="JSON", help="Keyword arguments for the --target "
              "callable, e.g. '{\"num_classes\": 10}'.")
@click.option("--map", "map_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --target: a JSON (or YAML) file of Caffe layer (or regex) -> target "
                   "module, for what the structure leaves ambiguous.")
@click.option("--no-check", is_flag=True,
              help="With --target: write the mapping without running both models (says so).")
@click.option("-v", "--verbose", is_flag=True, help="With --target: print the mapping table.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--module", "module_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Build the whole net: write OUTPUT (.pt) as its whole-model state_dict and "
                   "this Python file (needs only torch) with its nn.Module class.")
@click.option("--class-name", help="The --module class name (default: from the net's name).")
@click.option("--until", help="With --module: build the net up to this layer (inclusive).")
@click.option("--bn-train", type=click.Choice(["caffe"]), default=None,
              help="With --module: BatchNorms that continue Caffe's running averages exactly "
                   "at every train step (a small BatchNorm subclass in the file).")
@_one_line_errors
def convert(files: tuple[Path, ...], output: Path, fmt: str | None, affine: bool, strict: bool,
            prefix: str, dtype: str, manifest: Path | None, no_manifest: bool, t7_layout: str,
            cudnn: bool, flavor: str | None, clamp_eps: bool, momentum: str, whole: bool,
            bn_fold: str | None, skip_unknown: bool, target: str | None,
            target_kwargs: str | None, map_file: Path | None, no_check: bool, verbose: bool,
            quiet: bool, module_path: Path | None, class_name: str | None,
            until: str | None, bn_train: str | None) -> None:
    """Convert [PROTOTXT] CAFFEMODEL into OUTPUT (the prototxt is optional: a caffemodel
    carries its layer definitions)."""
    if module_path is not None:
        from .build.network import BuildOptions

        build = BuildOptions(until=until, flavour=flavor, class_name=class_name,
                             fold=bn_fold or "keep", bn_train=bn_train)
        _convert_module(files, output, module_path, build, quiet)
        return
    _usage("--class-name, --until and --bn-train need --module"
           if class_name or until or bn_train else None)
    import gc

    from .api import ConvertOptions
    from .api import convert as run_convert
    from .fold.options import FoldOptions
    from .records import FoldedBatchNorm
    from .usage import convert_usage_problem, momentum_usage_problem
    from .write.registry import WriteOptions, writer_for

    _usage(convert_usage_problem(output, fmt, manifest, no_manifest, _t7_only_options(cudnn)))
    _usage(momentum_usage_problem(momentum))
    _usage(None if whole or (bn_fold is None and not skip_unknown) else
           "--fold and --skip-unknown apply to --whole or --module only")
    prototxt, caffemodel = _split_files(files, need_model=True)
    assert caffemodel is not None
    writer_for(output, fmt)  # imports the writer and checks the format first
    # A one-shot process: keep the long-lived objects (torch's ~1e6 where an option imports
    # it) out of every later full collection (about 0.1 s of a conversion with torch).
    gc.freeze()
    options = ConvertOptions(
        fold=FoldOptions(affine=affine or cudnn, strict=strict, clamp_eps=clamp_eps,
                         flavour=flavor, momentum=momentum),
        write=WriteOptions(dtype=dtype, prefix=prefix, t7_layout=t7_layout), fmt=fmt,
        manifest=False if no_manifest else (manifest or True), whole=whole,
        bn_fold=bn_fold or "keep", skip_unknown=skip_unknown)
    if target is not None:
        _convert_to_target(prototxt, caffemodel, output, target, target_kwargs, map_file,
                           not no_check, options, verbose, quiet)
        return
    done = run_convert(prototxt, caffemodel, output, options)
    for warning in done.warnings:
        click.echo(f"bnconvert: warning: {warning}", err=True)
    missing = done.net.missing_learned_weights()
    if missing and not quiet:
        click.echo(f"bnconvert: note: {len(missing)} layer(s) have no weights in the caffemodel "
                   f"(Caffe keeps their initial values; not needed here): {', '.join(missing)}",
                   err=True)
    if not quiet and whole:
        click.echo(_whole_summary(done.records, output, done.manifest))
    elif not quiet:
        records = [r for r in done.records if isinstance(r, FoldedBatchNorm)]
        affine_count = sum(r.affine for r in records)
        with_manifest = f" and its manifest {done.manifest}" if done.manifest else ""
        click.echo(f"wrote {output}{with_manifest}: {len(records)} BatchNorm layers "
                   f"({affine_count} affine, {len(records) - affine_count} non-affine)")


def _convert_to_target(prototxt: Path | None, caffemodel: Path, output: Path, spec: str,
                       kwargs_text: str | None, map_file: Path | None, check: bool,
                       options: Any, verbose: bool, quiet: bool) -> None:
    """``convert --target``: map onto the user's model, check it, write it in its names."""
    from .target.mapfile import read_map
    from .target.records import table_lines
    from .target.run import convert_to_target, load_target

    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--target-kwargs") from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--target-kwargs")
    entries = read_map(map_file) if map_file is not None else None
    result = convert_to_target(prototxt, caffemodel, output, load_target(spec, kwargs),
                               entries=entries, check=check, options=options)
    for record in result.records:
        for warning in record.warnings:
            click.echo(f"bnconvert: note: {warning}", err=True)
    if not check:
        click.echo("bnconvert: warning: --no-check: the target was not run against Caffe's "
                   "numbers; verify it with 'bnconvert verify ... --target'", err=True)
    if verbose:
        click.echo("\n".join(table_lines(result.records)))
    if not quiet:
        state = "checked: equal to Caffe within float32 rounding" if check else "NOT checked"
        click.echo(f"wrote {output}: {len(result.records)} modules of {spec} ({state})")


def _whole_summary(records: Any, output: Path, manifest: Path | None) -> str:
    """``wrote OUT and its manifest M: 12 layers (4 conv, 4 batch_norm, ...)``."""
    from collections import Counter

    kinds = Counter(r.kind for r in records)
    listed = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    with_manifest = f" and its manifest {manifest}" if manifest else ""
    return f"wrote {output}{with_manifest}: {len(records)} layers ({listed})"


def _convert_module(files: tuple[Path, ...], output: Path, module_path: Path,
                    options: BuildOptions, quiet: bool) -> None:
    """``convert --module``: the whole net as a state_dict and a torch-only model file."""
    prototxt, caffemodel = _split_files(files, need_model=True)
    assert caffemodel is not None
    from .build.files import write_model_files

    built = write_model_files(prototxt, caffemodel, output, module_path, options)
    for note in built.notes:
        click.echo(f"bnconvert: note: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {output} and {module_path}: class {type(built.module).__name__}, "
                   f"{len(built.made)} layers, forward({', '.join(built.inputs)}) -> "
                   f"{', '.join(built.outputs)}")


@main.command()
@_FILES
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--whole", is_flag=True,
              help="A table of every layer with learned blobs: type, blob shapes, and what it "
                   "becomes.")
@_FLAVOR
@_one_line_errors
def inspect(files: tuple[Path, ...], as_json: bool, whole: bool, flavor: str | None) -> None:
    """Show the BatchNorm chains of [PROTOTXT] [CAFFEMODEL] (either or both)."""
    from .inspect import inspect_net
    from .read.net import load_net

    prototxt, caffemodel = _split_files(files, need_model=False)
    if whole:
        from .inspect_whole import format_whole_table, whole_table

        rows = whole_table(load_net(prototxt, caffemodel), flavor)
        click.echo(json.dumps(rows, indent=2) if as_json else format_whole_table(rows))
        return
    report = inspect_net(load_net(prototxt, caffemodel), flavor)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    from .report_text import format_inspect

    click.echo(format_inspect(report))



# --- verify (#3) -------------------------------------------------------------------------------
@main.command()
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
@_FLAVOR
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
    from .usage import manifest_usage_problem

    _usage(manifest_usage_problem(manifest, no_manifest))
    prototxt, caffemodel, converted = (None, *files) if len(files) == 2 else files
    import numpy as np

    from .verify import DEFAULT_ATOL, DEFAULT_RTOL, format_report, verify_file

    try:
        user_input = np.load(input_path, allow_pickle=False) if input_path else None
    except (OSError, ValueError) as exc:
        _read_error(f"{input_path}: not a readable .npy array: {exc}", as_json)
    try:
        report = verify_file(prototxt, caffemodel, converted, user_input=user_input,
                             manifest=False if no_manifest else (manifest or True),
                             atol=DEFAULT_ATOL if atol is None else atol,
                             rtol=DEFAULT_RTOL if rtol is None else rtol,
                             reference=reference, seed=seed, flavour=flavor)
    except BnConvertError as exc:
        _read_error(str(exc), as_json)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else format_report(report))
    sys.exit(0 if report.passed else 1)


def _verify_target(files: tuple[Path, ...], spec: str, kwargs_text: str | None,
                   map_file: Path | None, flavor: str | None, seed: int) -> None:
    """``verify --target``: exit 0 the user's model with these weights computes Caffe's
    numbers, 1 a module differs (named), 2 nothing could be checked."""
    from .target.mapfile import read_map
    from .target.run import load_target, verify_target

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
    _usage("--expected needs --whole" if not click.get_current_context().params["whole"]
           else None)
    _usage("--whole needs --expected BLOBS.npz (a pycaffe dump) or --reference opencv|pycaffe"
           if expected is None and reference == "numpy" else None)
    _usage(f"--expected and --reference {reference} are exclusive: compare with a pycaffe dump "
           "or with a reference run" if expected is not None and reference != "numpy" else None)
    _usage("--input applies to --reference, not --expected (the dump holds the inputs)"
           if expected is not None and given[0] is not None else None)
    prototxt, caffemodel, converted = (None, *files) if len(files) == 2 else files
    from .build.verify_whole import DEFAULT_WHOLE_RTOL, verify_whole
    from .build.verify_whole_reference import verify_whole_reference

    tolerance = DEFAULT_WHOLE_RTOL if rtol is None else rtol
    try:
        if expected is not None:
            report = verify_whole(prototxt, caffemodel, converted, expected, tolerance)
        else:
            report = verify_whole_reference(prototxt, caffemodel, converted, reference,
                                            _whole_input(given[0]), given[1], tolerance)
    except BnConvertError as exc:
        _read_error(str(exc), as_json)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text())
    sys.exit({"match": 0, "mismatch": 1}.get(report.verdict, 2))


def _whole_input(path: Path | None) -> Any:
    """``--input`` as an array for the whole-net reference (None when not given)."""
    if path is None:
        return None
    import numpy as np

    from .errors import ParseError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ParseError(f"{path}: not a readable .npy array: {exc}") from None


def _read_error(message: str, as_json: bool) -> None:
    """verify's exit 2: one line on stderr, and with --json an error object on stdout (so
    that `verify --json > report.json` never leaves an empty file)."""
    line = " ".join(message.split())
    click.echo(f"bnconvert: error: {line}", err=True)
    if as_json:
        click.echo(json.dumps({"verdict": "error", "error": line, "exit_code": 2}, indent=2))
    sys.exit(2)
# --- end verify --------------------------------------------------------------------------------

if __name__ == "__main__":  # pragma: no cover
    main()
