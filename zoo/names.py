"""One name table for every kind of thing zoo registers: models, datasets, namespaces, layouts, exporters.

Adding a name that is taken raises, naming both owners (torchvision's registry does the same;
timm's only warns and lets the second overwrite the first). Looking up an unknown name raises
with the close matches. Listing takes an fnmatch pattern. Order is kept: it is the order layouts
are tried in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from zoo.errors import DuplicateNameError, UnknownNameError, did_you_mean

T = TypeVar("T")


class NameTable(Generic[T]):
    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind  # "model", "dataset", ...: used in messages
        self.hint = hint  # what to do about an unknown name, e.g. "`zoo list` shows them"
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, name: str, item: T, owner: str) -> None:
        if name in self._items:
            raise DuplicateNameError(
                f"{self.kind} {name!r} from {owner} is already registered by {self._owners[name]}; "
                "rename one of them"
            )
        self._items[name] = item
        self._owners[name] = owner

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        hint = f"; {self.hint}" if self.hint else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}{hint}")

    def replace(self, name: str, item: T) -> None:
        """Swap an existing entry for another (tests and interactive sessions); its owner stays."""
        self.get(name)
        self._items[name] = item

    def owner(self, name: str) -> str:
        return self._owners[name]

    def list(self, pattern: str | None = None) -> list[str]:
        """Names in registration order, those matching ``pattern`` (fnmatch, case-insensitive) if given."""
        return [n for n in self._items if pattern is None or matches(n, pattern)]

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def update(self, other: NameTable[T]) -> None:
        """Take every entry of ``other`` that this table lacks (entries it has raise as in add)."""
        for name, item in other.items():
            if name not in self._items or self._items[name] is not item:
                self.add(name, item, other.owner(name))

    def copy(self) -> NameTable[T]:
        table: NameTable[T] = NameTable(self.kind, self.hint)
        table._items, table._owners = dict(self._items), dict(self._owners)
        return table

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))


def matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())
