"""``verify --whole --reference pycaffe``: the whole net run by Caffe itself
(``caffe.Net(prototxt, caffemodel, caffe.TEST)``), every blob read from ``net.blobs`` after
``net.forward()`` (an in-place blob holds its last writer's value, as the module's probe).
Caffe computes every layer as Caffe: nothing is reported as not checked, except blobs pycaffe
does not hold.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..read.net import Net
from ..verify.external import ReferenceUnavailableError
from .reference_whole import ReferenceBlobs, last_writers, net_definition

__all__ = ["pycaffe_reference", "import_caffe"]

PathLike = str | os.PathLike[str]


def import_caffe() -> Any:
    """The ``caffe`` module.

    Raises:
        ReferenceUnavailableError: ``import caffe`` fails (pycaffe is not importable).
    """
    try:
        import caffe  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ReferenceUnavailableError(
            f"--reference pycaffe: pycaffe is not importable ('import caffe' failed: {exc}); "
            "build BVLC Caffe with its Python interface and put it on PYTHONPATH") from None
    return caffe


def pycaffe_reference(net: Net, prototxt: PathLike | None, caffemodel: PathLike,
                      inputs: dict[str, np.ndarray]) -> ReferenceBlobs:
    """Every blob of ``net`` after Caffe's own TEST forward on ``inputs``.

    Raises:
        ReferenceUnavailableError: pycaffe is not importable.
    """
    caffe = import_caffe()
    with tempfile.TemporaryDirectory(prefix="bnconvert-pycaffe-") as folder:
        definition = prototxt
        if definition is None or any(x.type == "DummyData" for x in net.layers):
            definition = Path(folder, "net.prototxt")  # the placeholder becomes an Input
            definition.write_text(net_definition(prototxt, caffemodel))
        model = caffe.Net(str(definition), str(caffemodel), caffe.TEST)
    for name, value in inputs.items():
        model.blobs[name].reshape(*value.shape)
        model.blobs[name].data[...] = value
    model.forward()
    values, missing = {}, {}
    for blob in last_writers(net):
        if blob in model.blobs:
            values[blob] = np.array(model.blobs[blob].data)
        else:
            missing[blob] = "pycaffe's net.blobs has no such blob"
    return ReferenceBlobs("pycaffe", values, missing, inputs)
