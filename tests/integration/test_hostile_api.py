"""Hostile requests through the whole API (route wrapper, middleware, ``chalice local``'s server): every
refusal is the error model with its status, never a 500, and nothing is written."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ERROR_KEYS = {"code", "message_zh", "message_en"}


def refusal(resp: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(resp.body)
    assert resp.status_code != 500, doc
    assert resp.status_code >= 400
    assert set(doc) >= ERROR_KEYS, doc
    assert resp.headers["Content-Type"].startswith("application/json")
    return doc


def test_hostile_bodies_are_refused_in_the_error_model(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    headers = auth("owner", **{"Content-Type": "application/json"})
    hostile = {
        b"[" * 100_000: (400, "request.too_deep"),
        b'{"value": ' + b"9" * 5000 + b"}": (400, "request.number"),
        b'{"value": 1e999}': (400, "request.number"),
        b'{"value": "\xff"}': (400, "request.encoding"),
        b'["LSVAU2181N2183294"]': (400, "request.not_object"),
        b'"LSVAU2181N2183294"': (400, "request.not_object"),
        b'{"value": "\\ud800"}': (400, "request.json"),
    }
    for raw, (status, code) in hostile.items():
        resp = api.http.post("/v1/validate/vin", headers=headers, body=raw)
        assert (resp.status_code, refusal(resp)["code"]) == (status, code), raw[:40]
    too_big = api.http.post(
        "/v1/validate/vin", headers={**headers, "Content-Length": str(50 * 1024 * 1024)}, body=b"{}"
    )
    assert (too_big.status_code, refusal(too_big)["code"]) == (413, "request.too_large")


def test_hostile_parameters_and_headers_are_refused_before_the_handler_runs(
    api: Any, auth: Callable[..., dict[str, str]]
) -> None:
    admin = auth("admin")
    cases = [
        ("/v1/campaigns?limit=1&limit=2", admin, "request.parameter_repeated"),
        ("/v1/campaigns?cursor=" + "x" * 5000, admin, "request.parameter"),
        ("/v1/campaigns?cursor=a%00b", admin, "request.parameter"),
        ("/v1/cards/" + "8" * 3000, admin, "request.parameter"),
        ("/v1/me", {"Authorization": "Bearer " + "a" * 20_000}, "request.header_too_large"),
    ]
    for path, headers, code in cases:
        resp = api.http.get(path, headers=headers)
        assert (resp.status_code, refusal(resp)["code"]) == (400, code), path[:60]


def test_chalices_own_refusals_are_in_the_error_model(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    wrong_type = api.http.post(
        "/v1/validate/vin", headers=auth("owner", **{"Content-Type": "text/plain"}), body=b"x"
    )
    assert (wrong_type.status_code, refusal(wrong_type)["code"]) == (415, "media_type.unsupported")
    wrong_method = api.http.request("PATCH", "/v1/validate/vin", headers=auth("owner"), body=b"")
    assert (wrong_method.status_code, refusal(wrong_method)["code"]) == (405, "method.not_allowed")


@pytest.fixture
def local_server() -> Iterator[int]:
    """``chalice local``'s server as ``make run`` builds it (our request handler), for a one-route app."""
    from chalice.app import Chalice
    from chalice.config import Config
    from chalice.local import LocalDevServer

    from chalicelib.local.gateway import ErrorModelRequestHandler, ListeningServer

    app = Chalice(app_name="hostile-probe")

    @app.route("/echo", methods=["POST"])
    def echo() -> dict[str, int]:
        request = app.current_request
        assert request is not None
        return {"bytes": len(request.raw_body or b"")}

    server = LocalDevServer(
        app, Config.create(), "127.0.0.1", 0, handler_cls=ErrorModelRequestHandler, server_cls=ListeningServer
    )
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server.server_address[1]
    finally:
        server.server.shutdown()
        server.server.server_close()


def _raw_post(port: int, content_length: str, body: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_the_local_server_refuses_a_huge_or_bogus_content_length_without_reading_the_body(
    local_server: int,
) -> None:
    status, doc = _raw_post(local_server, str(10 * 1024**3), b"{}")  # claims 10 GB, sends 2 bytes
    assert (status, doc["code"]) == (413, "request.too_large")
    status, doc = _raw_post(local_server, "lots", b"{}")
    assert (status, doc["code"]) == (400, "request.content_length")
    status, doc = _raw_post(local_server, "2", b"{}")
    assert (status, doc) == (200, {"bytes": 2})
