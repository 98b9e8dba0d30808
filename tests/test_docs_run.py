"""Every ``sh`` block of the README, ``docs/*.md`` and ``examples/README.md`` runs as written.

Each document's blocks run in order, with bash ``-e``, from the repository's root (or from the
folder a ``<!-- run in: DIR -->`` comment on the line before the block names), in a temporary
``git clone`` of this checkout with its uncommitted changes applied — what a new user has. A
block marked ``<!-- not run in tests: REASON -->`` (installing from the network, the test run
itself) is skipped. The current interpreter's environment stands in for the one the docs
install: its ``bin`` folder comes first on PATH and the clone's ``bnconvert`` is imported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
                             if "```sh" in p.read_text(encoding="utf-8")),
        "examples/README.md"]
_BLOCK = re.compile(r"(?:<!--(?P<marker>[^\n]*?)-->\n)?```sh\n(?P<body>.*?)```", re.S)
_SKIP = re.compile(r"\s*not run in tests:\s*(?P<reason>.+?)\s*$")
_RUN_IN = re.compile(r"\s*run in:\s*(?P<dir>\S+)\s*$")


def shell_blocks(markdown: str) -> list[tuple[str, str | None, str | None]]:
    """``(body, run_in, skip_reason)`` of every ```sh block, in order."""
    blocks = []
    for match in _BLOCK.finditer(markdown):
        marker = match.group("marker") or ""
        skip, run_in = _SKIP.match(marker), _RUN_IN.match(marker)
        blocks.append((match.group("body"), run_in.group("dir") if run_in else None,
                       skip.group("reason") if skip else None))
    return blocks


def test_the_marker_convention_is_read() -> None:
    text = ("<!-- not run in tests: needs network -->\n```sh\npip install x\n```\n"
            "<!-- run in: examples -->\n```sh\nls\n```\n```sh\ntrue\n```\n```python\nx\n```\n")
    assert shell_blocks(text) == [("pip install x\n", None, "needs network"),
                                  ("ls\n", "examples", None), ("true\n", None, None)]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh clone of this checkout, with the working tree's uncommitted changes applied."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    target = tmp_path / "bnconvert"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=target, input=diff,
                       check=True)
    return target


@pytest.mark.parametrize("doc", DOCS)
def test_every_shell_block_runs_as_written(clone: Path, doc: str) -> None:
    blocks = shell_blocks((clone / doc).read_text(encoding="utf-8"))
    assert blocks, f"{doc} has no sh block"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(clone)}
    ran = 0
    for number, (body, run_in, skip) in enumerate(blocks, 1):
        if skip is not None:
            continue
        result = subprocess.run(["bash", "-e", "-c", body], cwd=clone / (run_in or "."),
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (f"{doc}, sh block {number} exited "
                                        f"{result.returncode}:\n{body}\n{result.stderr}")
        ran += 1
    assert ran, f"{doc}: every sh block is marked as not run"
