"""Every outbound call bounded (``chalicelib.core.outbound``): the clients' timeouts and attempts, a
dependency that accepts and never answers given up within the budget, the request's deadline, and which
failures the API answers as retryable (503 with ``Retry-After``) rather than as a bug (500)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from chalicelib.core import outbound
from chalicelib.kernel.errors import ServiceUnavailable


class SilentServer:
    """A loopback socket that accepts every connection and never answers (a paused dependency)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture
def silent_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    """Every AWS endpoint of the stage is a silent server; short timeouts, two attempts."""
    from chalicelib.adapters.dynamo import models
    from chalicelib.core import aws, deps

    with SilentServer() as server:
        monkeypatch.setenv("CHEKA_AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("CHEKA_OUTBOUND_CONNECT_TIMEOUT_SECONDS", "0.5")
        monkeypatch.setenv("CHEKA_OUTBOUND_READ_TIMEOUT_SECONDS", "0.3")
        monkeypatch.setenv("CHEKA_OUTBOUND_MAX_ATTEMPTS", "2")
        aws.reset()
        deps.reset()
        models._bound = None
        yield server
    monkeypatch.undo()
    aws.reset()
    deps.reset()
    models._bound = None


def client_error(code: str, operation: str = "PutItem", status: int = 400, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, operation)


def test_every_aws_client_carries_the_configured_timeouts_and_attempts() -> None:
    from chalicelib.core import aws
    from chalicelib.core.settings import get_settings

    aws.reset()
    settings = get_settings()
    for service in ("dynamodb", "s3", "kms", "secretsmanager", "sqs"):
        config = aws.client(service).meta.config
        assert config.connect_timeout == settings.outbound_connect_timeout_seconds == 2
        assert config.read_timeout == settings.outbound_read_timeout_seconds == 5
        assert config.retries["total_max_attempts"] == settings.outbound_max_attempts == 3
    engines = aws.client("lambda", read_timeout=settings.engines_timeout_seconds, retries=0).meta.config
    assert (engines.connect_timeout, engines.read_timeout) == (2, settings.engines_timeout_seconds)
    assert engines.retries["total_max_attempts"] == 1
    # the worst of one call: every attempt at its worst, with botocore's backoff between them
    # (at most 2 s after the second attempt in standard mode)
    worst = 3 * (2 + 5) + 1 + 2
    assert worst < 30 - outbound.LAMBDA_MARGIN_SECONDS


def test_the_sms_provider_is_asked_once_per_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """SNS ``Publish`` is not idempotent: botocore trying it again after a lost reply would send the
    person the same code twice, so its client makes one attempt."""
    from chalicelib.adapters.sms.sns import SnsSmsSender
    from chalicelib.core import aws, deps

    monkeypatch.setenv("CHEKA_SMS_SENDER", "sns")
    aws.reset()
    deps.reset()
    try:
        sender = deps.sms_sender()
        assert isinstance(sender, SnsSmsSender)
        assert sender._sns.meta.config.retries["total_max_attempts"] == 1
    finally:
        monkeypatch.undo()
        aws.reset()
        deps.reset()


def test_every_table_connection_carries_the_configured_timeouts_and_attempts() -> None:
    from chalicelib.adapters.dynamo import models
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    models._bound = None
    models.bind(settings)
    for spec in models.TABLES:
        meta = spec.model.Meta
        assert (meta.connect_timeout_seconds, meta.read_timeout_seconds) == (2, 5), spec.short_name
        assert meta.max_retry_attempts == 2
    config = models.TABLES[0].model._get_connection().connection.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries["total_max_attempts"] == 3


def test_a_store_that_never_answers_is_given_up_within_the_budget(silent_aws: SilentServer) -> None:
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core import deps
    from chalicelib.core.aws import client

    # boto3: two attempts of 0.3 s and botocore's backoff between them (at most 1 s)
    start = time.monotonic()
    with pytest.raises(ReadTimeoutError) as raised:
        client("dynamodb").describe_table(TableName="any")
    elapsed = time.monotonic() - start
    assert 0.55 < elapsed < 3 * (2 * 0.3 + 1.0), elapsed
    assert silent_aws.accepted >= 2  # it did try again
    error = outbound.retryable_error(raised.value)
    assert isinstance(error, ServiceUnavailable)
    assert (error.code, error.details["retry_after_seconds"]) == ("store.unavailable", 5)
    # PynamoDB's connections are bounded the same way (its own default: 2 minutes)
    deps._bind_tables()
    start = time.monotonic()
    with pytest.raises(outbound.Unavailable) as wrapped:  # lifted out of PynamoDB's GetError
        TABLES[0].model.get("missing")
    assert time.monotonic() - start < 3 * (2 * 0.3 + 1.0)
    error = outbound.retryable_error(wrapped.value)
    assert error is not None, wrapped.value
    assert error.code == "store.unavailable"


def test_no_attempt_starts_after_the_requests_deadline(silent_aws: SilentServer) -> None:
    from chalicelib.core.aws import client

    ddb = client("dynamodb")
    token = outbound.begin_request(20.0)
    try:
        outbound._deadline.set(outbound.Deadline(soft=0.0, hard=0.0, budget=20.0))  # already passed
        start = time.monotonic()
        with pytest.raises(outbound.DeadlineExceeded) as raised:
            ddb.describe_table(TableName="any")
        assert time.monotonic() - start < 0.5
    finally:
        outbound.end_request(token)
    assert silent_aws.accepted == 0  # nothing was sent
    error = outbound.retryable_error(raised.value)
    assert error is not None
    assert (error.code, error.details["cause"]) == ("store.unavailable", "deadline")
    assert outbound.current_deadline() is None


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeLambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_no_attempt_starts_after_the_budget_and_none_that_could_outlive_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeMonotonic()
    monkeypatch.setattr(outbound, "time", clock)
    token = outbound.begin_request(20.0)
    try:
        outbound.check_attempt("dynamodb", "PutItem", 7)  # 0 + 7 <= 28
        outbound.check_attempt("lambda", "Invoke", 22)  # a long engine call: ends by 28
        clock.now += 13
        outbound.check_attempt("dynamodb", "PutItem", 7)  # 13 + 7 <= 28
        with pytest.raises(outbound.DeadlineExceeded):
            outbound.check_attempt("lambda", "Invoke", 22)  # 13 + 22 > 28: could outlive the function
        clock.now += 6.5
        outbound.check_attempt("dynamodb", "PutItem", 7)  # 19.5: the budget lasts, 26.5 <= 28
        clock.now += 0.5
        with pytest.raises(outbound.DeadlineExceeded):
            outbound.check_attempt("dynamodb", "PutItem", 0.1)  # 20: the budget is spent
    finally:
        outbound.end_request(token)
    outbound.check_attempt("dynamodb", "PutItem", 7)  # outside a request: every attempt goes
    # A Lambda with 10 s left: the deadline is its end less the margin
    token = outbound.begin_request(20.0, FakeLambdaContext(10_000))
    try:
        deadline = outbound.current_deadline()
        assert deadline is not None
        assert (deadline.soft - clock.now, deadline.hard - clock.now) == (8.0, 8.0)
        with pytest.raises(outbound.DeadlineExceeded):
            outbound.check_attempt("dynamodb", "PutItem", 8.5)
    finally:
        outbound.end_request(token)


@pytest.mark.parametrize(
    ("exc", "code", "wait"),
    [
        (client_error("ProvisionedThroughputExceededException"), "store.unavailable", 2),
        (client_error("ThrottlingException", "Decrypt"), "service.unavailable", 2),
        (client_error("RequestLimitExceeded"), "store.unavailable", 2),
        (client_error("TransactionConflictException", "UpdateItem"), "store.unavailable", 2),
        (client_error("KMSInternalException", "Decrypt", 500), "keys.unavailable", 5),
        (client_error("KeyUnavailableException", "GenerateMac", 500), "keys.unavailable", 5),
        (client_error("SlowDown", "PutObject", 503), "storage.unavailable", 2),
        (client_error("InternalError", "GetObject", 500), "service.unavailable", 5),
        (client_error("ServiceUnavailable", "GetObject", 503), "service.unavailable", 5),
        (client_error("Whatever", "GetObject", 502), "service.unavailable", 5),
        (
            client_error(
                "TransactionCanceledException",
                "TransactWriteItems",
                CancellationReasons=[{"Code": "None"}, {"Code": "ThrottlingError"}],
            ),
            "store.unavailable",
            2,
        ),
        (ReadTimeoutError(endpoint_url="https://kms"), "service.unavailable", 5),
        (EndpointConnectionError(endpoint_url="https://kms"), "service.unavailable", 5),
        (TimeoutError("timed out"), "service.unavailable", 5),
        (ConnectionResetError("reset"), "service.unavailable", 5),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_dependencys_failure_is_answered_as_retryable(exc: BaseException, code: str, wait: int) -> None:
    error = outbound.retryable_error(exc)
    assert isinstance(error, ServiceUnavailable)
    assert error.status == 503
    assert (error.code, error.details["retry_after_seconds"]) == (code, wait)
    assert error.message_zh
    assert error.message_en


@pytest.mark.parametrize(
    ("service", "operation", "method", "code", "status", "answer"),
    [
        ("kms", "ListKeys", "list_keys", "ThrottlingException", 400, ("keys.unavailable", 2)),
        ("s3", "ListBuckets", "list_buckets", "InternalError", 500, ("storage.unavailable", 5)),
    ],
    ids=["kms-throttled", "s3-internal-error"],
)
def test_a_services_error_reply_is_answered_naming_the_service(
    service: str, operation: str, method: str, code: str, status: int, answer: tuple[str, int]
) -> None:
    """An error reply is raised after ``after-call`` (not through ``after-call-error``): the reply's
    metadata names the service all the same."""
    from moto import mock_aws

    from chalicelib.core import aws

    def error_reply(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        http_response.status_code = status
        parsed.clear()
        parsed.update(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        )

    aws.reset()
    with mock_aws():
        made = aws.client(service)
        made.meta.events.register_first(f"after-call.{service}.{operation}", error_reply)
        try:
            with pytest.raises(ClientError) as raised:
                getattr(made, method)()
        finally:
            made.meta.events.unregister(f"after-call.{service}.{operation}", error_reply)
    aws.reset()
    assert raised.value.response["Error"]["Code"] == code
    error = outbound.retryable_error(raised.value)
    assert error is not None
    assert (error.code, error.details["retry_after_seconds"]) == answer


def test_a_wrapped_store_error_names_the_store() -> None:
    from pynamodb.exceptions import PutError

    try:
        try:
            raise client_error("ProvisionedThroughputExceededException")
        except ClientError as inner:
            raise PutError("Failed to put item", inner) from inner
    except PutError as outer:
        error = outbound.retryable_error(outer)
    assert error is not None
    assert error.code == "store.unavailable"


@pytest.mark.parametrize(
    "exc",
    [
        client_error("ConditionalCheckFailedException"),
        client_error("ValidationException"),
        client_error("AccessDeniedException", "Decrypt"),
        client_error("NoSuchKey", "GetObject", 404),
        client_error(
            "TransactionCanceledException",
            "TransactWriteItems",
            CancellationReasons=[{"Code": "ConditionalCheckFailed"}],
        ),
        KeyError("MPO"),
        ValueError("bad"),
        AssertionError(),
    ],
    ids=lambda v: type(v).__name__ + ":" + str(getattr(v, "response", {}).get("Error", {}).get("Code", "")),
)
def test_a_bug_or_a_refusal_is_not_retryable(exc: BaseException) -> None:
    assert outbound.retryable_error(exc) is None


def test_a_route_answers_a_dependencys_timeout_with_503_and_retry_after_and_a_bug_with_500() -> None:
    from chalice.app import Chalice
    from chalice.test import Client

    from chalicelib.api.http import Blueprint, Call, route

    bp = Blueprint(__name__)

    @route(bp, "/slow", summary="slow", roles=None)
    def slow(call: Call) -> dict[str, Any]:
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1")

    @route(bp, "/throttled", summary="throttled", roles=None)
    def throttled(call: Call) -> dict[str, Any]:
        raise client_error("ProvisionedThroughputExceededException")

    @route(bp, "/bug", summary="bug", roles=None)
    def bug(call: Call) -> dict[str, Any]:
        raise KeyError("MPO")

    app = Chalice("outbound-test")
    app.register_blueprint(bp)
    with Client(app) as api:
        slow_answer = api.http.get("/slow")
        throttled_answer = api.http.get("/throttled")
        bug_answer = api.http.get("/bug")
    assert slow_answer.status_code == 503
    body = json.loads(slow_answer.body)
    assert set(body) >= {"code", "message_zh", "message_en", "details"}
    assert body["details"]["retry_after_seconds"] == 5
    assert slow_answer.headers["Retry-After"] == "5"
    assert throttled_answer.status_code == 503
    assert json.loads(throttled_answer.body)["code"] == "store.unavailable"
    assert throttled_answer.headers["Retry-After"] == "2"
    assert bug_answer.status_code == 500
    assert json.loads(bug_answer.body)["code"] == "internal"
    from chalicelib.api.http import ROUTES

    ROUTES[:] = [r for r in ROUTES if r.path not in ("/slow", "/throttled", "/bug")]


def test_health_on_a_paused_store_answers_503_naming_what_failed_within_its_budget(
    silent_aws: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalice.test import Client

    from app import app
    from chalicelib.api import system
    from chalicelib.core.auth import Role, issue_token
    from chalicelib.core.settings import get_settings

    monkeypatch.setattr(system, "PROBE_TIMEOUT_SECONDS", 0.5)
    system._cached = None
    admin = {"Authorization": f"Bearer {issue_token(get_settings(), 'ops', [Role.ADMIN])}"}
    start = time.monotonic()
    with Client(app) as api:
        answer = api.http.get("/health", headers=admin)
    elapsed = time.monotonic() - start
    system._cached = None
    assert answer.status_code == 503
    body = json.loads(answer.body)
    assert body["status"] == "down"
    failed = {name for name, check in body["checks"].items() if not check["ok"] and check["required"]}
    assert "table:registrations" in failed, failed
    assert "bucket:documents" in failed, failed
    assert elapsed < 3 * 2.0, elapsed  # the probes' budget (0.5 s here), the app's first import


def test_a_wave_message_meeting_an_unavailable_dependency_is_left_for_redelivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.campaigns.messages import plan_shard_message
    from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
    from chalicelib.core import deps
    from chalicelib.events.campaigns import handle_wave_messages

    class Unavailable:
        def plan_shard(self, *_: Any) -> Any:
            raise ServiceUnavailable(
                "store.unavailable", "数据服务暂时繁忙", "busy", details={"retry_after_seconds": 2}
            )

    monkeypatch.setattr(deps, "wave_planner", lambda: Unavailable())
    body = plan_shard_message("cp_" + "0" * 23 + "1", 1, BACKFILL_SHARD_NAMES[0])
    record = {"messageId": "m1", "receiptHandle": "r1", "body": json.dumps(body), "attributes": {}}
    assert handle_wave_messages([record]) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


class _Request:
    lambda_context = None


def test_the_middleware_sets_a_deadline_in_a_lambda_and_none_under_chalice_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.api import middleware

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert middleware._begin_deadline(_Request()) is None  # type: ignore[arg-type]
    assert outbound.current_deadline() is None
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cheka-prod-APIHandler")
    token = middleware._begin_deadline(_Request())  # type: ignore[arg-type]
    try:
        deadline = outbound.current_deadline()
        assert deadline is not None
        assert deadline.budget == 20.0
    finally:
        middleware._end_deadline(token)
    assert outbound.current_deadline() is None
