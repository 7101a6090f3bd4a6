"""Logger, metrics and tracer wired once, a correlation id on every log line and response.

Logs never carry personal data: beyond not logging it, a filter redacts anything shaped like an ID
number or a phone number from every record (defence in depth).
"""

from __future__ import annotations

import logging
import re
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from chalice.app import Chalice, Request, Response

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")

# 18-char resident IDs and permits, 15-digit legacy IDs, mainland mobiles (with or without +86).
_PII = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|(?:\+?86)?1[3-9]\d{9})(?![0-9A-Za-z])")


def redact(text: str) -> str:
    return _PII.sub("[REDACTED]", text)


class RedactPersonalData(logging.Filter):
    """Rewrites the message and string extras of a record with personal numbers redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif isinstance(record.msg, dict):
            record.msg = {k: redact(v) if isinstance(v, str) else v for k, v in record.msg.items()}
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname", "filename"):
                record.__dict__[key] = redact(value)
        return True


_settings = get_settings()
logger = Logger(service=_settings.service_name, level=_settings.log_level)
logger.addFilter(RedactPersonalData())
metrics = Metrics(namespace=_settings.metrics_namespace, service=_settings.service_name)


@lru_cache(maxsize=1)
def get_tracer() -> Any:
    """X-Ray tracer, created only where traces are sent (it is heavy to import)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=_settings.service_name)


def correlation_id_of(request: Request) -> str:
    given = request.headers.get(CORRELATION_HEADER.lower()) or ""
    if _CORRELATION_OK.match(given):
        return given
    context = request.context or {}
    return str(context.get("requestId") or uuid.uuid4())


def wire(app: Chalice) -> None:
    """Register the middleware on ``app``: context and correlation id on logs, metrics, traces."""
    from chalice.app import ConvertToMiddleware

    app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
    if not _settings.is_local:
        app.register_middleware(ConvertToMiddleware(get_tracer().capture_lambda_handler))
        app.register_middleware(ConvertToMiddleware(metrics.log_metrics(raise_on_empty_metrics=False)))

    @app.middleware("http")
    def correlation(event: Request, get_response: Any) -> Response:
        cid = correlation_id_of(event)
        logger.set_correlation_id(cid)
        response: Response = get_response(event)
        response.headers[CORRELATION_HEADER] = cid
        return response
