"""Explicit registries (scenic-style): ``REG.register(name)(obj)``, ``REG.get(name)`` with a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from nasjax.errors import NasjaxInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from string keys to factories or objects.

    ``get`` raises :class:`NasjaxInputError` listing the known names when a key is unknown, so that a
    typo on the command line (``--device=tx2gpuu``) says what would have been accepted.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise NasjaxInputError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def items(self):
        return sorted(self._items.items())
