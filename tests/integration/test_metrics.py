"""Metrics as CloudWatch reads them: EMF lines on stdout, emitted by a registration through the API
(the funnel's steps, face attempts, liveness, the push and the operator's callback), by the outbox sweep
(the oldest pending push) and by the Lambda entry points, which are traced on deployed stages."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.metric_names import ALARMED, FUNNEL_STEPS, Metric
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (  # noqa: F401 - fixtures
    REG,
    Headers,
    person,
    register,
    vins,
)
from tests.integration.test_verification_api import call


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics printed as on every stage (the test suite turns them off by default)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def emf_lines(text: str) -> list[dict[str, Any]]:
    """Every EMF document in ``text`` (one JSON object a line, with ``_aws.CloudWatchMetrics``)."""
    found = []
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Cheka"
        found.append(doc)
    return found


def metric(doc: dict[str, Any]) -> str:
    return str(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"])


def dimension_sets(doc: dict[str, Any]) -> list[list[str]]:
    return list(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"])


def named(docs: list[dict[str, Any]], name: Metric, **dims: str) -> list[dict[str, Any]]:
    return [d for d in docs if metric(d) == name and all(d.get(k) == v for k, v in dims.items())]


def test_emit_prints_one_emf_line_with_the_service_dimension(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.core.observability import emit

    emit(Metric.STEP_FAILED, step="identity", reason="id.check_digit")
    (doc,) = emf_lines(capsys.readouterr().out)
    assert metric(doc) == "StepFailed"
    assert dimension_sets(doc) == [["step", "reason", "service"]]
    assert (doc["service"], doc["step"], doc["reason"], doc["StepFailed"]) == (
        "cheka",
        "identity",
        "id.check_digit",
        [1.0],
    )


@pytest.mark.parametrize("alarmed", ALARMED)
def test_an_alarmed_metric_is_emitted_again_with_the_service_alone(
    alarmed: Metric, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.core.observability import emit

    emit(alarmed, 2.0, operator="china_mobile")
    docs = emf_lines(capsys.readouterr().out)
    assert [dimension_sets(d) for d in docs] == [[["operator", "service"]], [["service"]]]
    assert [d[alarmed.value] for d in docs] == [[2.0], [2.0]]


def test_metrics_print_nothing_when_disabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.core.observability import emit

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    emit(Metric.PUSH_SENT, operator="china_mobile")
    assert capsys.readouterr().out == ""


def test_the_local_stage_prints_metrics() -> None:
    """Neither ``make run`` nor the local stage of ``.chalice/config.json`` turns metrics off."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    config = json.loads((root / ".chalice" / "config.json").read_text())
    assert "POWERTOOLS_METRICS_DISABLED" not in config["stages"]["local"]["environment_variables"]
    assert "POWERTOOLS_METRICS_DISABLED" not in (root / "chalicelib" / "local" / "run.py").read_text()


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_a_registration_through_the_api_emits_its_funnel_the_face_attempt_and_the_push(
    api: Any,
    person: Headers,  # noqa: F811
    vins: list[str],  # noqa: F811
    metrics_on: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chalicelib.operators.dispatch import Dispatcher
    from tests.fakes.operators import FakeOperatorGateway
    from tests.integration.test_operator_callback_api import answer, signed

    me = person()
    # Given a bad input on a step: a VIN that fails its check digit
    bad = vins[0][:8] + ("0" if vins[0][8] != "0" else "1") + vins[0][9:]
    status, err = call(api, "post", REG, me, {"vin": bad})
    assert status == 422
    # And a whole registration, submitted
    reg = register(api, me, vins[0])
    # And its push delivered, then the operator's signed acceptance received
    record_id = (
        deps.outbox_store().lifecycle(deps.inventory_repo().cards_of_vehicle(vins[0])[0].iccid).message_id
    )
    assert record_id is not None
    Dispatcher(deps.outbox_store(), FakeOperatorGateway(), deps.push_queue()).dispatch(record_id)
    card = deps.inventory_repo().cards_of_vehicle(vins[0])[0]
    accepted = answer(card.iccid, record_id).model_copy(update={"operator": card.operator})
    body, headers = signed(accepted)
    assert api.http.post("/v1/operator/callbacks", body=body, headers=headers).status_code == 200
    _status, reg = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert reg["step"] == "registered"

    docs = emf_lines(capsys.readouterr().out)
    # Then every step of the funnel was entered and passed, in the funnel's order
    entered = [d["step"] for d in named(docs, Metric.STEP_ENTERED)]
    passed = Counter(d["step"] for d in named(docs, Metric.STEP_PASSED))
    walked = ["start", "confirm_vehicle", "verify_phone", "possession", "identity", "biometric_consent"]
    walked += ["documents", "ocr", "face", "consents", "submit"]
    assert set(walked) <= set(FUNNEL_STEPS)
    assert list(dict.fromkeys(entered)) == walked
    assert all(passed[step] >= 1 for step in walked), passed
    # And the bad VIN is one StepFailed of the start step, with its reason
    (failed,) = named(docs, Metric.STEP_FAILED)
    assert (failed["step"], failed["reason"]) == ("start", err["code"])
    assert err["code"].startswith("vin.")
    # And the face attempt, its liveness verdict, the push and the callback were counted
    assert [d["result"] for d in named(docs, Metric.FACE_ATTEMPT)] == ["passed"]
    assert [d["result"] for d in named(docs, Metric.LIVENESS_RESULT)] == ["live"]
    operator = card.operator.value
    assert len(named(docs, Metric.PUSH_SENT, operator=operator)) == 1
    assert len(named(docs, Metric.CALLBACK_RECEIVED, operator=operator, outcome="applied")) == 1
    assert len(named(docs, Metric.PUSH_ACCEPTED, operator=operator)) == 1
    # And no metric carries personal data: dimension values are codes
    for doc in docs:
        dims = {k for sets in dimension_sets(doc) for k in sets}
        assert dims <= {"service", "step", "reason", "result", "operator", "outcome", "kind", "purpose"}, dims
    text = json.dumps(docs, ensure_ascii=False)
    assert vins[0] not in text
    assert "13912345678" not in text


def test_a_refused_callback_and_a_failing_operator_are_counted(
    api: Any, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.operators.dispatch import Dispatcher
    from tests.fakes.operators import FakeOperatorGateway
    from tests.integration.test_operator_callback_api import answer, pending_card, signed

    card, record_id = pending_card()
    body, headers = signed(answer(card.iccid, record_id))
    forged = {**headers, "X-Signature": "0" * 64}
    assert api.http.post("/v1/operator/callbacks", body=body, headers=forged).status_code == 401
    gateway = FakeOperatorGateway()
    gateway.be_unavailable(times=1)
    Dispatcher(deps.outbox_store(), gateway, deps.push_queue()).dispatch(record_id)
    docs = emf_lines(capsys.readouterr().out)
    (refused,) = named(docs, Metric.CALLBACK_RECEIVED)
    assert (refused["outcome"], refused["reason"]) == ("refused", "operator_callback.bad_signature")
    errors = named(docs, Metric.OPERATOR_ERROR)
    assert [dimension_sets(d) for d in errors] == [[["operator", "kind", "service"]], [["service"]]]
    assert (errors[0]["operator"], errors[0]["kind"]) == ("china_mobile", "unavailable")


def test_the_lambda_sweep_and_the_local_worker_emit_the_age_of_the_oldest_pending_push(
    aws: None, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.events import outbox
    from chalicelib.local import worker
    from chalicelib.operators.staleness import report_oldest_pending
    from tests.integration.test_operator_callback_api import pending_card

    assert outbox.sweep_outbox()["oldest_pending_minutes"] == 0.0
    pending_card()
    every_minute = next(s for s in worker.SCHEDULES if s.name == "oldest-pending-push")
    just_now = every_minute.run()["oldest_pending_minutes"]
    assert 0.0 <= just_now < 1.0
    later = datetime.now(UTC) + timedelta(minutes=45)
    minutes = report_oldest_pending(deps.outbox_store(), later)
    assert 44.5 <= minutes <= 45.5
    ages = [d for d in emf_lines(capsys.readouterr().out) if metric(d) == Metric.OLDEST_PENDING_PUSH_MINUTES]
    assert [dimension_sets(d) for d in ages] == [[["service"]]] * 3
    assert [d["OldestPendingPushMinutes"] for d in ages] == [[0.0], [just_now], [minutes]]


class FakeTracer:
    """Records the handlers ``capture_lambda_handler`` wrapped and the invocations that ran through them."""

    def __init__(self) -> None:
        self.wrapped: list[str] = []
        self.invoked: list[str] = []

    def capture_lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        name = getattr(handler, "__name__", repr(handler))
        self.wrapped.append(name)

        def traced(event: Any, context: Any) -> Any:
            self.invoked.append(name)
            return handler(event, context)

        return traced


@pytest.fixture
def deployed_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTracer]:
    """The handlers as on a deployed stage (settings of ``prod``), with a tracer that needs no X-Ray."""
    from chalicelib.api import middleware
    from chalicelib.core import observability
    from chalicelib.core.settings import get_settings

    tracer = FakeTracer()
    prod = get_settings().model_copy(update={"stage": "prod"})
    monkeypatch.setattr(observability, "get_settings", lambda: prod)
    monkeypatch.setattr(observability, "get_tracer", lambda: tracer)
    middleware._lambda_middleware.cache_clear()
    yield tracer
    middleware._lambda_middleware.cache_clear()


def lambda_context(name: str) -> Any:
    return SimpleNamespace(
        function_name=name,
        function_version="$LATEST",
        memory_limit_in_mb=1024,
        invoked_function_arn=f"arn:aws-cn:lambda:cn-north-1:123456789012:function:{name}",
        aws_request_id="req-0001",
    )


def test_every_function_is_traced_and_flushes_metrics_on_a_deployed_stage(
    aws: None, deployed_stage: FakeTracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app as entry
    from chalicelib.core import observability

    flushed: list[bool] = []
    monkeypatch.setattr(observability, "flush_metrics", lambda: flushed.append(True))
    schedule_event: dict[str, Any] = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2026-11-29T00:00:00Z",
        "id": "e-1",
        "account": "123456789012",
        "region": "cn-north-1",
        "resources": [],
        "detail": {},
        "version": "0",
    }
    entry.sweep_outbox(schedule_event, lambda_context("cheka-prod-sweep_outbox"))
    entry.purge_abandoned(schedule_event, lambda_context("cheka-prod-purge_abandoned"))
    unknown: dict[str, Any] = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": json.dumps({"record_id": "0" * 32}),
        "eventSource": "aws:sqs",
        "awsRegion": "cn-north-1",
        "attributes": {},
    }
    batch = {"Records": [unknown]}
    assert entry.dispatch_outbox(batch, lambda_context("cheka-prod-dispatch_outbox")) == {
        "batchItemFailures": []
    }
    assert len(deployed_stage.invoked) == 3
    assert flushed == [True, True, True]


def test_a_plain_lambda_handler_is_traced_on_a_deployed_stage_only(
    deployed_stage: FakeTracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import observability
    from chalicelib.core.settings import get_settings

    @observability.lambda_handler
    def engines(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"ok": event["op"]}

    assert deployed_stage.wrapped == []  # decorating costs nothing: the chain is built on first call
    assert engines({"op": "ping"}, lambda_context("cheka-prod-engines")) == {"ok": "ping"}
    assert deployed_stage.invoked == ["engines"]

    local = get_settings().model_copy(update={"stage": "local"})
    monkeypatch.setattr(observability, "get_settings", lambda: local)

    @observability.lambda_handler
    def local_engines(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"ok": event["op"]}

    assert local_engines({"op": "ping"}, lambda_context("cheka-local-engines")) == {"ok": "ping"}
    assert deployed_stage.invoked == ["engines"]
    # called in this process without a Lambda context (deploy-check, tests): the handler alone
    assert engines({"op": "ping"}, None) == {"ok": "ping"}
    assert deployed_stage.invoked == ["engines"]


def test_an_engine_that_cannot_answer_is_counted_for_its_alarm(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalice.app import Blueprint, Chalice
    from chalice.test import Client

    from chalicelib.api import http
    from chalicelib.api.http import Call, route
    from chalicelib.verification.domain.engines import engine_unavailable

    bp = Blueprint("engine_probe")

    @route(bp, "/v1/test-engine-probe", summary="test only", roles=None, step="ocr")
    def probe(call: Call) -> None:
        raise engine_unavailable("ocr", "timeout")

    http.ROUTES.pop()  # a route of this test's own app, not of the documented API
    app = Chalice("engine-probe")
    app.experimental_feature_flags.update(["BLUEPRINTS"])
    app.register_blueprint(bp)
    with Client(app) as client:
        resp = client.http.get("/v1/test-engine-probe")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"]
    docs = emf_lines(capsys.readouterr().out)
    unavailable = named(docs, Metric.ENGINE_UNAVAILABLE)
    assert [dimension_sets(d) for d in unavailable] == [[["engine", "service"]], [["service"]]]
    assert unavailable[0]["engine"] == "ocr"
    (failed,) = named(docs, Metric.STEP_FAILED)
    assert (failed["step"], failed["reason"]) == ("ocr", "engine.unavailable")
