"""``bnconvert verify``: check that a converted file computes what Caffe computed.

The reference (``reference``) is an independent numpy implementation of Caffe's TEST-phase
BatchNorm/Scale/Bias forward from the raw caffemodel blobs; the candidate (``candidate``) is the
converted file read back from disk and run as ``torch.nn.BatchNorm*d`` (or with Torch7's
formula); ``compare`` measures the difference; ``report`` tells the verdict.

Example:
    >>> from bnconvert import convert
    >>> from bnconvert.verify import verify_file
    >>> out = getfixture("tmp_path") / "bn.pt"
    >>> _ = convert(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, out)
    >>> verify_file(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, out).passed
    True
"""

from __future__ import annotations

from .compare import DEFAULT_ATOL, DEFAULT_RTOL
from .external import REFERENCES, ReferenceUnavailableError
from .report import ChainResult, VerifyReport, format_report
from .run import verify_file

__all__ = ["verify_file", "VerifyReport", "ChainResult", "format_report", "DEFAULT_ATOL",
           "DEFAULT_RTOL", "REFERENCES", "ReferenceUnavailableError"]
