"""Every outbound call bounded: the time an AWS call may take, the request's deadline, and which failures
of a dependency the API answers as retryable (503 with ``Retry-After``) rather than as a bug (500).

**Per call.** Every boto3 client (``chalicelib.core.aws.client``) and PynamoDB's connections
(``chalicelib.adapters.dynamo.base.connection_limits``) wait at most ``outbound_connect_timeout_seconds``
for a connection and ``outbound_read_timeout_seconds`` for each reply, and make at most
``outbound_max_attempts`` attempts (botocore's standard retry mode: throttling, timeouts, dropped
connections and 5xx are tried again after a jittered backoff). The engines function keeps its own,
longer read timeout (``engines_timeout_seconds``) and is tried once; the HTTP gateways (operators,
identity authority, the staff IdP's JWKS) carry their own timeouts and retry budgets.

**Per request.** Timeouts alone do not bound a request: a request making several calls, each slow but
within its timeout, could still outlive the function (30 s; API Gateway gives up at 29 s and answers
504 with no error model). So each API request served by a Lambda function has a deadline, set by the
middleware when it begins (``begin_request``; ``chalice local`` and the tests end no request at a
timeout, so they set none): ``outbound_request_seconds`` after the start, never later than the Lambda's
remaining time less a margin. Before every attempt of every AWS call (a botocore ``before-send`` hook,
registered on each client) the attempt is refused once the request's budget is spent, or when at its
worst (connect + read timeout) it could end after the function does. An attempt that will most likely
take milliseconds is not refused for what it could take at worst while the budget lasts: a slow step
(an engine on a busy machine) followed by a store write still completes when there is time for it. A
refused attempt raises ``DeadlineExceeded``, which the API answers with 503 like any other unavailable
dependency. A call to the engines function is bounded by the function's end only: its invoker waits for
what is left (``chalicelib.adapters.engines.invoker``) and reports a refusal as ``engine.unavailable``.
Worker functions (queue consumers, schedules)
have no request deadline: their calls are bounded by the timeouts above, and a message whose handling
fails stays on its queue for another try.

**Answering.** ``retryable_error`` turns what a dependency raised — a botocore timeout or dropped
connection, a throttling or 5xx ``ClientError``, KMS's ``KMSInternalException``/``KeyUnavailableException``,
S3's ``SlowDown``/``InternalError``, PynamoDB's wrapping of any of these, a refused attempt — into a
``ServiceUnavailable`` naming the dependency (``store.unavailable``, ``storage.unavailable``,
``keys.unavailable``, ``engine.unavailable``…) with ``details.retry_after_seconds``. The service is known
from the hooks: a failed send is tagged (``after-call-error``), a service's error reply carries it in its
``ResponseMetadata`` (``after-call``). Anything else is a bug and stays a 500.

This module imports nothing heavy: the middleware loads it on every cold start.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.kernel.errors import DomainError, ServiceUnavailable

#: Seconds kept free before the function's own end (to answer, log and flush metrics).
LAMBDA_MARGIN_SECONDS = 2.0
#: ``Retry-After`` for a throttled dependency, and for one that did not answer.
RETRY_AFTER_THROTTLED = 2
RETRY_AFTER_UNAVAILABLE = 5

#: Error codes of a ``ClientError`` that mean "try again later" (throttling, a service's own fault; and
#: DynamoDB's refusal of a plain write to an item a transaction in flight holds, which botocore does not
#: retry and which wrote nothing).
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "ThrottledException",
        "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
        "SlowDown", "LimitExceededException", "RequestLimitExceededException",
        "TransactionInProgressException", "TransactionConflictException",
    }
)  # fmt: skip
UNAVAILABLE_CODES = frozenset(
    {
        "InternalError", "InternalServerError", "InternalFailure", "InternalServerErrorException",
        "ServiceUnavailable", "ServiceUnavailableException", "ServiceException",
        "KMSInternalException", "KeyUnavailableException", "DependencyTimeoutException",
        "RequestTimeout", "RequestTimeoutException", "EC2ThrottledException",
    }
)  # fmt: skip
#: Cancellation reasons of a DynamoDB transaction that make the whole transaction worth trying again.
_RETRYABLE_CANCELLATIONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"}
)

#: AWS service (botocore's service id, lower case) → the error code the API answers with.
SERVICE_CODES: dict[str, str] = {
    "dynamodb": "store.unavailable",
    "s3": "storage.unavailable",
    "kms": "keys.unavailable",
    "lambda": "engine.unavailable",
    "rekognition": "engine.unavailable",
    "secrets-manager": "secrets.unavailable",
    "secretsmanager": "secrets.unavailable",
    "sqs": "queue.unavailable",
    "sns": "sms.unavailable",
    "sfn": "workflow.unavailable",
    "scheduler": "workflow.unavailable",
}
#: The Chinese name of each dependency, for the message the person reads.
_NAMES_ZH = {
    "store.unavailable": "数据服务",
    "storage.unavailable": "文件存储服务",
    "keys.unavailable": "加密服务",
    "engine.unavailable": "识别服务",
    "secrets.unavailable": "密钥服务",
    "queue.unavailable": "消息服务",
    "sms.unavailable": "短信服务",
    "workflow.unavailable": "流程服务",
    "service.unavailable": "依赖服务",
}
_SERVICE_ATTR = "_cheka_service"
#: Error codes that name their service (a ``ClientError`` raised without passing the hooks).
_SERVICE_OF_CODE = {
    "ProvisionedThroughputExceededException": "dynamodb",
    "RequestLimitExceeded": "dynamodb",
    "TransactionInProgressException": "dynamodb",
    "TransactionConflictException": "dynamodb",
    "TransactionCanceledException": "dynamodb",
    "KMSInternalException": "kms",
    "KeyUnavailableException": "kms",
    "DependencyTimeoutException": "kms",
    "SlowDown": "s3",
}


class DeadlineExceeded(Exception):
    """An attempt of an outbound call refused: the request's budget is spent, or at its worst the attempt
    would end after the function does."""

    def __init__(self, service: str, operation: str, attempt_seconds: float) -> None:
        super().__init__(
            f"{service} {operation}: an attempt of up to {attempt_seconds:g} s would end after the "
            "request's deadline"
        )
        setattr(self, _SERVICE_ATTR, service)
        self.operation = operation


class Unavailable(Exception):
    """A dependency's failure worth retrying, lifted out of its library's own wrapping: PynamoDB wraps a
    throttle, a timeout and a failed condition alike in ``PutError``/``UpdateError``…, and an adapter's
    ``except PutError`` meant for a concurrent change would take a throttle for one (``409`` instead of
    ``503``). ``chalicelib.adapters.dynamo.base`` raises this in their place."""

    def __init__(self, service: str, cause: BaseException) -> None:
        super().__init__(f"{service} unavailable: {type(cause).__name__}: {cause}")
        setattr(self, _SERVICE_ATTR, service)
        self.kind = kind_of(cause) or "unavailable"


@dataclass(frozen=True)
class Deadline:
    """The request's deadline and the function's end less the margin (``time.monotonic`` seconds), and
    the budget the deadline was set with."""

    soft: float
    hard: float
    budget: float


_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("cheka_deadline", default=None)


def begin_request(budget_seconds: float, lambda_context: Any = None) -> contextvars.Token[Deadline | None]:
    """Start the deadline of the request being served (``budget_seconds`` from now, never past the
    function's remaining time — the declared function timeout without a Lambda context — less
    ``LAMBDA_MARGIN_SECONDS``); give the token to ``end_request``."""
    from chalicelib.core.resources import FUNCTION_TIMEOUT_SECONDS

    now = time.monotonic()
    hard = now + FUNCTION_TIMEOUT_SECONDS - LAMBDA_MARGIN_SECONDS
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        with contextlib.suppress(TypeError, ValueError):
            hard = min(hard, now + float(remaining()) / 1000 - LAMBDA_MARGIN_SECONDS)
    return _deadline.set(Deadline(soft=min(now + budget_seconds, hard), hard=hard, budget=budget_seconds))


def end_request(token: contextvars.Token[Deadline | None]) -> None:
    """Forget the deadline ``begin_request`` set."""
    _deadline.reset(token)


def current_deadline() -> Deadline | None:
    return _deadline.get()


def check_attempt(service: str, operation: str, attempt_seconds: float, *, budgeted: bool = True) -> None:
    """Refuse an attempt (``DeadlineExceeded``) started after the request's budget is spent (unless not
    ``budgeted``: an engine call, which sizes its own wait to the function's end), or that at its worst
    (``attempt_seconds``) could end after the function does. Outside a request, every attempt goes."""
    deadline = _deadline.get()
    if deadline is None:
        return
    now = time.monotonic()
    if (budgeted and now >= deadline.soft) or now + attempt_seconds > deadline.hard:
        raise DeadlineExceeded(service, operation, attempt_seconds)


def _service_of_event(event_name: str) -> tuple[str, str]:
    parts = event_name.split(".")
    return (parts[1] if len(parts) > 1 else "aws"), (parts[2] if len(parts) > 2 else "")


def register_hooks(events: Any, attempt_seconds: float, *, budgeted: bool = True) -> None:
    """Hook a botocore event emitter (a client's ``meta.events``, or a session's): every attempt
    checked against the request's deadline (``check_attempt``), every failed call tagged with its
    service (for ``retryable_error``)."""

    def before_send(event_name: str = "", **_: Any) -> None:
        service, operation = _service_of_event(event_name)
        check_attempt(service, operation, attempt_seconds, budgeted=budgeted)

    def after_call_error(event_name: str = "", exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None and not hasattr(exception, _SERVICE_ATTR):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exception, _SERVICE_ATTR, _service_of_event(event_name)[0])

    def after_call(event_name: str = "", parsed: Any = None, **_: Any) -> None:
        # A service's error reply is raised (``ClientError``, its ``response`` this parsed dict) after
        # this event, not through ``after-call-error``: the reply's metadata names the service.
        if isinstance(parsed, dict) and "Error" in parsed:
            metadata = parsed.setdefault("ResponseMetadata", {})
            if isinstance(metadata, dict):
                metadata.setdefault(_SERVICE_ATTR, _service_of_event(event_name)[0])

    events.register("before-send", before_send, unique_id="cheka-outbound-deadline")
    events.register("after-call-error", after_call_error, unique_id="cheka-outbound-service")
    events.register("after-call", after_call, unique_id="cheka-outbound-reply-service")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (``__cause__``, PynamoDB's ``cause``), each once. Not ``__context__``:
    a bug raised while handling a timeout is a bug."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "cause", None), current.__cause__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def error_code_in(exc: BaseException, code: str) -> bool:
    """Whether AWS answered ``code`` (``TransactionInProgressException``, ``TransactionConflictException``…)
    anywhere in ``exc`` or what it wraps: a botocore ``ClientError``'s ``Error.Code``, or PynamoDB's
    ``cause_response_code``. Adapters read their store's answers through it whatever wraps them
    (``Unavailable`` over ``UpdateError`` over ``ClientError``)."""
    for seen in _chain(exc):
        if getattr(seen, "cause_response_code", None) == code:
            return True
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and (response.get("Error") or {}).get("Code") == code:
            return True
    return False


def _service_hint(chain: list[BaseException]) -> str | None:
    for exc in chain:
        service = getattr(exc, _SERVICE_ATTR, None)
        if isinstance(service, str):
            return service.lower()
        response = getattr(exc, "response", None)
        metadata = response.get("ResponseMetadata") if isinstance(response, dict) else None
        service = metadata.get(_SERVICE_ATTR) if isinstance(metadata, dict) else None
        if isinstance(service, str):
            return service.lower()
        if type(exc).__module__.startswith("pynamodb"):
            return "dynamodb"
    for exc in chain:
        response = getattr(exc, "response", None)
        code = (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
        if code in _SERVICE_OF_CODE:
            return _SERVICE_OF_CODE[str(code)]
    return None


def _client_error_kind(exc: BaseException) -> str | None:
    """Why a botocore ``ClientError`` is worth retrying ("throttled", "unavailable"); None: it is not."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    if code in THROTTLING_CODES:
        return "throttled"
    if code in UNAVAILABLE_CODES:
        return "unavailable"
    if code == "TransactionCanceledException":
        reasons = {
            str(r.get("Code")) for r in response.get("CancellationReasons") or [] if isinstance(r, dict)
        }
        return "throttled" if reasons & _RETRYABLE_CANCELLATIONS else None
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if isinstance(status, int) and (status >= 500 or status == 429):
        return "unavailable" if status >= 500 else "throttled"
    return None


def _kind(exc: BaseException) -> str | None:
    """Why ``exc`` is worth retrying ("throttled", "unavailable", "deadline"), or None."""
    if isinstance(exc, DeadlineExceeded):
        return "deadline"
    if isinstance(exc, Unavailable):
        return exc.kind
    module = type(exc).__module__
    if module.startswith("botocore") or module.startswith("urllib3"):
        from botocore.exceptions import ClientError, HTTPClientError, ReadTimeoutError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        if isinstance(exc, ClientError):
            return _client_error_kind(exc)
        if isinstance(exc, BotoConnectionError | HTTPClientError | ReadTimeoutError):
            return "unavailable"
        return None
    if isinstance(exc, TimeoutError | ConnectionError):  # the builtins (socket timeouts, resets)
        return "unavailable"
    return None


def kind_of(exc: BaseException) -> str | None:
    """Why ``exc`` (or what it wraps) is worth retrying: "throttled", "unavailable", "deadline"; None
    for a bug or a refusal (a failed condition, a missing key, bad input)."""
    return next((k for k in map(_kind, _chain(exc)) if k is not None), None)


def retryable_error(exc: BaseException) -> DomainError | None:
    """The 503 the API answers for ``exc`` when a dependency failed in a way worth retrying; None when
    ``exc`` is a bug (the API answers 500)."""
    chain = list(_chain(exc))
    kind = kind_of(exc)
    if kind is None:
        return None
    service = _service_hint(chain)
    code = SERVICE_CODES.get(service or "", "service.unavailable")
    wait = RETRY_AFTER_THROTTLED if kind == "throttled" else RETRY_AFTER_UNAVAILABLE
    name = _NAMES_ZH.get(code, "依赖服务")
    details: dict[str, Any] = {"retry_after_seconds": wait, "cause": kind}
    if code == "engine.unavailable":
        details["engine"] = "engines"
    return ServiceUnavailable(
        code,
        f"{name}暂时繁忙，请约 {wait} 秒后重试（本次操作未生效）",
        f"A service this step needs is busy; try again in about {wait} seconds (nothing was changed)",
        details=details,
    )
