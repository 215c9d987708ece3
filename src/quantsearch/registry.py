"""A small name -> object registry with aliases and errors that list what is registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from quantsearch.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps stable snake/kebab-case names (and aliases) to plug-ins.

    Example:
        >>> reg: Registry[int] = Registry("widget")
        >>> reg.add("one", 1, aliases=("uno",))
        >>> reg.get("uno")
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, item: T, *, aliases: tuple[str, ...] = ()) -> None:
        for key in (name, *aliases):
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(item: T) -> T:
            self.add(name, item, aliases=aliases)
            return item

        return deco

    def canonical(self, name: str, *, key: str | None = None) -> str:
        """The registered name for ``name`` or an alias; a miss lists the valid names."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        where = key or self.kind
        raise ConfigError(f"{where}: got {name!r}, allowed: one of {self.names()}")

    def get(self, name: str, *, key: str | None = None) -> T:
        return self._items[self.canonical(name, key=key)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
