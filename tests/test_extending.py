"""docs/extending.md's worked examples (a layer type, a BN flavour, an output format) run as
written, each in a fresh interpreter (registries are global), from a copy of the repository's
example folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
TITLES = ["layer_type", "flavour", "output_format"]


def test_the_page_has_the_three_examples() -> None:
    assert len(BLOCKS) == len(TITLES)


@pytest.mark.parametrize("code", BLOCKS, ids=TITLES)
def test_worked_example_runs(code: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
