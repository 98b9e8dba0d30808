"""Names the docstring examples use: the bundled example net (run by ``pytest``'s doctests).

``EXAMPLE_PROTOTXT`` / ``EXAMPLE_CAFFEMODEL``: its two files; ``load_net``. In doctests only
(loading costs the other tests nothing): ``EXAMPLE_NET`` (``load_net`` of both),
``EXAMPLE_RECORDS`` (its folded BatchNorm chains) and ``EXAMPLE_CHAIN`` (verify's reference
reading of its first chain, found by verify's own walk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _pytest.doctest import DoctestItem

EXAMPLE = Path(__file__).parent / "examples" / "resnet_block"


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    from bnconvert.read.net import load_net

    prototxt, caffemodel = str(EXAMPLE / "deploy.prototxt"), str(EXAMPLE / "model.caffemodel")
    doctest_namespace["EXAMPLE_PROTOTXT"] = prototxt
    doctest_namespace["EXAMPLE_CAFFEMODEL"] = caffemodel
    doctest_namespace["load_net"] = load_net
    if isinstance(request.node, DoctestItem):
        doctest_namespace.update(_example_objects(prototxt, caffemodel))


def _example_objects(prototxt: str, caffemodel: str) -> dict[str, Any]:
    """A fresh net, its records and its first reference chain for one doctest."""
    from bnconvert.api import fold_net, load_net
    from bnconvert.verify.reference import read_reference_chain
    from bnconvert.verify.walk import walk_chains

    net = load_net(prototxt, caffemodel)
    return {"EXAMPLE_NET": net, "EXAMPLE_RECORDS": fold_net(net),
            "EXAMPLE_CHAIN": read_reference_chain(net, walk_chains(net)[0])}
