"""Named registries for problems, spaces, op sets, methods and hyperparameter sets.

A study YAML file names things; the registry turns a name into an object and, for an
unknown name, answers with the list of known names (and the closest match) instead of a
``KeyError`` traceback. This module imports nothing from the rest of the package so that
every layer can use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class Registry(Generic[T]):
    """A case-insensitive mapping from names to objects of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._display: dict[str, str] = {}

    @staticmethod
    def _key(name: str) -> str:
        return name.strip().lower().replace("_", "-")

    def register(self, name: str, item: T | None = None) -> T | Callable[[T], T]:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""

        def add(obj: T) -> T:
            key = self._key(name)
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[key] = obj
            self._display[key] = name
            return obj

        return add if item is None else add(item)

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise UnknownNameError(
                f"{self.kind} must be a name (string), got {type(name).__name__} {name!r}; "
                f"known: {', '.join(self.names())}"
            )
        key = self._key(name)
        if key not in self._items:
            close = difflib.get_close_matches(key, list(self._items), n=1)
            hint = f" Did you mean {self._display[close[0]]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}"
            )
        return self._items[key]

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (validates it)."""
        self.get(name)
        return self._display[self._key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def names(self) -> list[str]:
        return list(self._display.values())

    def items(self) -> Iterator[tuple[str, T]]:
        for key, obj in self._items.items():
            yield self._display[key], obj

    def __len__(self) -> int:
        return len(self._items)
