"""Registries by decorator, factories by name (timm's ``register_model`` / ``create_model``).

Every registry works the same way: ``REG.register("name")`` decorates a class (or a factory function) and sets its
``name`` attribute to the registered name; ``REG.create("name", *args, **settings)`` builds one, and settings the
constructor does not take are a one-line ``NasforgeError`` naming the settings it does take. The CLI and the
conformance tests enumerate ``REG.names()``, so a new entry is listed and tested for free.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import NasforgeError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> factory mapping. ``kind`` names the thing in error messages ("family", "strategy")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` and set ``obj.name = name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name")

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):  # a builtin or a frozen object: the registry still knows its name
                pass
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def options(self, name: str) -> list[str]:
        """The keyword settings the factory registered as ``name`` takes."""
        return [p.name for p in _params(self.get(name)) if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def create(self, name: str, *args: Any, **settings: Any) -> Any:
        """Build the registered ``name`` with ``args`` and ``settings``; settings it does not take are a user error."""
        factory = self.get(name)
        params = _params(factory)
        ok = ", ".join(self.options(name)) or "none"
        if params and not any(p.kind is p.VAR_KEYWORD for p in params):
            unknown = [k for k in settings if k not in {p.name for p in params}]
            if unknown:
                raise NasforgeError(f"{self.kind} {name!r} has no option {unknown[0]!r}; its options: {ok}")
        try:
            inspect.signature(factory).bind(*args, **settings)
        except TypeError as e:
            raise NasforgeError(f"{self.kind} {name!r}: {e}; its options: {ok}") from None
        except ValueError:  # no signature to check (a builtin): let the call speak
            pass
        return factory(*args, **settings)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def _params(obj: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return []
