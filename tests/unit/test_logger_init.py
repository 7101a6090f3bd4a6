"""The service logger is built once per process, whatever the threads, and writes through its Powertools
handler; a logging problem never turns a request into a 500.

Chalice names its logger after the app (``cheka``, the service's name) and gives it a plain-text stdout
handler before the Powertools ``Logger`` configures the same logging logger. ``chalice local`` serves
each request on a thread: when several first requests came at once (``make run`` starting: the sandbox
operator's callbacks, the health probes), several threads built a Powertools ``Logger``; the late ones
took Chalice's handler (a plain ``logging.Formatter``) for theirs and answered 500 with
``'Formatter' object has no attribute 'clear_state'``. The process-level checks run in a fresh
interpreter: the race exists only on the first requests of a process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIRST_REQUESTS_AT_ONCE = """
import json, threading
import app as app_module
from chalice.config import Config
from chalice.local import LocalGateway

n = 16
config = Config.create(chalice_stage="local", lambda_timeout=60)
barrier = threading.Barrier(n)
statuses = []

def first_request():
    gateway = LocalGateway(app_module.app, config)
    barrier.wait()
    statuses.append(gateway.handle_request("GET", "/h5", {"host": "localhost"}, b"")["statusCode"])

threads = [threading.Thread(target=first_request) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("RESULT " + json.dumps(statuses))
"""

ONE_WRITER = """
import json, logging
import app
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from chalicelib.core.observability import get_logger

std = logging.getLogger("cheka")
first = get_logger()
first.info("probe line")
get_logger.cache_clear()
again = get_logger()
someone_elses = Logger(service="cheka")
print("RESULT " + json.dumps({
    "handlers": len(std.handlers),
    "same_object_until_cleared": get_logger() is again,
    "rebuilt": again is not first,
    "formatters": [type(l.registered_formatter).__name__ for l in (first, again, someone_elses)],
    "same_handler": again.registered_handler is first.registered_handler is someone_elses.registered_handler,
    "powertools": isinstance(again.registered_formatter, LambdaPowertoolsFormatter),
}))
"""


def run_fresh(script: str) -> tuple[Any, str]:
    """``script`` in a new interpreter at the local stage: what it printed after ``RESULT`` and its
    whole output."""
    env = {**os.environ, "CHEKA_STAGE": "local", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    (result,) = [line[len("RESULT ") :] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(result), output


def test_sixteen_first_requests_at_once_in_a_fresh_process_all_answer_200() -> None:
    statuses, output = run_fresh(FIRST_REQUESTS_AT_ONCE)
    assert statuses == [200] * 16
    assert "clear_state" not in output
    assert "Formatter" not in output


def test_the_service_logger_writes_each_line_once_as_json_and_a_rebuilt_one_uses_the_same_handler() -> None:
    facts, output = run_fresh(ONE_WRITER)
    # Chalice's plain-text handler is gone: one writer, each line once, as JSON
    assert facts["handlers"] == 1
    probe_lines = [line for line in output.splitlines() if "probe line" in line]
    assert len(probe_lines) == 1
    assert json.loads(probe_lines[0])["message"] == "probe line"
    # a Logger built again on the service's name (ours after a cache clear, or anyone's) finds the
    # Powertools handler, never a plain logging.Formatter
    assert facts["same_object_until_cleared"]
    assert facts["rebuilt"]
    assert facts["formatters"] == ["LambdaPowertoolsFormatter"] * 3
    assert facts["same_handler"]
    assert facts["powertools"]


def test_once_makes_its_object_once_when_many_threads_ask_at_the_same_time() -> None:
    from chalicelib.core import lazy

    calls: list[int] = []

    @lazy.once
    def slow() -> object:
        calls.append(1)
        time.sleep(0.05)  # long enough for every thread to ask while the first one is making it
        return object()

    barrier = threading.Barrier(12)
    got: list[object] = []

    def ask() -> None:
        barrier.wait()
        got.append(slow())

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(got) == 12
    assert all(g is got[0] for g in got)
    slow.cache_clear()
    assert slow() is not got[0]
    assert len(calls) == 2


@pytest.fixture
def service_app() -> Any:
    """The app, imported before ``log_output`` swaps the service logger's stream: Chalice, made after
    it, would not know the logger for configured and would put its own handler and level on it."""
    from app import app

    return app


def broken_formatter(*_: Any, **__: Any) -> None:
    raise AttributeError("'Formatter' object has no attribute 'clear_state'")


def test_a_logging_setup_failure_does_not_turn_a_request_into_a_500(
    service_app: Any, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    from aws_lambda_powertools import Logger
    from chalice.test import Client

    # Every way the middleware touches the logger's formatter fails, as with Chalice's handler taken
    # for the Powertools one.
    monkeypatch.setattr(Logger, "structure_logs", broken_formatter)
    monkeypatch.setattr(Logger, "append_keys", broken_formatter)
    with Client(service_app) as client:
        response = client.http.get("/h5", headers={"X-Correlation-Id": "probe-correlation-1"})
    assert response.status_code == 200
    assert b"<html" in response.body
    assert response.headers["X-Correlation-Id"] == "probe-correlation-1"
    # the failure is reported, not swallowed
    reported = [json.loads(line) for line in log_output.getvalue().splitlines() if line.strip()]
    errors = {line["message"]: line["error"] for line in reported if line["level"] == "ERROR"}
    assert "clear_state" in errors["log context not set"]
    assert "clear_state" in errors["correlation id not set on logs"]


def test_a_handler_error_still_answers_the_error_model_500_when_logging_is_broken(
    service_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools import Logger
    from chalice.test import Client

    from chalicelib.api import h5

    def failing(*_: Any, **__: Any) -> Any:
        raise RuntimeError("page store unreachable")

    monkeypatch.setattr(Logger, "structure_logs", broken_formatter)
    monkeypatch.setattr(h5, "page", failing)
    with Client(service_app) as client:
        response = client.http.get("/h5", headers={"X-Correlation-Id": "probe-correlation-2"})
    assert response.status_code == 500
    body = json.loads(response.body)
    assert body["code"] == "internal"
    assert body["reference"] == "probe-correlation-2"
