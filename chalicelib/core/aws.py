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
def client(
    service: str, read_timeout: float | None = None, retries: int | None = None, budgeted: bool = True
) -> Any:
    """A boto3 client for ``service`` pointed at the configured endpoint (moto locally), bounded as
    ``chalicelib.core.outbound`` says: ``outbound_connect_timeout_seconds`` to connect,
    ``read_timeout`` (default ``outbound_read_timeout_seconds``) for each reply, and ``retries`` tries
    after the first (default ``outbound_max_attempts`` - 1; 0: none); each attempt checked against the
    request's deadline (not ``budgeted``: against the function's end only, ``outbound.check_attempt``).
    """
    from botocore.config import Config

    from chalicelib.core.outbound import register_hooks
    from chalicelib.core.settings import LocalCredentials

    settings = get_settings()
    read = settings.outbound_read_timeout_seconds if read_timeout is None else read_timeout
    tries_after_first = settings.outbound_max_attempts - 1 if retries is None else retries
    options: dict[str, Any] = {
        "retries": {"total_max_attempts": 1 + tries_after_first, "mode": "standard"},
        "max_pool_connections": 32,
        "connect_timeout": settings.outbound_connect_timeout_seconds,
        "read_timeout": read,
    }
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
        made = _boto_session().client(service, **kwargs)
    register_hooks(made.meta.events, settings.outbound_connect_timeout_seconds + read, budgeted=budgeted)
    return made


def reset() -> None:
    """Forget cached clients and settings (tests switch endpoints between modules)."""
    client.cache_clear()
    get_settings.cache_clear()
