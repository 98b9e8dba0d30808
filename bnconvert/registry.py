"""A registry of named functions: handlers are registered by exact key with a decorator, and a
second registration of a key is an error (so two modules can never silently fight over one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Registry"]

T = TypeVar("T", bound=Callable[..., object])


class Registry(Generic[T]):
    """Functions by key.

    Example:
        >>> folders: Registry[Callable[[], str]] = Registry("fold function")
        >>> @folders.register("bvlc")
        ... def fold_bvlc() -> str:
        ...     return "folded"
        >>> folders["bvlc"]()
        'folded'
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, *keys: str) -> Callable[[T], T]:
        """Decorator: register the function under every key given."""

        def decorate(fn: T) -> T:
            for key in keys:
                if key in self._items:
                    raise RuntimeError(f"{self.what} for {key!r} registered twice")
                self._items[key] = fn
            return fn

        return decorate

    @overload
    def get(self, key: str) -> T | None: ...

    @overload
    def get(self, key: str, default: T) -> T: ...

    def get(self, key: str, default: T | None = None) -> T | None:
        """The function registered under ``key``, else ``default``."""
        return self._items.get(key, default)

    def __getitem__(self, key: str) -> T:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
