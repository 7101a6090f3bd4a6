"""Log lines never carry personal data, tracebacks included: an exception holding an ID number, a phone
and a name (a pydantic error repeats the value it refused) is logged with none of them, whether logged
by the code or by the API's 500 path."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

ID_NUMBER = "11010519491231002X"
PHONE = "13812345678"
NAME = "张三丰"
ADDRESS = "北京市朝阳区建国路 88 号"
PASSPORT = "E12345678"


class Holder(BaseModel):
    age: int


def failing_deep_inside() -> None:
    """A pydantic error chained under one whose message names the person."""
    try:
        Holder.model_validate({"age": NAME})
    except ValidationError as exc:
        raise RuntimeError(f"holder {NAME} ({ID_NUMBER}, {PHONE}, {PASSPORT}) at {ADDRESS} failed") from exc


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def assert_clean(text: str) -> None:
    for personal in (ID_NUMBER, ID_NUMBER[:17], PHONE, NAME, "张", ADDRESS, "朝阳", PASSPORT):
        assert personal not in text, personal


def test_an_exception_with_an_id_number_a_phone_and_a_name_is_redacted_in_its_line_and_traceback(
    log_output: io.StringIO,
) -> None:
    from chalicelib.core.observability import logger

    try:
        failing_deep_inside()
    except RuntimeError:
        logger.exception("holder update failed", extra={"holder": {"phone": PHONE, "names": [NAME]}})
    (line,) = lines(log_output)
    assert_clean(json.dumps(line, ensure_ascii=False))
    # the traceback is there, with both exceptions and where they came from, only redacted
    assert line["exception_name"] == "RuntimeError"
    trace = line["exception"]
    assert "Traceback (most recent call last)" in trace
    assert "failing_deep_inside" in trace
    assert "The above exception was the direct cause" in trace
    assert "input_value=[REDACTED]" in trace
    assert "RuntimeError: holder [REDACTED] ([REDACTED], [REDACTED], [REDACTED]) at [REDACTED]" in trace
    assert line["holder"] == {"phone": "[REDACTED]", "names": ["[REDACTED]"]}


def test_messages_arguments_extras_notes_and_the_stack_are_redacted(log_output: io.StringIO) -> None:
    from chalicelib.core.observability import logger

    logger.warning("lookup of %s by %s", ID_NUMBER, PHONE, extra={"who": NAME, "number": int(PHONE)})
    try:
        error = ValueError(f"bad holder {ID_NUMBER}")
        error.add_note(f"typed by {NAME}")
        raise error
    except ValueError:
        logger.error("refused", exc_info=True, stack_info=True)
    text = log_output.getvalue()
    assert_clean(text)
    first, second = lines(log_output)
    assert first["message"] == "lookup of [REDACTED] by [REDACTED]"
    assert (first["who"], first["number"]) == ("[REDACTED]", "[REDACTED]")
    assert second["exception_notes"] == ["typed by [REDACTED]"]


def test_the_record_itself_is_redacted_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    """A filter rewrites the record before any handler sees it: no handler renders the raw exception."""
    from chalicelib.core.observability import RedactPersonalData

    record = logging.LogRecord("cheka", logging.ERROR, __file__, 1, "failed for %s", (PHONE,), None)
    try:
        failing_deep_inside()
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    record.stack_info = f"Stack (most recent call last):\n  holder = {NAME!r}"
    assert RedactPersonalData().filter(record)
    rendered = logging.Formatter().format(record)
    assert_clean(rendered + json.dumps(record.__dict__, default=str, ensure_ascii=False))
    assert record.exc_info is None


def test_the_apis_500_path_logs_no_personal_data(
    api: Any,
    auth: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    log_output: io.StringIO,
) -> None:
    from chalicelib.cards import views

    def boom(*_: Any, **__: Any) -> None:
        failing_deep_inside()

    monkeypatch.setattr(views, "vehicle_view", boom)
    resp = api.http.get(
        "/v1/vehicles/LSVAU218XN2183294", headers=auth("admin", **{"X-Correlation-Id": "ref-0002-test"})
    )
    assert resp.status_code == 500
    assert_clean(resp.body.decode())
    logged = [line for line in lines(log_output) if line.get("message") == "unexpected error"]
    assert len(logged) == 1
    assert logged[0]["reference"] == "ref-0002-test"
    assert "RuntimeError" in logged[0]["exception"]
    assert_clean(log_output.getvalue())


def test_chinese_text_and_refused_values_are_redacted_but_codes_stay() -> None:
    from chalicelib.core.observability import redact

    assert redact("id.check_digit for record 0123456789abcdef0123456789abcdef") == (
        "id.check_digit for record 0123456789abcdef0123456789abcdef"
    )
    assert redact("[type=string_type, input_value={'a': '1, 2'}, input_type=dict]") == (
        "[type=string_type, input_value=[REDACTED], input_type=dict]"
    )
    reference = "e1234567-4bda-476e-bcc3-5bd439e71f5d"  # a UUID group shaped like a passport number
    assert redact(f"reference {reference}") == f"reference {reference}"
    assert redact(f"{NAME}，{ADDRESS}") == "[REDACTED]"
    assert redact(f"+86{PHONE} / 86{PHONE}") == "[REDACTED] / [REDACTED]"
