"""Shared test paths. Every fixture lives under tests/data (a fresh clone has no ../shared)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CAFFE_CASES = sorted(p.name for p in (DATA / "caffe").iterdir() if p.is_dir())

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return DATA
