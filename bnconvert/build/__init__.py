"""Whole Caffe nets as PyTorch modules: one handler per Caffe type (``handlers*``) assembled into
a ``torch.fx.GraphModule`` (``network``), weights loaded (``weights``), and readable model
source (``source``). Imports torch."""

from __future__ import annotations

from .api import build_model, load_model
from .network import BuildOptions, BuiltNet, build_net

__all__ = ["BuildOptions", "BuiltNet", "build_model", "build_net", "load_model"]
