"""``verify --whole --reference opencv|pycaffe``: the converted whole-model state_dict checked
blob by blob against a framework that runs the same prototxt + caffemodel on the same inputs
(the comparison is ``verify_whole.compare_blobs``, as for ``--expected``).

Inputs: ``--input INPUT.npy`` for the net's first input when given, every other input seeded
standard-normal noise of its declared shape (``--seed``; ``reference_inputs``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..read.net import Net, load_net
from .reference_whole import ReferenceBlobs, reference_inputs
from .verify_whole import DEFAULT_WHOLE_RTOL, WholeReport, compare_blobs, fitting_build

__all__ = ["verify_whole_reference", "WHOLE_REFERENCES"]

PathLike = str | os.PathLike[str]
Runner = Callable[[Net, "PathLike | None", PathLike, dict[str, np.ndarray]], ReferenceBlobs]


def _opencv(net: Net, prototxt: PathLike | None, caffemodel: PathLike,
            inputs: dict[str, np.ndarray]) -> ReferenceBlobs:
    from .reference_opencv import opencv_reference

    return opencv_reference(net, prototxt, caffemodel, inputs)


def _pycaffe(net: Net, prototxt: PathLike | None, caffemodel: PathLike,
             inputs: dict[str, np.ndarray]) -> ReferenceBlobs:
    from .reference_pycaffe import pycaffe_reference

    return pycaffe_reference(net, prototxt, caffemodel, inputs)


#: reference name -> its runner
WHOLE_REFERENCES: dict[str, Runner] = {"opencv": _opencv, "pycaffe": _pycaffe}


def verify_whole_reference(prototxt: PathLike | None, caffemodel: PathLike,
                           converted: PathLike, reference: str,
                           first_input: np.ndarray | None = None, seed: int = 0,
                           rtol: float = DEFAULT_WHOLE_RTOL) -> WholeReport:
    """Check a whole-model state_dict end to end against ``reference`` run on the same net.

    Args:
        prototxt, caffemodel: the Caffe net (the module is built from them, and the
            reference runs them).
        converted: the ``.pt`` state_dict (``convert --module``), loaded strictly.
        reference: ``opencv`` or ``pycaffe``.
        first_input: the net's first input (else seeded noise of its declared shape).
        seed: seed of the noise inputs.

    Returns:
        The report; blobs the reference cannot compute as Caffe are listed as not checked.

    Raises:
        ValueError: an unknown ``reference``.
        BnConvertError: a file cannot be read, the state_dict does not fit the net, the
            reference is not importable or cannot load or run the net (all exit 2).
    """
    if reference not in WHOLE_REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of "
                         f"{', '.join(WHOLE_REFERENCES)}")
    net = load_net(prototxt, caffemodel)
    built = fitting_build(net, converted)
    inputs = reference_inputs(net, first_input, seed)
    ref = WHOLE_REFERENCES[reference](net, prototxt, caffemodel, inputs)
    expected = {**ref.values, **inputs}
    not_checked = {blob: f"not checked by {reference}: " + ref.not_checked.get(
                       blob, "it computed no value for this blob")
                   for blob in built.writers if blob not in ref.values}
    return compare_blobs(built, expected, rtol, not_checked, reference)
