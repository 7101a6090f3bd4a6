"""Who asks for a code (``chalicelib.api.clients``): the gateway's source IP, a well-formed device id,
a captcha answer from the body or the headers, and both identifiers kept only as keyed hashes."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import Request

from chalicelib.api import clients
from chalicelib.core import deps
from tests.fakes.crypto import FakeHasher


def request(headers: dict[str, str] | None = None, ip: str | None = "203.0.113.7") -> Request:
    event: dict[str, Any] = {
        "multiValueQueryStringParameters": None,
        "headers": headers or {},
        "pathParameters": None,
        "requestContext": {"httpMethod": "POST", "resourcePath": "/v1/auth/sms-codes"},
        "body": None,
        "isBase64Encoded": False,
        "stageVariables": None,
    }
    if ip is not None:
        event["requestContext"]["identity"] = {"sourceIp": ip}
    return Request(event)


def test_the_client_ip_is_the_gateways_source_ip() -> None:
    assert clients.client_ip(request()) == "203.0.113.7"
    assert clients.client_ip(request(ip=None)) == "unknown"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("d0123456789abcdef", True),
        ("abc_DEF-12", True),
        ("short", False),
        ("x" * 65, False),
        ("a b c d e f", False),
    ],
)
def test_only_a_well_formed_device_id_is_taken(value: str, kept: bool) -> None:
    assert (clients.device_id(request({"X-Device-Id": value})) == value) is kept


def test_the_origin_holds_hashes_and_takes_a_captcha_answer_from_the_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deps, "keyed_hasher", FakeHasher)
    origin = clients.send_origin(
        request({"X-Device-Id": "device-1234", "X-Captcha-Id": "c1", "X-Captcha-Answer": "HK7PE"}), "u-1"
    )
    assert origin.ip_hash is not None
    assert "203.0.113.7" not in origin.ip_hash
    assert origin.device_hash is not None
    assert "device-1234" not in origin.device_hash
    assert (origin.caller, origin.captcha_id, origin.captcha_answer) == ("u-1", "c1", "HK7PE")
    # the body's answer, when given, wins
    body = clients.send_origin(request({"X-Captcha-Id": "c1"}), None, "c2", "ABCDE")
    assert (body.captcha_id, body.captcha_answer, body.device_hash) == ("c2", "ABCDE", None)
