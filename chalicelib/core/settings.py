"""The settings in force, read on first use (:mod:`chalicelib.core.config` holds the model).

A cold start imports this module only: pydantic-settings is loaded when ``get_settings()`` is first
called, or when ``Settings`` or ``LocalCredentials`` is first looked up here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.core.config import LocalCredentials as LocalCredentials
    from chalicelib.core.config import Settings as Settings
    from chalicelib.core.config import Stage as Stage

_MODEL_NAMES = frozenset({"LocalCredentials", "Settings", "Stage"})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    from chalicelib.core.config import Settings

    return Settings()


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        from chalicelib.core import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
