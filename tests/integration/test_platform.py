"""Cross-cutting behaviour of the API: errors, correlation ids, auth, health, the OpenAPI document."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core.settings import get_settings


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def test_every_route_is_in_the_openapi_document(api: Any) -> None:
    from app import app

    doc = body(api.http.get("/openapi.json"))
    declared = {(path, method.lower()) for path, entry in app.routes.items() for method in entry}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert declared == documented
    assert doc["openapi"].startswith("3.")
    validated = doc["paths"]["/v1/validate/{kind}"]["post"]
    assert validated["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ValueToCheck")
    assert {"422", "401"} <= set(validated["responses"])
    assert "ErrorBody" in doc["components"]["schemas"]


def test_the_openapi_document_lists_every_route_with_its_models(api: Any) -> None:
    from chalicelib.api.http import ROUTES

    doc = body(api.http.get("/openapi.json"))
    schemas = doc["components"]["schemas"]
    for spec in ROUTES:
        op = doc["paths"][spec.path][spec.method.lower()]
        assert op["operationId"] == spec.handler
        if spec.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{spec.body.__name__}"
        if spec.response is not None:
            ref = op["responses"][str(spec.status)]["content"][spec.produces]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{spec.response.__name__}"
            assert spec.response.__name__ in schemas
        documented_query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        assert documented_query == (set(spec.query.model_fields) if spec.query else set())
    outbox = doc["paths"]["/v1/admin/outbox"]["get"]
    assert {p["name"] for p in outbox["parameters"]} == {"status", "limit", "cursor"}


def test_a_cold_import_of_the_app_leaves_settings_and_use_cases_unloaded() -> None:
    import subprocess
    import sys

    unloaded = (
        "pydantic_settings",
        "chalicelib.registration.views",
        "chalicelib.verification.service",
        "chalicelib.operators.callbacks",
        "chalicelib.kernel.validators",
    )
    code = f"import sys, app; print(' '.join(m for m in {unloaded!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_an_invalid_query_value_is_refused_with_its_field(api: Any, auth: Callable[..., Any]) -> None:
    resp = api.http.get("/v1/review-cases?limit=0", headers=auth("reviewer"))
    assert resp.status_code == 422
    assert (body(resp)["code"], body(resp)["field"]) == ("request.limit", "limit")
    resp = api.http.get("/v1/review-cases?status=closed", headers=auth("reviewer"))
    assert (resp.status_code, body(resp)["code"], body(resp)["field"]) == (422, "review.status", "status")
    resp = api.http.get("/v1/admin/outbox?limit=many", headers=auth("admin"))
    assert (resp.status_code, body(resp)["code"]) == (422, "outbox.limit")


def test_health_reports_each_dependency(api: Any) -> None:
    resp = api.http.get("/health")
    doc = body(resp)
    assert resp.status_code == 200
    assert doc["status"] == "ok"
    assert {
        "table:vehicles",
        "table:cards",
        "table:card-history",
        "table:parties",
        "bucket:documents",
        "kms:pii",
    } <= set(doc["checks"])


def test_health_is_503_when_a_dependency_is_missing(api: Any) -> None:
    from chalicelib.core.aws import client

    client("dynamodb").delete_table(TableName=get_settings().table_name("cards"))
    resp = api.http.get("/health")
    doc = body(resp)
    assert resp.status_code == 503
    assert doc["checks"]["table:cards"] == {
        "ok": False,
        "ms": doc["checks"]["table:cards"]["ms"],
        "error": "ResourceNotFoundException",
    }


def test_correlation_id_is_echoed_or_made(api: Any) -> None:
    given = api.http.get("/health", headers={"X-Correlation-Id": "abc-123-def-456"})
    assert given.headers["X-Correlation-Id"] == "abc-123-def-456"
    made = api.http.get("/health", headers={"X-Correlation-Id": "bad id with spaces"})
    assert made.headers["X-Correlation-Id"] != "bad id with spaces"
    assert len(made.headers["X-Correlation-Id"]) >= 8


def test_correlation_id_is_on_log_lines(
    api: Any, auth: Callable[..., dict[str, str]], log_output: io.StringIO
) -> None:
    api.http.get(
        "/v1/vehicles/LSVAU2181N2183294", headers=auth("admin", **{"X-Correlation-Id": "corr-0001-test"})
    )
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    refused = [line for line in lines if line.get("message") == "request refused"]
    assert refused
    assert refused[-1]["correlation_id"] == "corr-0001-test"


def test_unexpected_errors_are_500_with_a_reference_and_no_internals(
    api: Any, auth: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.cards import views

    def boom(*_: Any) -> None:
        raise RuntimeError("table cheka-secret-internal exploded at 10.0.0.7")

    monkeypatch.setattr(views, "vehicle_view", boom)
    resp = api.http.get(
        "/v1/vehicles/LSVAU218XN2183294", headers=auth("admin", **{"X-Correlation-Id": "ref-0001-test"})
    )
    doc = body(resp)
    assert resp.status_code == 500
    assert doc["code"] == "internal"
    assert doc["reference"] == "ref-0001-test"
    assert "exploded" not in resp.body.decode()
    assert "RuntimeError" not in resp.body.decode()


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic abc", "auth.scheme"),
        ("Bearer not-a-jwt", "auth.invalid"),
    ],
)
def test_bad_tokens_are_401(api: Any, header: str, code: str) -> None:
    resp = api.http.get("/v1/me", headers={"Authorization": header})
    assert (resp.status_code, body(resp)["code"]) == (401, code)
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_expired_and_forged_tokens_are_401(api: Any, token: Callable[..., str]) -> None:
    import jwt

    expired = token("admin", ttl=-10)
    resp = api.http.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert body(resp)["code"] == "auth.expired"
    claims = jwt.decode(token("owner"), options={"verify_signature": False})
    forged = jwt.encode({**claims, "roles": ["admin"]}, "guessed-secret", algorithm="HS256")
    resp = api.http.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert (resp.status_code, body(resp)["code"]) == (401, "auth.invalid")


def test_me(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    assert body(api.http.get("/v1/me", headers=auth("dealer", "owner"))) == {
        "subject": "tester",
        "roles": ["dealer", "owner"],
    }


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ("", 400, "request.empty"),
        ("{nope", 400, "request.json"),
        ("{}", 422, "field.required"),
        ('{"value": "x", "more": 1}', 422, "field.unknown"),
        ('{"value": "LSVAU2181N2183294"}', 422, "vin.check_digit"),
    ],
)
def test_bad_bodies(
    api: Any, auth: Callable[..., dict[str, str]], payload: str, status: int, code: str
) -> None:
    resp = api.http.post(
        "/v1/validate/vin", headers=auth("owner", **{"Content-Type": "application/json"}), body=payload
    )
    doc = body(resp)
    assert (resp.status_code, doc["code"]) == (status, code)
    assert doc["message_zh"]
    assert doc["message_en"]


def test_landing_page(api: Any) -> None:
    resp = api.http.get("/")
    assert resp.status_code == 200
    assert "车联网卡实名登记" in resp.body.decode()
