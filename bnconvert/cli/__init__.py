"""The ``bnconvert`` command line. The only package that imports click; it parses options into
one options object and calls the API (``bnconvert.api``, ``bnconvert.verify``).

Exit codes: 0 success; 1 the inputs were read but cannot be converted (verify: a mismatch);
2 a usage error or a file that cannot be read (verify: nothing could be checked). Errors are one
line on stderr.
"""

from __future__ import annotations

import click

from .._version import __version__
from .convert import convert
from .inspect import inspect
from .verify import verify

__all__ = ["main"]


@click.group(name="bnconvert", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnconvert")
def main() -> None:
    """Convert Caffe models into PyTorch and Torch7 weights that compute exactly what Caffe
    computed: the BatchNorm (+Scale/+Bias) chains, every learned layer (--whole), a runnable
    model (--module), or your own model's weights (--target)."""


for _command in (convert, inspect, verify):
    main.add_command(_command)
