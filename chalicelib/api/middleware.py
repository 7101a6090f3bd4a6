"""The app's middleware: Lambda context and a correlation id on every log line and response, metrics and
traces on deployed stages."""

from __future__ import annotations

import re
import uuid
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from chalicelib.core.observability import get_tracer, logger, metrics
from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from chalice.app import Chalice, Request, Response

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")


def correlation_id_of(request: Request) -> str:
    given = request.headers.get(CORRELATION_HEADER.lower()) or ""
    if _CORRELATION_OK.match(given):
        return given
    context = request.context or {}
    return str(context.get("requestId") or uuid.uuid4())


@lru_cache(maxsize=1)
def _lambda_middleware() -> tuple[Any, ...]:
    """Lambda context on logs; traces and metrics on deployed stages (outermost first)."""
    from chalice.app import ConvertToMiddleware

    chain = [ConvertToMiddleware(logger.inject_lambda_context(clear_state=True))]
    if not get_settings().is_local:
        chain.append(ConvertToMiddleware(get_tracer().capture_lambda_handler))
        chain.append(ConvertToMiddleware(metrics.log_metrics(raise_on_empty_metrics=False)))
    return tuple(chain)


def _on_every_event(event: Any, get_response: Any) -> Any:
    """Runs the Lambda middleware, built on the first event so that a cold import reads no settings."""
    handler = get_response
    for middleware in reversed(_lambda_middleware()):
        handler = partial(middleware, get_response=handler)
    return handler(event)


def wire(app: Chalice) -> None:
    """Register the middleware on ``app``: context and correlation id on logs, metrics, traces."""
    app.register_middleware(_on_every_event)

    @app.middleware("http")
    def correlation(event: Request, get_response: Any) -> Response:
        cid = correlation_id_of(event)
        logger.set_correlation_id(cid)
        response: Response = get_response(event)
        response.headers[CORRELATION_HEADER] = cid
        return response
