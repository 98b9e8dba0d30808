"""bnconvert: Caffe batch normalization to PyTorch and Torch7, exactly."""

from __future__ import annotations

__version__ = "0.1.0"
