"""Modules imported on first use, so that a cold start pays only for what its first request runs.

A route module names the use-case modules its handlers call without importing them::

    if TYPE_CHECKING:
        from chalicelib.cards import views
    else:
        views = lazy.module("chalicelib.cards.views")

and declares models through them lazily (``response=lambda: views.CardView``). Type checkers see the
real module; at run time the first attribute looked up imports it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _OnFirstUse(ModuleType):
    """Stands for the module of its name; every attribute is looked up in the imported module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def module(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first used."""
    return _OnFirstUse(name)
