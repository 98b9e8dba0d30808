"""Typed errors. Every failure a user can meet is a ``BnConvertError`` whose message names
the file, the layer (and its type) where known, what was expected, what was found, and what to do.

The CLI maps a ``BnConvertError`` to a one-line message on stderr and its ``exit_code``: 2 for
a file that cannot be read (``ParseError``) in every command, 1 for inputs that were read but
cannot be converted; usage errors (click) exit 2. The library never prints.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BnConvertError",
    "ParseError",
    "PrototxtSyntaxError",
    "CaffemodelFormatError",
    "T7FormatError",
    "MissingLayerError",
    "BlobError",
    "UnsupportedLayerError",
    "NumericError",
    "OutputError",
    "VerificationError",
    "RefusedByCaffeError",
]


class BnConvertError(Exception):
    """Base of every error bnconvert raises on purpose.

    Class attributes:
        exit_code: the CLI's exit code for it (1: read, but cannot be converted).
    """

    exit_code: ClassVar[int] = 1


class ParseError(BnConvertError):
    """A file (Caffe's, a converted file, a manifest) could not be read: exit code 2."""

    exit_code = 2


class PrototxtSyntaxError(ParseError):
    """A text prototxt is not valid protobuf text format (carries file, line and column)."""

    def __init__(self, path: str, line: int, column: int, problem: str) -> None:
        self.path, self.line, self.column, self.problem = path, line, column, problem
        super().__init__(f"{path}:{line}:{column}: {problem}")


class CaffemodelFormatError(ParseError):
    """A binary caffemodel is malformed (carries the byte offset of the fault)."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        self.path, self.offset, self.problem = path, offset, problem
        super().__init__(f"{path}: byte {offset}: {problem}")


class T7FormatError(ParseError):
    """A ``.t7`` file is malformed or truncated (carries the file and the byte offset)."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        self.path, self.offset, self.problem = path, offset, problem
        super().__init__(f"{path}: byte {offset}: {problem}")


class MissingLayerError(BnConvertError):
    """A layer a conversion needs is absent (e.g. no weights in the caffemodel)."""


class BlobError(BnConvertError):
    """A layer's blobs have the wrong count or shape (expected vs got)."""


class UnsupportedLayerError(BnConvertError):
    """Layers inside a BN chain that bnconvert cannot fold; all are collected and reported once."""


class NumericError(BnConvertError):
    """NaN/Inf, negative variance, eps <= 0 and other values no BN module can hold."""


class OutputError(BnConvertError):
    """The output could not be written (unknown format, missing optional dependency, I/O)."""


class VerificationError(BnConvertError):
    """A converted file does not reproduce Caffe's numbers."""


class RefusedByCaffeError(BnConvertError):
    """A layer definition Caffe itself refuses to build (an even LRN ``local_size``,
    ``pad >= kernel``, STOCHASTIC pooling in TEST, ...); the message gives Caffe's reason."""
