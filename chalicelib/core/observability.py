"""Logger, metrics and tracer, each created once, on first use.

``logger`` and ``metrics`` are importable names that build the Powertools object (and read the settings)
the first time one of their attributes is used, so importing a module that logs costs a cold start
nothing. Logs never carry personal data: beyond not logging it, a filter redacts anything shaped like
an ID number or a phone number from every record (defence in depth).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.core import lazy
from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

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


@lru_cache(maxsize=1)
def get_logger() -> Logger:
    from aws_lambda_powertools import Logger

    settings = get_settings()
    service_logger = Logger(service=settings.service_name, level=settings.log_level)
    service_logger.addFilter(RedactPersonalData())
    return service_logger


@lru_cache(maxsize=1)
def get_metrics() -> Metrics:
    from aws_lambda_powertools import Metrics

    settings = get_settings()
    return Metrics(namespace=settings.metrics_namespace, service=settings.service_name)


@lru_cache(maxsize=1)
def get_tracer() -> Any:
    """X-Ray tracer, created only where traces are sent (it is heavy to import)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=get_settings().service_name)


#: The service logger (``get_logger()``), created on first use.
logger = lazy.instance(get_logger)
#: The service metrics (``get_metrics()``), created on first use.
metrics = lazy.instance(get_metrics)


def emit(name: str, value: float = 1.0, unit: str = "Count", **dimensions: str) -> None:
    """Emit one metric (``core.metric_names.Metric``) with ``dimensions`` beside ``service``.

    (Interface fixed here; the observability work of the deployed-stages issue fills in the EMF output.)
    """
    del name, value, unit, dimensions
