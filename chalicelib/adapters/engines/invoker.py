"""How the API reaches the engines function: an ``EngineInvoker`` takes a request and returns the reply.

``LambdaEngineInvoker`` invokes the stage's engines function synchronously. Its client waits at most
``engines_timeout_seconds`` for the reply and botocore retries nothing itself; this invoker tries an
operation a second time only when a second run cannot change anything (``IDEMPOTENT_OPS``: reading,
detecting, comparing, judging, searching) and the first was throttled or never reached the function,
never after a timeout (the function may still be at work, and the person's wait is spent). Binding and
forgetting faces are tried once. Whatever keeps the function from answering (a timeout, throttling, the
function missing, crashing or timing out itself) raises ``engine.unavailable`` (503, ``Retry-After``).

Each attempt must end before the function does. Inside an API request (``chalicelib.core.outbound``'s
deadline) the attempt waits at most ``min(engines_timeout_seconds, hard - now - connect)`` seconds for
the reply, rounded down to whole seconds (a client per read timeout, cached): a check late in the request
still runs, on a shorter wait, rather than being refused for what the full wait could take. Only when
less than ``MIN_READ_SECONDS`` would be left is the attempt refused, as ``engine.unavailable`` (the
services' engine fallbacks then apply); a ``DeadlineExceeded`` from the client is reported the same way.
The request's own budget (``outbound_request_seconds``) does not refuse an engine call: the function's
end does.

``DirectEngineInvoker`` calls the function's handler in this process (``make deploy-check`` and tests): the
same payloads, encoded to JSON and back, so what passes here passes through Lambda.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.observability import logger
from chalicelib.verification.domain.engines import EngineCause, EngineUnavailable, engine_unavailable

if TYPE_CHECKING:
    from chalicelib.engines.handler import Engines

#: Operations a second run cannot change (their answer depends on the request only).
IDEMPOTENT_OPS = frozenset(
    {
        "ping",
        "ocr.read",
        "ocr.version",
        "faces.detect",
        "faces.compare",
        "faces.version",
        "liveness.judge",
        "liveness.version",
        "index.search",
    }
)
#: Lambda's answers that mean "too busy now".
THROTTLED = frozenset({"TooManyRequestsException", "EC2ThrottledException", "ThrottlingException"})
#: Seconds the person is asked to wait after a timeout (the function was busy for the whole wait).
TIMEOUT_RETRY_AFTER = 10
#: Pause before the one retry of a throttled idempotent call.
RETRY_PAUSE_SECONDS = 0.2
#: Shortest wait for a reply worth an attempt; with less left before the function's end, none is made.
MIN_READ_SECONDS = 3
#: Seconds kept between the read timeout chosen and the function's end (the time to send the request).
READ_SLACK_SECONDS = 0.5


class EngineInvoker(Protocol):
    """Sends one request to the engines function and returns its reply (``codec``'s shapes)."""

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]: ...


def engine_of(payload: dict[str, Any]) -> str:
    """``ocr``, ``faces``, ``liveness`` or ``index``: the engine a request is for."""
    return str(payload.get("op", "engines")).split(".", 1)[0]


class LambdaEngineInvoker:
    """Invokes the engines function (``RequestResponse``) with a client whose reads time out."""

    def __init__(
        self,
        client: Any,
        function_name: str,
        *,
        client_for: Callable[[int], Any] | None = None,
        timeout_seconds: float | None = None,
        connect_seconds: float = 2.0,
    ) -> None:
        """``client``: a boto3 Lambda client with the full read timeout (``timeout_seconds``) and no
        retries of its own; ``client_for``: the same with a shorter read timeout (whole seconds), used
        when the request's deadline leaves less; ``connect_seconds``: the clients' connect timeout."""
        self._client = client
        self.function_name = function_name
        self._client_for = client_for
        self._timeout = float(client.meta.config.read_timeout) if timeout_seconds is None else timeout_seconds
        self._connect = connect_seconds
        #: The shorter clients made so far, by read timeout (a client is made once, not per call).
        self._short: dict[int, Any] = {}

    def _client_in_time(self, payload: dict[str, Any]) -> Any:
        """The client whose read timeout lets the attempt end before the function does; refused
        (``engine.unavailable``) when that would be under ``MIN_READ_SECONDS``."""
        from chalicelib.core.outbound import current_deadline

        deadline = current_deadline()
        if deadline is None:
            return self._client
        left = deadline.hard - time.monotonic() - self._connect - READ_SLACK_SECONDS
        if left >= self._timeout:
            return self._client
        read = math.floor(left)
        if read < MIN_READ_SECONDS:
            raise self._unavailable(payload, "timeout", f"{left:.1f} s left before the function's end")
        if self._client_for is None:
            return self._client
        short = self._short.get(read)
        if short is None:
            short = self._short[read] = self._client_for(read)
        return short

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        op = str(payload.get("op"))
        tries = 2 if op in IDEMPOTENT_OPS else 1
        for attempt in range(1, tries + 1):
            try:
                return self._invoke(payload)
            except _Retryable as err:
                if attempt == tries:
                    raise self._unavailable(payload, err.cause, err.detail) from err
                time.sleep(RETRY_PAUSE_SECONDS)
        raise AssertionError("unreachable")  # pragma: no cover

    def _invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        from chalicelib.core.outbound import DeadlineExceeded

        client = self._client_in_time(payload)
        try:
            response = client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(payload, separators=(",", ":")).encode(),
            )
            body = response["Payload"].read()
        except (ReadTimeoutError, DeadlineExceeded) as err:
            raise self._unavailable(payload, "timeout", str(err)) from err
        except (ConnectTimeoutError, EndpointConnectionError) as err:
            raise _Retryable("unreachable", str(err)) from err
        except ConnectionClosedError as err:  # the request may have reached the function
            raise self._unavailable(payload, "unreachable", str(err)) from err
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in THROTTLED:
                raise _Retryable("throttled", code) from err
            raise self._unavailable(payload, "error", code) from err
        if response.get("FunctionError"):
            text = body.decode("utf-8", "replace")
            cause: EngineCause = "timeout" if "Task timed out" in text else "error"
            raise self._unavailable(payload, cause, f"{response['FunctionError']}: {text[:300]}")
        reply = json.loads(body)
        if not isinstance(reply, dict):
            raise self._unavailable(payload, "error", "the reply is not an object")
        return reply

    def _unavailable(self, payload: dict[str, Any], cause: EngineCause, detail: str) -> EngineUnavailable:
        return unavailable(payload, cause, detail)


def unavailable(payload: dict[str, Any], cause: EngineCause, detail: str) -> EngineUnavailable:
    """``engine.unavailable`` for ``payload``'s engine: logged (no payload: it holds personal data) and
    counted (``EngineUnavailable`` metric, alarmed)."""
    from chalicelib.core.metric_names import Metric
    from chalicelib.core.observability import emit

    engine = engine_of(payload)
    logger.warning(
        "engine unavailable",
        extra={"engine": engine, "op": payload.get("op"), "cause": cause, "detail": detail[:300]},
    )
    emit(Metric.ENGINE_UNAVAILABLE, engine=engine, cause=cause)
    return engine_unavailable(engine, cause, TIMEOUT_RETRY_AFTER if cause == "timeout" else None)


class _Retryable(Exception):
    def __init__(self, cause: EngineCause, detail: str) -> None:
        super().__init__(detail)
        self.cause: EngineCause = cause
        self.detail = detail


class DirectEngineInvoker:
    """Calls the engines function's handler in this process, through JSON as Lambda would."""

    def __init__(self, engines: Engines | None = None) -> None:
        """``engines``: the handler's engines (default: a fresh set, models shared with the process)."""
        from chalicelib.engines.handler import Engines

        self.engines = engines or Engines()
        #: Requests handled so far, by operation (what a test or a benchmark looks at).
        self.calls: dict[str, int] = {}

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.engines.handler import dispatch

        op = str(payload.get("op"))
        self.calls[op] = self.calls.get(op, 0) + 1
        request = json.loads(json.dumps(payload))
        try:
            reply = dispatch(self.engines, request)
        except Exception as err:  # what Lambda reports as a FunctionError
            logger.exception("engine function failed", extra={"op": op})
            raise unavailable(payload, "error", type(err).__name__) from err
        return dict(json.loads(json.dumps(reply)))
