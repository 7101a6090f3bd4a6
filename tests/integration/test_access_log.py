"""The API's access line (``chalicelib.api.access_log``): one per request, with the route template and
the client's source IP truncated (IPv4 to /24, IPv6 to /48) — never the address itself, never the path
as sent."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.api.access_log import truncated_ip

VIN = "LSVAU218XN2183294"


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("message") == "request"]


@pytest.fixture
def source_ip(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Sets the ``identity.sourceIp`` the local gateway puts in every request's context (the loopback
    address otherwise), as API Gateway would for a client elsewhere."""
    from chalice.local import LambdaEventConverter

    def use(ip: str) -> None:
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", ip)

    return use


@pytest.mark.parametrize(
    ("source", "logged"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("203.0.113.0", "203.0.113.0"),
        (" 198.51.100.9 ", "198.51.100.0"),
        ("2001:db8:abcd:12:3456:789a:bcde:f012", "2001:db8:abcd::"),
        ("2001:0DB8:ABCD:FFFF::1", "2001:db8:abcd::"),
        ("::1", "::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("fe80::1%eth0", "fe80::"),
        ("203.0.113.777", "invalid"),
        ("13812345678", "invalid"),
        ("not-an-ip", "invalid"),
        ("", "unknown"),
        (None, "unknown"),
        (2130706433, "unknown"),
    ],
)
def test_an_ip_is_truncated_to_its_network_and_anything_else_is_not_repeated(
    source: object, logged: str
) -> None:
    assert truncated_ip(source) == logged


def test_a_requests_access_line_carries_the_truncated_ip_and_never_the_full_one(
    api: Any,
    auth: Callable[..., dict[str, str]],
    source_ip: Callable[[str], None],
    log_output: io.StringIO,
) -> None:
    source_ip("203.0.113.77")
    resp = api.http.get(
        f"/v1/vehicles/{VIN}", headers=auth("admin", **{"X-Correlation-Id": "access-0001-test"})
    )
    (line,) = access_lines(log_output)
    assert line["client_ip"] == "203.0.113.0"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/v1/vehicles/{vin}", resp.status_code)
    assert line["correlation_id"] == "access-0001-test"
    assert isinstance(line["latency_ms"], int | float)
    assert "203.0.113.77" not in log_output.getvalue()
    assert VIN not in json.dumps(line)


def test_an_ipv6_clients_access_line_keeps_only_its_48_bit_prefix(
    api: Any, source_ip: Callable[[str], None], log_output: io.StringIO
) -> None:
    source_ip("2001:db8:abcd:12:3456:789a:bcde:f012")
    assert api.http.get("/health").status_code in (200, 503)
    (line,) = access_lines(log_output)
    assert line["client_ip"] == "2001:db8:abcd::"
    assert line["route"] == "/health"
    logged = log_output.getvalue()
    for part in ("2001:db8:abcd:12", "3456", "789a", "bcde", "f012"):
        assert part not in logged


def test_a_500_and_a_refusal_each_get_their_access_line_with_the_truncated_ip(
    api: Any,
    auth: Callable[..., dict[str, str]],
    source_ip: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    log_output: io.StringIO,
) -> None:
    from chalicelib.cards import views

    def boom(*_: Any) -> None:
        raise RuntimeError("exploded")

    source_ip("198.51.100.23")
    assert api.http.get(f"/v1/vehicles/{VIN}").status_code == 401
    monkeypatch.setattr(views, "vehicle_view", boom)
    assert api.http.get(f"/v1/vehicles/{VIN}", headers=auth("admin")).status_code == 500
    refused, failed = access_lines(log_output)
    assert (refused["status"], failed["status"]) == (401, 500)
    assert refused["client_ip"] == failed["client_ip"] == "198.51.100.0"
    assert "198.51.100.23" not in log_output.getvalue()
