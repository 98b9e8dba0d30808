"""What the commands share: one-line errors, the file arguments, usage errors, --flavor."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import BnConvertError

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BnConvertError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"bnconvert: error: {message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def split_files(files: tuple[Path, ...], need_model: bool) -> tuple[Path | None, Path | None]:
    """``[PROTOTXT] CAFFEMODEL`` (or, for inspect, either alone, told apart by content)."""
    if len(files) == 2:
        return files[0], files[1]
    if len(files) == 1:
        from ..read.caffemodel import caffemodel_path_kind

        if not need_model and files[0].is_file() and caffemodel_path_kind(files[0]) == "prototxt":
            return files[0], None
        return None, files[0]
    raise click.UsageError("expected [PROTOTXT] CAFFEMODEL (one or two files)")


def usage(problem: str | None) -> None:
    """A usage error (exit 2) when ``problem`` is set."""
    if problem:
        raise click.UsageError(problem)


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
            from ..flavours import selectable_ids

            self._loaded = selectable_ids()
        return self._loaded

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """``click.Choice.__init__`` stores the placeholder; the registry's ids replace it."""


FLAVOR = click.option(
    "--flavor", type=_FlavourChoice(),
    help="Which Caffe's BN layers these are, when the files are ambiguous (default: detected "
         "from layer type, parameters and blobs).")
FILES = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))


def read_error(message: str, as_json: bool) -> None:
    """verify's exit 2: one line on stderr, and with --json an error object on stdout (so
    that `verify --json > report.json` never leaves an empty file)."""
    line = " ".join(message.split())
    click.echo(f"bnconvert: error: {line}", err=True)
    if as_json:
        click.echo(json.dumps({"verdict": "error", "error": line, "exit_code": 2}, indent=2))
    sys.exit(2)
