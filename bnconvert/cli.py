"""The ``bnconvert`` command line. The only module that imports click.

Exit codes: 0 success, 1 conversion error (a one-line message on stderr), 2 usage error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import BnConvertError

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BnConvertError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"bnconvert: error: {message}", err=True)
            sys.exit(1)

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


_FILES = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnconvert")
def main() -> None:
    """Convert Caffe BatchNorm (+Scale/+Bias) layers into PyTorch and Torch7 weights that
    compute exactly what Caffe computed."""


@main.command()
@_FILES
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file: .pt, .pth, .safetensors or .t7.")
@click.option("--format", "fmt", type=click.Choice(["pt", "safetensors", "t7"]),
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
@click.option("--no-manifest", is_flag=True, help="Do not write a manifest.")
@click.option("--t7-layout", type=click.Choice(["table", "sequential"]), default="table",
              show_default=True, help="Torch7: a table keyed by BN name, or an nn.Sequential.")
@click.option("--cudnn", is_flag=True,
              help="Torch7: cudnn.BatchNormalization accepts affine modules only; write "
                   "BatchNorms without a Scale as weight 1 / bias 0 (implies --affine).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_one_line_errors
def convert(files: tuple[Path, ...], output: Path, fmt: str | None, affine: bool, strict: bool,
            prefix: str, dtype: str, manifest: Path | None, no_manifest: bool, t7_layout: str,
            cudnn: bool, quiet: bool) -> None:
    """Convert [PROTOTXT] CAFFEMODEL into OUTPUT (the prototxt is optional: a caffemodel
    carries its layer definitions)."""
    from .api import convert as run
    from .write.registry import WriteOptions

    prototxt, caffemodel = _split_files(files, need_model=True)
    assert caffemodel is not None
    options = WriteOptions(dtype=dtype, prefix=prefix, t7_layout=t7_layout)
    records = run(prototxt, caffemodel, output, fmt=fmt, affine=affine or cudnn, strict=strict,
                  options=options, manifest=False if no_manifest else (manifest or True))
    for record in records:
        for warning in record.warnings:
            click.echo(f"bnconvert: warning: {warning}", err=True)
    if not quiet:
        affine_count = sum(r.affine for r in records)
        click.echo(f"wrote {output}: {len(records)} BatchNorm layers "
                   f"({affine_count} affine, {len(records) - affine_count} non-affine)")


@main.command()
@_FILES
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_one_line_errors
def inspect(files: tuple[Path, ...], as_json: bool) -> None:
    """Show the BatchNorm chains of [PROTOTXT] [CAFFEMODEL] (either or both)."""
    from .inspect import inspect_net
    from .read.net import load_net

    prototxt, caffemodel = _split_files(files, need_model=False)
    report = inspect_net(load_net(prototxt, caffemodel))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    from .report_text import format_inspect

    click.echo(format_inspect(report))


if __name__ == "__main__":  # pragma: no cover
    main()
