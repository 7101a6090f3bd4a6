"""The local servers under load (``make run``, ``make load``).

The local API server (``chalice local``) queues the connections that arrive while it is busy instead of
dropping them: chalice's stock server listens with ``socketserver``'s backlog of 5, so the sixth
connection waiting to be accepted has its handshake dropped (the client waits for a resend or gives
up), which a load of 30 owners at a time turned into a reset connection. The moto server finds a
request's service without reading its package folder each time."""

from __future__ import annotations

import contextlib
import os
import socket
from http.server import BaseHTTPRequestHandler

import pytest
from chalice.local import ThreadedHTTPServer

from chalicelib.local.gateway import ListeningServer


def _connected(server: ThreadedHTTPServer, count: int, timeout: float) -> int:
    """How many of ``count`` connections complete while nobody accepts (the server thread is busy)."""
    done = []
    try:
        for _ in range(count):
            with contextlib.suppress(OSError):
                done.append(socket.create_connection(server.server_address, timeout=timeout))
        return len(done)
    finally:
        for sock in done:
            sock.close()


def test_sixty_connections_arriving_at_once_are_all_queued_by_the_local_api_server() -> None:
    server = ListeningServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        assert _connected(server, 60, timeout=2.0) == 60
    finally:
        server.server_close()


def test_chalices_stock_local_server_drops_connections_beyond_its_backlog_of_five() -> None:
    # What the local server replaced (the figure it is measured against).
    server = ThreadedHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        assert _connected(server, 9, timeout=0.1) < 9
    finally:
        server.server_close()


def test_the_moto_server_lists_its_modules_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends

    from chalicelib.local.moto_patches import apply_server

    apply_server()
    listed = list(backends.list_of_moto_modules())

    def no_reading(_path: str) -> list[str]:
        raise AssertionError("the package folder was read again")

    monkeypatch.setattr(os, "listdir", no_reading)
    assert list(backends.list_of_moto_modules()) == listed
    assert {"dynamodb", "s3", "kms", "sqs", "sns"} <= set(listed)
    apply_server()  # idempotent
    assert list(backends.list_of_moto_modules()) == listed
