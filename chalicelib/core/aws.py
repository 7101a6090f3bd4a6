"""Lazy, cached boto3 clients: nothing is created at import time (a cold start pays only for what it uses)."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from chalicelib.core.settings import get_settings

_lock = threading.Lock()
#: One boto3 session for every client: its loader keeps the service models and endpoint data it has
#: read, so a second client (another service, or the same one after ``reset``) does not parse them again.
_session: Any = None


def _boto_session() -> Any:
    global _session
    if _session is None:
        import boto3

        _session = boto3.session.Session()
    return _session


@cache
def client(service: str, read_timeout: float | None = None, retries: int = 4) -> Any:
    """A boto3 client for ``service`` pointed at the configured endpoint (moto locally).

    ``read_timeout``: seconds to wait for a reply (botocore's default 60 when None); ``retries``: tries
    after the first (0: none).
    """
    from botocore.config import Config

    from chalicelib.core.settings import LocalCredentials

    settings = get_settings()
    options: dict[str, Any] = {
        "retries": {"max_attempts": retries, "mode": "standard"},
        "max_pool_connections": 32,
    }
    if read_timeout is not None:
        options["read_timeout"] = read_timeout
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": Config(**options)}
    endpoint = settings.endpoint_url
    if endpoint:
        creds = LocalCredentials()
        kwargs.update(
            endpoint_url=endpoint,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
        )
    with _lock:  # boto3's default session is not thread-safe while creating clients
        return _boto_session().client(service, **kwargs)


def reset() -> None:
    """Forget cached clients and settings (tests switch endpoints between modules)."""
    client.cache_clear()
    get_settings.cache_clear()
