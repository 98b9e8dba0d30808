"""Imports every module that registers a layer type's reading (see ``base.reads``)."""

from __future__ import annotations

from . import elementwise, forks, learned, normalization, structure

__all__ = ["elementwise", "forks", "learned", "normalization", "structure"]
