"""Logger, metrics and tracer, each created once, on first use.

``logger`` and ``metrics`` are importable names that build the Powertools object (and read the settings)
the first time one of their attributes is used, so importing a module that logs costs a cold start
nothing.

Logs never carry personal data: beyond not logging it, a filter redacts the whole record (message,
extras, the exception with its traceback and notes, the stack) of anything shaped like an ID or permit
number or a phone number, of pydantic's ``input_value=…`` and of any Chinese text (our log lines are
English: Chinese inside one is a name or an address that came in with an exception).

Metrics are CloudWatch EMF lines printed to stdout, one per ``emit`` (CloudWatch turns them into
metrics on deployed stages; locally they are just lines of the output), with the Powertools EMF
serializer. ``lambda_handler`` gives a plain Lambda handler what the API's middleware gives the API:
the Lambda context on logs and, on deployed stages, X-Ray traces and a metrics flush.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.core import lazy
from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

F = TypeVar("F", bound=Callable[..., Any])

REDACTED = "[REDACTED]"

_CJK_CHAR = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef\u00b7"


@lazy.once
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """What ``redact`` removes, compiled with the first log line rather than at a cold start."""
    # 18-char resident IDs and permits, 15-digit legacy IDs, mainland mobiles (with or without +86),
    # and letter-prefixed document numbers (passports, 港澳/台湾 passes: one or two letters, 7–10
    # digits; not inside a hyphenated token, where a UUID's group can look like one).
    pii = re.compile(
        r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|(?:\+?86)?1[3-9]\d{9})(?![0-9A-Za-z])"
        r"|(?<![0-9A-Za-z-])[A-Za-z]{1,2}\d{7,10}(?![0-9A-Za-z-])"
    )
    # pydantic's error text repeats the value it refused: ``input_value='张三', input_type=str``.
    input_value = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.MULTILINE)
    # Runs of CJK text (with the punctuation, spaces, digits and Latin letters between CJK characters,
    # so an address's house number goes with it): names and addresses.
    cjk = re.compile(f"[{_CJK_CHAR}](?:[{_CJK_CHAR}0-9A-Za-z #\\-]*[{_CJK_CHAR}])?")
    return pii, input_value, cjk


def redact(text: str) -> str:
    """``text`` without ID numbers, phones, refused input values or Chinese text."""
    pii, input_value, cjk = _patterns()
    if "input_value=" in text:
        text = input_value.sub("input_value=" + REDACTED, text)
    return cjk.sub(REDACTED, pii.sub(REDACTED, text))


def redact_value(value: Any) -> Any:
    """``value`` with every string in it redacted (dicts, lists and tuples walked; numbers that look
    like an ID or a phone replaced; any other object by its redacted text)."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int):
        return REDACTED if _patterns()[0].fullmatch(str(value)) else value
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact(str(value))


#: Attributes every ``LogRecord`` has (not extras); ``message``/``asctime`` are set by formatters.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _exception_text(exc_info: Any) -> tuple[str, str | None, list[str] | None]:
    """The exception as a formatter would render it (with its chain), its type name and notes."""
    if exc_info is True:
        import sys

        exc_info = sys.exc_info()
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return "", None, None
    text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    notes = getattr(exc_info[1], "__notes__", None)
    return text, exc_info[0].__name__, list(notes) if isinstance(notes, list) else None


class RedactPersonalData(logging.Filter):
    """Rewrites the whole record with personal data redacted: the message (its arguments merged in),
    every extra, the exception (formatted here, redacted and stored as the ``exception`` field the
    Powertools formatter prints instead of rendering ``exc_info`` again) and ``stack_info``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact_value(record.msg) if not isinstance(record.msg, str) else redact(record.msg)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                record.__dict__[key] = redact_value(value)
        if record.exc_info:
            text, name, notes = _exception_text(record.exc_info)
            if text:
                record.__dict__["exception"] = redact(text)
                record.__dict__["exception_name"] = name
                if notes:
                    record.__dict__["exception_notes"] = [redact(str(n)) for n in notes]
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


@lazy.once
def get_logger() -> Logger:
    """The service logger: one Powertools ``Logger`` per process, built by one thread, writing every
    record once, as a JSON line.

    Chalice names its own logger after the app, ``cheka``, the service's name, and gives it a plain-text
    stdout handler: the logging logger the Powertools ``Logger`` configures already has that handler
    first. A second Powertools ``Logger`` on the name (two threads of ``chalice local`` building it at
    once, or the cache cleared) would take that first handler, a plain ``logging.Formatter``, for its
    own, and fail the requests it served
    (``'Formatter' object has no attribute 'clear_state'``). So the ``Logger`` is built under a lock
    (``lazy.once``), is handed the Powertools handler when there already is one, and Chalice's
    plain-text handler (every line it printed was a JSON line's duplicate) is removed."""
    from aws_lambda_powertools import Logger

    settings = get_settings()
    std_logger = logging.getLogger(settings.service_name)
    handler = getattr(std_logger, "powertools_handler", None)
    service_logger = Logger(
        service=settings.service_name,
        level=settings.log_level,
        logger_handler=handler if isinstance(handler, logging.Handler) else None,
    )
    _drop_plain_console_handlers(std_logger, service_logger.registered_handler)
    if not any(isinstance(f, RedactPersonalData) for f in std_logger.filters):
        service_logger.addFilter(RedactPersonalData())
    return service_logger


def _drop_plain_console_handlers(std_logger: logging.Logger, keep: logging.Handler) -> None:
    """Remove from ``std_logger`` every console handler but ``keep`` that formats as plain text
    (Chalice's own): ``keep`` writes each record already, as JSON."""
    from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

    for handler in list(std_logger.handlers):
        plain = not isinstance(handler.formatter, BasePowertoolsFormatter)
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if handler is not keep and plain and console:
            std_logger.removeHandler(handler)


@lazy.once
def get_metrics() -> Metrics:
    from aws_lambda_powertools import Metrics

    settings = get_settings()
    return Metrics(namespace=settings.metrics_namespace, service=settings.service_name)


@lazy.once
def get_tracer() -> Any:
    """X-Ray tracer, created only where traces are sent (it is heavy to import)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=get_settings().service_name)


#: The service logger (``get_logger()``), created on first use.
logger = lazy.instance(get_logger)
#: The service metrics (``get_metrics()``), created on first use.
metrics = lazy.instance(get_metrics)


# --------------------------------------------------------------------------------------------- metrics

_emf_lock = threading.Lock()


@lru_cache(maxsize=1)
def _emf() -> AmazonCloudWatchEMFProvider:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    settings = get_settings()
    return AmazonCloudWatchEMFProvider(namespace=settings.metrics_namespace, service=settings.service_name)


@lru_cache(maxsize=1)
def _alarmed() -> frozenset[str]:
    from chalicelib.core.metric_names import ALARMED

    return frozenset(m.value for m in ALARMED)


def _metrics_disabled() -> bool:
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    return is_metrics_disabled()


def _emf_line(
    provider: AmazonCloudWatchEMFProvider, name: str, value: float, unit: str, dims: dict[str, str]
) -> str:
    provider.add_metric(name=name, unit=unit, value=value)
    for key, dim in dims.items():
        provider.add_dimension(name=key, value=dim)
    try:
        return json.dumps(provider.serialize_metric_set(), separators=(",", ":"), ensure_ascii=False)
    finally:
        provider.clear_metrics()


def emit(name: str, value: float = 1.0, unit: str = "Count", **dimensions: str) -> None:
    """Emit one metric (``core.metric_names.Metric``) with ``dimensions`` beside ``service``: one EMF
    line on stdout. A metric in ``metric_names.ALARMED`` is emitted a second time with ``service``
    alone, the dimension set its alarm reads. Dimension values are codes, never personal data.

    Nothing is printed when ``POWERTOOLS_METRICS_DISABLED`` says so (the test suite, by default); a
    metric that cannot be serialised is logged, never raised: a metric never fails a request.
    """
    if _metrics_disabled():
        return
    name = str(name)
    dims = {k: str(v) for k, v in dimensions.items() if v is not None}
    try:
        with _emf_lock:
            provider = _emf()
            lines = [_emf_line(provider, name, value, unit, dims)]
            if dims and name in _alarmed():
                lines.append(_emf_line(provider, name, value, unit, {}))
    except Exception:
        logger.exception("metric not emitted", extra={"metric": name})
        return
    print("\n".join(lines), flush=True)


def flush_metrics() -> None:
    """Print what was added to ``metrics`` (``metrics.add_metric``) since the last flush, if anything."""
    if not get_metrics().metric_set:
        return
    get_metrics().flush_metrics()


# ---------------------------------------------------------------------------------------- handlers


def handler_chain() -> tuple[Callable[[Callable[..., Any]], Callable[..., Any]], ...]:
    """Decorators of an ``(event, context)`` Lambda handler, outermost first: the Lambda context on
    logs; on deployed stages X-Ray traces (``capture_lambda_handler``) and a metrics flush."""
    chain: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [_context_on_logs]
    if not get_settings().is_local:
        chain.append(get_tracer().capture_lambda_handler)
        chain.append(_flushing)
    return tuple(chain)


def _context_on_logs(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` with the Lambda context on every log line of its invocation (Powertools'
    ``inject_lambda_context``, state cleared). Logging that cannot be set up never fails the
    invocation: it is reported, and the handler runs all the same (its result or its own error is
    what the caller gets)."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        entered: list[bool] = []
        result: list[Any] = []

        def inner(inner_event: Any, inner_context: Any, *args: Any, **kwargs: Any) -> Any:
            entered.append(True)
            result.append(handler(inner_event, inner_context, *args, **kwargs))
            return result[0]

        try:
            return logger.inject_lambda_context(inner, clear_state=True)(event, context)
        except Exception as exc:
            if result:  # failed after the handler answered: the answer stands
                report_logging_failure("log context not set", exc)
                return result[0]
            if entered:  # the handler's own error
                raise
            report_logging_failure("log context not set", exc)
            return handler(event, context)

    return run


def report_logging_failure(what: str, exc: Exception) -> None:
    """Say ``what`` logging could not do because of ``exc`` (through the service logger when it still
    logs, else on stderr), redacted, never raising: a logging problem never fails a request."""
    try:
        logger.error(what, extra={"error": f"{type(exc).__name__}: {exc}"})
    except Exception:
        import contextlib
        import sys

        with contextlib.suppress(Exception):  # nowhere left to report to
            sys.stderr.write(f"{what}: {type(exc).__name__}: {redact(str(exc))}\n")


def _flushing(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            flush_metrics()

    return run


def lambda_handler(handler: F) -> F:
    """Decorate a plain Lambda handler ``(event, context)`` (e.g. the engines function) with
    ``handler_chain()``, built on the first invocation so that importing costs nothing. A call without
    a Lambda context (in this process) runs the handler alone."""
    built: list[Callable[..., Any]] = []

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        if context is None:  # called in this process, not by Lambda: no invocation to trace
            return handler(event, context)
        if not built:
            wrapped: Callable[..., Any] = handler
            for decorate in reversed(handler_chain()):
                wrapped = decorate(wrapped)
            built.append(wrapped)
        return built[0](event, context)

    return run  # type: ignore[return-value]
