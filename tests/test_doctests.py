"""Every docstring example runs: none is made of ``+SKIP`` lines only (``pytest`` runs the
package's doctests on the bundled example, see the repository's ``conftest.py``).

Read from the source with ``ast``, so the check imports nothing of the package.
"""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bnconvert"
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def all_skipped_examples(source: str) -> list[str]:
    """``line name`` of each docstring in ``source`` whose examples are all ``+SKIP``."""
    found = []
    parser = doctest.DocTestParser()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, _DOCUMENTED):
            continue
        examples = parser.get_examples(ast.get_docstring(node, clean=False) or "")
        if examples and all(e.options.get(doctest.SKIP) for e in examples):
            found.append(f"{getattr(node, 'lineno', 1)} {getattr(node, 'name', '<module>')}")
    return found


def test_no_docstring_example_is_all_skip() -> None:
    files = sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts)
    assert len(files) > 50
    found = [f"{path.relative_to(PACKAGE.parent)}:{hit}" for path in files
             for hit in all_skipped_examples(path.read_text(encoding="utf-8"))]
    assert found == []


def test_the_check_tells_all_skip_from_partly_skipped() -> None:
    source = ('def f():\n    """Doc.\n\n    >>> f()  # doctest: +SKIP\n    """\n\n\n'
              'def g():\n    """Doc.\n\n    >>> 1  # doctest: +SKIP\n    1\n    >>> 2\n    2\n'
              '    """\n')
    assert all_skipped_examples(source) == ["1 f"]
