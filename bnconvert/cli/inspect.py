"""``bnconvert inspect``: the BatchNorm chains (or, --whole, every learned layer) of a net."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import FILES, FLAVOR, one_line_errors, split_files


@click.command()
@FILES
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--whole", is_flag=True,
              help="A table of every layer with learned blobs: type, blob shapes, and what it "
                   "becomes.")
@FLAVOR
@one_line_errors
def inspect(files: tuple[Path, ...], as_json: bool, whole: bool, flavor: str | None) -> None:
    """Show the BatchNorm chains of [PROTOTXT] [CAFFEMODEL] (either or both)."""
    from ..inspect import inspect_net
    from ..read.net import load_net

    prototxt, caffemodel = split_files(files, need_model=False)
    if whole:
        from ..inspect_whole import format_whole_table, whole_table

        rows = whole_table(load_net(prototxt, caffemodel), flavor)
        click.echo(json.dumps(rows, indent=2) if as_json else format_whole_table(rows))
        return
    report = inspect_net(load_net(prototxt, caffemodel), flavor)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    from ..report_text import format_inspect

    click.echo(format_inspect(report))
