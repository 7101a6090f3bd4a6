"""The local servers under load (``make run``, ``make load``).

The local API server (``chalice local``) queues the connections that arrive while it is busy instead of
dropping them: chalice's stock server listens with ``socketserver``'s backlog of 5, so the sixth
connection waiting to be accepted has its handshake dropped (the client waits for a resend or gives
up), which a load of 30 owners at a time turned into a reset connection. The moto server finds a
request's service without reading its package folder each time. A stack started beside a developer's own
(the browser tests, ``make load``) runs on free loopback ports, with none of the caller's settings."""

from __future__ import annotations

import contextlib
import os
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from chalice.local import ThreadedHTTPServer

from chalicelib.core.config import Settings
from chalicelib.local.gateway import ListeningServer
from chalicelib.local.serving import ONE_LOOPBACK_CLIENT, STACK_SERVERS, free_ports, local_stack_env


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


def test_free_ports_are_distinct_and_each_can_be_bound_on_loopback_right_after() -> None:
    ports = free_ports(24)
    assert len(set(ports)) == 24
    assert all(1024 <= port <= 65535 for port in ports)
    bound: list[socket.socket] = []
    try:
        for port in ports:  # all held at once: none of them is still held by free_ports
            sock = socket.socket()
            bound.append(sock)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        for sock in bound:
            sock.close()


def test_free_ports_of_none_is_an_empty_list() -> None:
    assert free_ports(0) == []


def test_a_local_stack_env_leaves_out_the_callers_settings_and_credentials_and_names_its_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHEKA_STAGE", "prod")
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "600")
    monkeypatch.setenv("AWS_PROFILE", "production-admin")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-real-session")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://dynamodb.cn-north-1.amazonaws.com.cn")
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    ports = dict(zip(STACK_SERVERS, (15001, 15002, 15003, 15004, 15005), strict=True))

    env = local_stack_env(
        ports, tmp_path / "stack.json", {**ONE_LOOPBACK_CLIENT, "CHEKA_SMS_RESEND_SECONDS": "0"}
    )

    assert env["LANG"] == "zh_CN.UTF-8"  # the rest of the caller's environment passes
    assert not {"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "POWERTOOLS_DEV"} & env.keys()
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # what the stack's processes read
    assert settings.stage == "local"
    assert (settings.moto_port, settings.api_port, settings.sandbox_port) == (15001, 15002, 15003)
    assert (settings.authority_port, settings.oidc_port) == (15004, 15005)
    assert settings.aws_endpoint_url == "http://127.0.0.1:15001"
    assert settings.local_state_file == str(tmp_path / "stack.json")
    assert settings.sms_resend_seconds == 0
    assert settings.sms_sends_per_ip_hour == 100_000
    assert settings.captcha_after_sends == 100_000
