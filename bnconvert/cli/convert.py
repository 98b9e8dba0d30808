"""``bnconvert convert``: BN chains, whole models (--whole), runnable models (--module)
and the user's own model (--target)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..write.registry import EXTENSIONS, supported_formats
from .common import FILES, FLAVOR, one_line_errors, split_files, usage

if TYPE_CHECKING:
    from ..build.network import BuildOptions


@click.command()
@FILES
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
@FLAVOR
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
@one_line_errors
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
        from ..build.network import BuildOptions

        build = BuildOptions(until=until, flavour=flavor, class_name=class_name,
                             fold=bn_fold or "keep", bn_train=bn_train)
        _convert_module(files, output, module_path, build, quiet)
        return
    usage("--class-name, --until and --bn-train need --module"
           if class_name or until or bn_train else None)
    import gc

    from ..api import ConvertOptions
    from ..api import convert as run_convert
    from ..fold.options import FoldOptions
    from ..records import FoldedBatchNorm
    from ..usage import convert_usage_problem, momentum_usage_problem
    from ..write.registry import WriteOptions, writer_for

    usage(convert_usage_problem(output, fmt, manifest, no_manifest, _t7_only_options(cudnn)))
    usage(momentum_usage_problem(momentum))
    usage(None if whole or (bn_fold is None and not skip_unknown) else
           "--fold and --skip-unknown apply to --whole or --module only")
    prototxt, caffemodel = split_files(files, need_model=True)
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
    from ..target.mapfile import read_map
    from ..target.records import table_lines
    from ..target.run import convert_to_target, load_target

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
    prototxt, caffemodel = split_files(files, need_model=True)
    assert caffemodel is not None
    from ..build.files import write_model_files

    built = write_model_files(prototxt, caffemodel, output, module_path, options)
    for note in built.notes:
        click.echo(f"bnconvert: note: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {output} and {module_path}: class {type(built.module).__name__}, "
                   f"{len(built.made)} layers, forward({', '.join(built.inputs)}) -> "
                   f"{', '.join(built.outputs)}")


def _t7_only_options(cudnn: bool) -> list[str]:
    """The Torch7-only options given explicitly on the command line."""
    source = click.get_current_context().get_parameter_source("t7_layout")
    given = ["--t7-layout"] if source is click.core.ParameterSource.COMMANDLINE else []
    return given + (["--cudnn"] if cudnn else [])
