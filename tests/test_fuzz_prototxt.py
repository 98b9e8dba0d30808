"""Malformed prototxt ends in the project's ParseError (file, line, column), never in another
exception: truncations at every offset of a real deploy file, and random edits of it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnconvert.errors import ParseError
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import net_from_parts
from bnconvert.read.prototxt import parse_prototxt_text

from conftest import CAFFE, FORKS

TEXT = (CAFFE / "resnet_block" / "deploy.prototxt").read_text()
FORK = (FORKS / "pspnet" / "psp_conv_bn_relu" / "deploy.prototxt").read_text()


def parse_or_parse_error(text: str) -> None:
    try:
        parsed = parse_prototxt_text(text, "fuzz.prototxt")
    except ParseError as exc:
        assert str(exc).startswith("fuzz.prototxt")
        assert "\n" not in str(exc).strip()
        return
    pair_batch_norm_chains(net_from_parts(parsed, None, "fuzz.prototxt"))


@pytest.mark.parametrize("source", [TEXT, FORK], ids=["resnet_block", "pspnet"])
def test_every_truncation(source: str) -> None:
    for end in range(len(source)):
        parse_or_parse_error(source[:end])


EDIT = st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=8),
                 st.text(alphabet='{}<>[]:;,"\'#\\ \n.-+eE0123456789abcxyz_', max_size=6))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([TEXT, FORK]), st.lists(EDIT, min_size=1, max_size=4))
def test_random_edits(source: str, edits: list[tuple[int, int, str]]) -> None:
    text = source
    for position, cut, insert in edits:
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + cut:]
    parse_or_parse_error(text)
