"""The CLI's start-up: ``--help`` and ``--version`` do not import the net reader, protobuf or
the flavour registry (``--flavor``'s choices are read from it when a command needs them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("google.protobuf", "bnconvert.flavours", "bnconvert.read.net", "torch", "numpy")


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_reader(args: list[str]) -> None:
    code = ("import sys; from click.testing import CliRunner; from bnconvert.cli import main; "
            f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_a_command_help_still_lists_the_flavours() -> None:
    from click.testing import CliRunner

    from bnconvert.cli import main
    from bnconvert.flavours import selectable_ids

    result = CliRunner().invoke(main, ["inspect", "--help"])
    assert result.exit_code == 0
    assert f"[{'|'.join(selectable_ids())}]" in result.output
