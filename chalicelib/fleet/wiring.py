"""How the fleet context's task handlers reach their services without importing the composition root.

The handlers of the review workflow's tasks (``chalicelib.fleet.handlers``) are plain functions of a
message; the services they run (built with their adapters) belong to the composition root
(``chalicelib.core.deps``), which the context may not import. The composition root registers a factory
per service name with :func:`provide` when it is imported (every entry point imports it), and a handler
asks for its service with :func:`service`. Tests either go through the composition root or build the
services themselves over fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_FACTORIES: dict[str, Callable[[], Any]] = {}


def provide(name: str, factory: Callable[[], Any]) -> None:
    """Register (or replace) the factory of the service ``name``."""
    _FACTORIES[name] = factory


def service(name: str) -> Any:
    """The service ``name`` as its registered factory builds it (factories cache as they see fit)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise LookupError(f"fleet service {name!r} is not provided: import chalicelib.core.deps first")
    return factory()
