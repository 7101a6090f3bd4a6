"""Modules imported and objects made on first use, so that a cold start pays only for what its first
request runs.

A route module names the use-case modules its handlers call without importing them::

    if TYPE_CHECKING:
        from chalicelib.cards import views
    else:
        views = lazy.module("chalicelib.cards.views")

and declares models through them lazily (``response=lambda: views.CardView``). Type checkers see the
real module; at run time the first attribute looked up imports it.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _OnFirstUse(ModuleType):
    """Stands for the module of its name; every attribute is looked up in the imported module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def module(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first used."""
    return _OnFirstUse(name)


class _MadeOnFirstUse:
    """Stands for the object ``make()`` returns, made when an attribute is first used or set."""

    def __init__(self, make: Callable[[], Any]) -> None:
        object.__setattr__(self, "_make", make)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._make(), name, value)


class _Once(Generic[T]):
    """``make()``, called once however many threads ask for it at the same time."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: list[T] = []
        # Reentrant: a ``make`` that (indirectly) asks for its own object must not hang its thread.
        self._lock = threading.RLock()
        functools.update_wrapper(self, make)

    def __call__(self) -> T:
        made = self._made
        if made:
            return made[0]
        with self._lock:
            if not self._made:
                self._made.append(self._make())
            return self._made[0]

    def cache_clear(self) -> None:
        """Forget the object: the next call makes a new one."""
        with self._lock:
            self._made.clear()


def once(make: Callable[[], T]) -> _Once[T]:
    """``make`` as a function that calls it once and then returns what it made, also when threads ask
    at the same time (``functools.lru_cache`` is no lock: two threads asking at once would both call
    ``make``, and get different objects). ``cache_clear()`` forgets the object."""
    return _Once(make)


def instance(make: Callable[[], T]) -> T:
    """The object ``make()`` returns (``make`` caches it), made when one of its attributes is first used."""
    return _MadeOnFirstUse(make)  # type: ignore[return-value]
