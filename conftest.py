"""Names the docstring examples use: the bundled example net (run by ``pytest``'s doctests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).parent / "examples" / "resnet_block"


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict[str, Any]) -> None:
    doctest_namespace["EXAMPLE_PROTOTXT"] = str(EXAMPLE / "deploy.prototxt")
    doctest_namespace["EXAMPLE_CAFFEMODEL"] = str(EXAMPLE / "model.caffemodel")
    from bnconvert.read.net import load_net

    doctest_namespace["load_net"] = load_net
