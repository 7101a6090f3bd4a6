"""The app's middleware: Lambda context and a correlation id on every log line and response, metrics and
traces on deployed stages, Chalice's own error replies in the API's error model, and one access line per
request (``chalicelib.api.access_log``: the route template, the status, the client's IP truncated).

Chalice answers some requests itself before a view runs (405 for a method the path lacks, 415 for a
content type the route does not take, 400 for a binary response the client did not accept, 500 when
middleware fails); ``error_model`` rewrites those bodies to ``{code, message_zh, message_en}`` like
every other error. Unknown paths never reach the function on AWS (API Gateway answers them: infra maps
that answer to ``route.not_found``, 404); ``chalice local`` answers them in ``chalicelib.local.gateway``.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.api.access_log import log_access
from chalicelib.api.headers import secure
from chalicelib.core import lazy
from chalicelib.core.observability import handler_chain, logger, report_logging_failure

if TYPE_CHECKING:
    from chalice.app import Chalice, Request, Response

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
_CORRELATION_KEY = "chekaCorrelationId"


def correlation_id_of(request: Request) -> str:
    """The request's correlation id: the caller's (when well-formed), else API Gateway's request id,
    else one made here, kept on the request so that every part of one request tells the same id."""
    context = request.context if isinstance(request.context, dict) else {}
    known = context.get(_CORRELATION_KEY)
    if isinstance(known, str):
        return known
    given = request.headers.get(CORRELATION_HEADER.lower()) or ""
    cid = given if _CORRELATION_OK.match(given) else str(context.get("requestId") or uuid.uuid4())
    if isinstance(request.context, dict):
        request.context[_CORRELATION_KEY] = cid
    return cid


def _chalice_error_body(code: str, response: Response, request: Request) -> dict[str, Any]:
    """The error-model body for one of Chalice's own error replies (``{"Code", "Message"}``)."""
    if code == "MethodNotAllowedError":
        given = response.headers.get("Allow", "")
        allowed = given if isinstance(given, str) else ", ".join(given)
        return {
            "code": "method.not_allowed",
            "message_zh": f"该地址不支持 {request.method} 请求（支持：{allowed}）",
            "message_en": f"{request.method} is not allowed here (allowed: {allowed})",
            "details": {"allowed": [m.strip() for m in allowed.split(",") if m.strip()]},
        }
    if code == "UnsupportedMediaType":
        given = (request.headers.get("content-type") or "")[:100]
        return {
            "code": "media_type.unsupported",
            "message_zh": "不支持该请求内容类型",
            "message_en": f"This route does not take content of type {given!r}",
        }
    if code == "BadRequest":
        return {
            "code": "request.accept",
            "message_zh": "请求的 Accept 头与响应类型不符",
            "message_en": "The request's Accept header does not admit this response's content type",
        }
    if code == "InternalServerError":
        reference = correlation_id_of(request)
        return {
            "code": "internal",
            "message_zh": f"服务器内部错误，请联系客服并提供编号 {reference}",
            "message_en": f"Internal error; quote reference {reference} when you contact support",
            "reference": reference,
        }
    return {
        "code": f"http.{response.status_code}",
        "message_zh": "请求未被接受",
        "message_en": "The request was not accepted",
    }


def error_model(response: Response, request: Request) -> Response:
    """``response`` with a body of Chalice's own (``{"Code", "Message"}``) rewritten in the error model."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or not isinstance(body.get("Code"), str):
        return response
    rewritten = _chalice_error_body(body["Code"], response, request)
    response.body = json.dumps(rewritten, ensure_ascii=False, separators=(",", ":"))
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    return response


@lazy.once
def _lambda_middleware() -> tuple[Any, ...]:
    """Lambda context on logs; traces and metrics on deployed stages (outermost first)."""
    from chalice.app import ConvertToMiddleware

    return tuple(ConvertToMiddleware(decorate) for decorate in handler_chain())


def _on_every_event(event: Any, get_response: Any) -> Any:
    """Runs the Lambda middleware, built on the first event so that a cold import reads no settings.

    Registered for every event type: the API, the outbox consumer (``lambda_function``) and the
    schedules are all traced and flush their metrics on deployed stages."""
    handler = get_response
    for middleware in reversed(_lambda_middleware()):
        handler = partial(middleware, get_response=handler)
    return handler(event)


def _correlate_logs(cid: str) -> None:
    """Put ``cid`` on the request's log lines; logging that cannot take it never fails the request."""
    try:
        logger.set_correlation_id(cid)
    except Exception as exc:
        report_logging_failure("correlation id not set on logs", exc)


def _log_unexpected_error(cid: str) -> None:
    """Log the error being handled (the 500 is answered whether or not the line could be written)."""
    try:
        logger.exception("unexpected error", extra={"reference": cid})
    except Exception as exc:
        report_logging_failure("unexpected error not logged", exc)


def _begin_deadline(request: Request) -> Any:
    """Start the request's outbound deadline (``chalicelib.core.outbound``); its token, or None.

    Only in a Lambda execution environment, where the function ends at its timeout and API Gateway
    gives up at 29 s. ``chalice local`` and the tests end no request at a timeout: there each call is
    bounded by its own timeouts and retries, and a slow engine step on a busy machine is not cut short
    (the deadline itself is proven by ``tests/unit/test_outbound.py`` and ``test_engine_deadline.py``)."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    from chalicelib.core import outbound
    from chalicelib.core.settings import get_settings

    try:
        budget = get_settings().outbound_request_seconds
    except Exception:  # settings that do not load fail the view itself, with its own answer
        return None
    return outbound.begin_request(budget, getattr(request, "lambda_context", None))


def _end_deadline(token: Any) -> None:
    if token is not None:
        from chalicelib.core import outbound

        outbound.end_request(token)


def wire(app: Chalice) -> None:
    """Register the middleware on ``app``: context and correlation id on logs, metrics, traces,
    Chalice's own error replies in the error model, and the request's access line."""
    app.register_middleware(_on_every_event)

    @app.middleware("http")
    def correlation(event: Request, get_response: Any) -> Response:
        started = time.perf_counter()
        cid = correlation_id_of(event)
        _correlate_logs(cid)
        deadline = _begin_deadline(event)  # every outbound attempt of the request checked against it
        try:
            response: Response = get_response(event)
        except Exception:
            from chalice.app import Response

            _log_unexpected_error(cid)
            response = Response(body={"Code": "InternalServerError", "Message": ""}, status_code=500)
        finally:
            _end_deadline(deadline)
        response = error_model(response, event)
        response = secure(response, event)
        response.headers[CORRELATION_HEADER] = cid
        log_access(event, response, (time.perf_counter() - started) * 1000)
        return response
