"""Cross-cutting behaviour of the API: errors, correlation ids, auth, health, the OpenAPI document."""

from __future__ import annotations

import io
import json
import re
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
        assert op["operationId"] in (spec.handler, f"{spec.tags[0]}_{spec.handler}")
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


def test_every_operation_id_of_the_openapi_document_is_unique(api: Any) -> None:
    doc = body(api.http.get("/openapi.json"))
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", op_id) for op_id in ids)
    by_route = {
        (path, method): op["operationId"] for path, ops in doc["paths"].items() for method, op in ops.items()
    }
    # the handler names the accounts and the auth modules share, each qualified by its module's tag
    assert by_route[("/v1/accounts/login", "post")] == "accounts_login"
    assert by_route[("/v1/auth/login", "post")] == "auth_login"
    assert by_route[("/v1/accounts/me", "get")] == "accounts_me"
    assert by_route[("/v1/me", "get")] == "auth_me"
    # a name no other handler has stays as it was
    assert by_route[("/v1/validate/{kind}", "post")] == "validate_value"
    linked = {
        link["operationId"]
        for ops in doc["paths"].values()
        for op in ops.values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    }
    assert linked
    assert linked <= set(ids)


def test_the_openapi_document_refuses_an_operation_id_its_routes_would_repeat(api: Any) -> None:
    import dataclasses

    from chalicelib.api.http import ROUTES
    from chalicelib.api.openapi import operation_ids

    login = next(spec for spec in ROUTES if spec.path == "/v1/accounts/login")
    twin = dataclasses.replace(login, path="/v1/accounts/login-again")
    with pytest.raises(ValueError, match="accounts_login"):
        operation_ids([*ROUTES, twin])


def test_a_cold_import_of_the_app_leaves_settings_and_use_cases_unloaded() -> None:
    import subprocess
    import sys

    unloaded = (
        "pydantic_settings",
        "chalicelib.registration.views",
        "chalicelib.verification.service",
        "chalicelib.operators.callbacks",
        "chalicelib.kernel.validators",
        # the fleet review's and the console's use cases and views load with their first request
        "chalicelib.fleet.domain",
        "chalicelib.fleet.cases_domain",
        "chalicelib.fleet.batches",
        "chalicelib.fleet.cases",
        "chalicelib.audit.document_views",
        "chalicelib.api.fleet_views",
        "chalicelib.api.fleet_cases_views",
        # the routes' models load with their first request, and the domains they name with them
        "chalicelib.api.models",
        "chalicelib.api.accounts_views",
        "chalicelib.api.audit_views",
        "chalicelib.api.auth_views",
        "chalicelib.api.complaints_views",
        "chalicelib.api.dealers_views",
        "chalicelib.api.enterprise_views",
        "chalicelib.api.entrances_views",
        "chalicelib.api.inventory_views",
        "chalicelib.api.lifecycle_views",
        "chalicelib.api.realname_views",
        "chalicelib.api.registration_views",
        "chalicelib.api.review_views",
        "chalicelib.api.staff_views",
        "chalicelib.api.system_views",
        "chalicelib.api.tools_views",
        "chalicelib.api.verification_views",
        "chalicelib.accounts.domain",
        "chalicelib.audit.domain",
        "chalicelib.consents.account_models",
        "chalicelib.complaints.domain",
        "chalicelib.consents.domain",
        "chalicelib.consents.texts",
        "chalicelib.enterprise.actions_domain",
        "chalicelib.enterprise.domain",
        "chalicelib.enterprise.grants",
        "chalicelib.kernel.personal",
        "chalicelib.operators.views",
        "chalicelib.registration.domain.registrations",
        "chalicelib.sms.domain",
        "chalicelib.sms.limits",
        "chalicelib.verification.domain.evidence",
        "chalicelib.verification.domain.flows",
        "chalicelib.verification.domain.liveness",
        "chalicelib.verification.views",
        # no model is defined at import: pydantic's model machinery (and its plugins' lookup) is not loaded
        "pydantic.main",
        "pydantic.plugin._loader",
        "holidays",
        "PIL",
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


def test_health_tells_a_public_caller_only_up_or_down(api: Any) -> None:
    resp = api.http.get("/health")
    assert resp.status_code == 200
    assert body(resp) == {"status": "ok"}


def test_health_shows_an_admin_each_dependency_the_stage_uses(
    api: Any, auth: Callable[..., dict[str, str]]
) -> None:
    resp = api.http.get("/health", headers=auth("admin"))
    doc = body(resp)
    assert resp.status_code == 200
    assert (doc["status"], doc["stage"]) == ("ok", "test")
    assert {
        "table:vehicles",
        "table:cards",
        "table:card-history",
        "table:parties",
        "table:outbox",
        "bucket:documents",
        "kms:pii",
        "kms:pii-hash",
        "queue:outbox",
        "queue:outbox-dlq",
        "engine:ocr",
        "engine:faces",
        "engine:liveness",
        "authority",
        "operator:china_mobile",
    } <= set(doc["checks"])
    assert all(check["ok"] for check in doc["checks"].values()), doc["checks"]
    # a non-admin token gets the public answer
    assert body(api.http.get("/health", headers=auth("owner"))) == {"status": "ok"}


def test_health_is_503_when_a_dependency_is_missing(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    from chalicelib.core.aws import client

    client("dynamodb").delete_table(TableName=get_settings().table_name("cards"))
    resp = api.http.get("/health")
    assert (resp.status_code, body(resp)) == (503, {"status": "down"})
    doc = body(api.http.get("/health", headers=auth("admin")))
    assert doc["status"] == "down"
    cards = doc["checks"]["table:cards"]
    assert cards == {"ok": False, "ms": cards["ms"], "error": "ResourceNotFoundException", "required": True}


def test_health_names_a_missing_queue_to_an_admin(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    from chalicelib.core.aws import client
    from chalicelib.core.resources import declare

    sqs = client("sqs")
    dead_letters = declare(get_settings()).queue("outbox-dlq").name
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=dead_letters)["QueueUrl"])
    resp = api.http.get("/health", headers=auth("admin"))
    doc = body(resp)
    assert resp.status_code == 503
    failing = {name: check["error"] for name, check in doc["checks"].items() if not check["ok"]}
    assert failing == {"queue:outbox-dlq": "AWS.SimpleQueueService.NonExistentQueue"}


def test_health_reports_an_operator_not_configured_without_going_down(
    api: Any, auth: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import deps

    # Given a stage whose china_unicom has no push URL
    monkeypatch.setenv(
        "CHEKA_OPERATOR_BASE_URLS",
        json.dumps(dict.fromkeys(("china_mobile", "china_telecom", "china_broadnet"), "http://127.0.0.1:9")),
    )
    deps.reset()
    # Then the API is up (its pushes wait in the outbox) and an admin sees which operator lacks what
    resp = api.http.get("/health", headers=auth("admin"))
    doc = body(resp)
    assert (resp.status_code, doc["status"]) == (200, "ok")
    assert doc["checks"]["operator:china_unicom"] == {
        "ok": False,
        "ms": 0.0,
        "error": "not configured: url",
        "required": False,
    }
    assert doc["checks"]["operator:china_mobile"]["ok"] is True


def test_health_pings_the_engines_function_of_a_stage_with_remote_engines(
    api: Any, auth: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import deps
    from chalicelib.engines.handler import handle
    from chalicelib.verification.domain.engines import engine_unavailable

    monkeypatch.setenv("CHEKA_OCR_ENGINE", "remote")
    deps.reset()
    pings: list[dict[str, Any]] = []

    def answering(payload: dict[str, Any]) -> dict[str, Any]:
        pings.append(payload)
        return handle(json.loads(json.dumps(payload)), None)

    deps.use_engine_invoker(answering)
    try:
        doc = body(api.http.get("/health", headers=auth("admin")))
        assert doc["checks"]["engine:function"]["ok"] is True, doc["checks"]["engine:function"]
        assert "engine:ocr" not in doc["checks"]  # not in this process: in the engines function
        assert pings == [{"op": "ping"}]

        def timing_out(payload: dict[str, Any]) -> dict[str, Any]:
            raise engine_unavailable("ocr", "timeout")

        deps.use_engine_invoker(timing_out)
        deps.reset()
        resp = api.http.get("/health", headers=auth("admin"))
        assert resp.status_code == 503
        assert body(resp)["checks"]["engine:function"]["error"] == "engine.unavailable"
    finally:
        deps.use_engine_invoker(None)


def test_health_answers_from_a_cache_for_a_few_seconds(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    from chalicelib.core.aws import client

    assert api.http.get("/health").status_code == 200
    client("dynamodb").delete_table(TableName=get_settings().table_name("cards"))
    # within health_cache_seconds the cached answer stands: probes do not run on every call
    assert api.http.get("/health").status_code == 200
    from chalicelib.api import system

    monkeypatched = system._cached
    assert monkeypatched is not None
    system._cached = (
        monkeypatched[0],
        monkeypatched[1] - get_settings().health_cache_seconds,
        monkeypatched[2],
    )
    assert api.http.get("/health").status_code == 503


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


def test_a_500_without_a_given_correlation_id_tells_one_reference_in_body_header_and_log(
    api: Any,
    auth: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    log_output: io.StringIO,
) -> None:
    from chalicelib.cards import views

    def boom(*_: Any) -> None:
        raise RuntimeError("exploded")

    monkeypatch.setattr(views, "vehicle_view", boom)
    resp = api.http.get("/v1/vehicles/LSVAU218XN2183294", headers=auth("admin"))
    assert resp.status_code == 500
    reference = body(resp)["reference"]
    assert resp.headers["X-Correlation-Id"] == reference
    logged = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (error,) = [line for line in logged if line.get("message") == "unexpected error"]
    assert (error["reference"], error["correlation_id"]) == (reference, reference)


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


# --- one error model: Chalice's own replies --------------------------------------------------------


def test_a_method_the_path_lacks_is_405_in_the_error_model(api: Any) -> None:
    resp = api.http.delete("/health")
    doc = body(resp)
    assert resp.status_code == 405
    assert doc["code"] == "method.not_allowed"
    assert doc["message_zh"]
    assert "DELETE" in doc["message_en"]
    assert doc["details"] == {"allowed": ["GET"]}
    assert resp.headers["Allow"] == "GET"
    assert resp.headers["X-Correlation-Id"]


def test_a_content_type_the_route_does_not_take_is_415_in_the_error_model(
    api: Any, auth: Callable[..., dict[str, str]]
) -> None:
    resp = api.http.post(
        "/v1/validate/vin", headers=auth("owner", **{"Content-Type": "text/plain"}), body="x"
    )
    doc = body(resp)
    assert resp.status_code == 415
    assert (doc["code"], bool(doc["message_zh"]), bool(doc["message_en"])) == (
        "media_type.unsupported",
        True,
        True,
    )


def test_an_unknown_path_is_404_route_not_found_in_the_local_gateway(api: Any) -> None:
    from chalicelib.local.gateway import ErrorModelGateway

    # chalice's own local gateway answers as API Gateway does (403, "Missing Authentication Token")…
    assert api.http.get("/v1/no-such-route").status_code == 403
    # …the one ``make run`` serves answers in the error model, as infra's gateway response does on AWS
    api.http._local_gateway = ErrorModelGateway(api.http._app, api.http._config)
    for method in ("GET", "POST", "DELETE"):
        resp = api.http.request(method, "/v1/no-such-route/11010519491231002X")
        doc = body(resp)
        assert resp.status_code == 404
        assert doc == {
            "code": "route.not_found",
            "message_zh": "请求的地址不存在",
            "message_en": "No route serves this path",
        }
    # and known routes are untouched
    assert api.http.get("/health").status_code == 200


def test_chalice_local_as_make_run_starts_it_answers_unknown_paths_in_the_error_model(tmp_path: Any) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local.gateway", "local", "--port", str(port), "--stage", "local"],
        cwd=root,
        env={**os.environ, "CHEKA_STAGE": "local"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/nowhere", timeout=2)
            except urllib.error.HTTPError as exc:
                status, doc = exc.code, json.loads(exc.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "chalice local did not start"
                assert server.poll() is None, "chalice local exited"
                time.sleep(0.3)
        assert (status, doc["code"]) == (404, "route.not_found")
    finally:
        import contextlib
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # its reloader's server process goes down with it
        server.wait(timeout=20)


def test_the_operation_ids_are_the_published_ones(api: Any) -> None:
    """Generated clients name their methods after the operationIds: a route's id changes only
    deliberately (``tests/integration/openapi_operation_ids.txt`` updated with it), never because another
    route's handler came to share its name."""
    from pathlib import Path

    doc = body(api.http.get("/openapi.json"))
    built = sorted(
        f"{method.upper()} {path} {op['operationId']}"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    )
    published = (Path(__file__).parent / "openapi_operation_ids.txt").read_text().splitlines()
    assert built == published
