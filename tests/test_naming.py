"""The Caffe layer name <-> state_dict key rule is documented and reversible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnconvert.naming import key_for_layer_name, layer_name_for_key


@pytest.mark.parametrize("name,key", [
    ("bn_conv1", "bn_conv1"),
    ("bn2a_branch1", "bn2a_branch1"),
    ("conv1/bn", "conv1__2f__bn"),
    ("bn.1", "bn__2e__1"),
    ("stage1-bn", "stage1__2d__bn"),
    ("res2a_branch1/bn", "res2a__5f__branch1__2f__bn"),
    ("a__b", "a__5f____5f__b"),
])
def test_documented_examples(name: str, key: str) -> None:
    assert key_for_layer_name(name) == key
    assert layer_name_for_key(key) == name


@given(st.text(min_size=1, max_size=30))
def test_round_trip_for_any_name(name: str) -> None:
    assert layer_name_for_key(key_for_layer_name(name)) == name


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_distinct_names_get_distinct_keys(a: str, b: str) -> None:
    if a != b:
        assert key_for_layer_name(a) != key_for_layer_name(b)


@given(st.text(min_size=1, max_size=30))
def test_keys_never_contain_dots(name: str) -> None:
    assert "." not in key_for_layer_name(name)
