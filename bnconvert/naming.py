"""The reversible rule that turns Caffe layer names into state_dict key prefixes.

1. A name that is a valid Python identifier and contains no ``__`` is kept as it is
   (``bn_conv1``, ``bn2a_branch1``, ``conv1_bn``).
2. Any other name is escaped: ASCII letters and digits stay, and every other character
   (``/``, ``.``, ``-``, ``_``, spaces, non-ASCII) becomes ``__`` + the lowercase hex of each of
   its UTF-8 bytes + ``__``. So ``conv1/bn`` -> ``conv1__2f__bn``, ``bn.1`` -> ``bn__2e__1``,
   ``res2a_branch1/bn`` -> ``res2a__5f__branch1__2f__bn``.

Escaped keys always contain ``__`` or start with a digit, kept names never do, so the rule is
reversible: ``layer_name_for_key(key_for_layer_name(n)) == n`` for every name ``n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .records import ConvertedLayer

__all__ = ["key_for_layer_name", "layer_name_for_key", "NamingPolicy", "CaffeNames"]

_KEPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_ESCAPE = re.compile(r"__([0-9a-f]+)__")


def _is_kept(name: str) -> bool:
    return bool(_KEPT.fullmatch(name)) and "__" not in name


def key_for_layer_name(name: str) -> str:
    """The state_dict key prefix of a Caffe layer name.

    Example:
        >>> key_for_layer_name("bn_conv1"), key_for_layer_name("conv1/bn")
        ('bn_conv1', 'conv1__2f__bn')
    """
    if _is_kept(name):
        return name
    out = []
    for char in name:
        if char.isascii() and _ALNUM.fullmatch(char):
            out.append(char)
        else:
            out.append("__" + char.encode("utf-8").hex() + "__")
    return "".join(out)


def layer_name_for_key(key: str) -> str:
    """Invert ``key_for_layer_name``.

    Example:
        >>> layer_name_for_key("conv1__2f__bn")
        'conv1/bn'
    """
    if _is_kept(key):
        return key
    return _ESCAPE.sub(lambda m: bytes.fromhex(m.group(1)).decode("utf-8"), key)


class NamingPolicy(Protocol):
    """How a converted layer's key is chosen when writing (Caffe names by default; a target
    model's names when mapping onto it)."""

    def key(self, record: ConvertedLayer) -> str:
        """The key prefix of the record's tensors (``<key>.weight`` ...)."""
        ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class CaffeNames:
    """The default policy: the Caffe layer name, escaped reversibly (``key_for_layer_name``).

    Example:
        >>> CaffeNames().key(EXAMPLE_RECORDS[0])
        'bn2a_branch1'
    """

    def key(self, record: ConvertedLayer) -> str:
        """``key_for_layer_name(record.name)``."""
        return key_for_layer_name(record.name)
