"""The command line's one JSON printer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from enum import Enum

import pytest
from pydantic import BaseModel

from chalicelib.cli.output import fail, print_json
from chalicelib.kernel.errors import NotFound
from chalicelib.kernel.operators import Operator


class _Colour(Enum):
    WHITE = "白"


class _Card(BaseModel):
    iccid: str
    operator: Operator
    updated_at: datetime


_AT = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def test_a_model_prints_as_its_json_dump_indented(capsys: pytest.CaptureFixture[str]) -> None:
    # given
    card = _Card(iccid="89860112345678901237", operator=Operator.CHINA_UNICOM, updated_at=_AT)
    # when
    print_json(card)
    # then
    out = capsys.readouterr().out
    assert json.loads(out) == card.model_dump(mode="json")
    assert out == json.dumps(card.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"


def test_datetimes_and_dates_print_as_iso_8601(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    print_json({"at": _AT, "day": date(2026, 3, 3)})
    # then
    assert json.loads(capsys.readouterr().out) == {"at": "2026-03-02T16:00:00+00:00", "day": "2026-03-03"}


def test_chinese_prints_as_written_not_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    print_json({"brand": "启航", "colour": _Colour.WHITE})
    # then
    out = capsys.readouterr().out
    assert "启航" in out
    assert "\\u" not in out
    assert json.loads(out) == {"brand": "启航", "colour": "白"}


def test_models_inside_dicts_and_lists_print_as_their_json_dump(capsys: pytest.CaptureFixture[str]) -> None:
    # given
    card = _Card(iccid="89860112345678901237", operator=Operator.CHINA_UNICOM, updated_at=_AT)
    # when
    print_json({"cards": [card], "count": 1})
    # then
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"cards": [card.model_dump(mode="json")], "count": 1}
    assert doc["cards"][0]["updated_at"] == "2026-03-02T16:00:00Z"


def test_a_list_prints_as_a_json_array(capsys: pytest.CaptureFixture[str]) -> None:
    print_json([1, "二", None])
    assert json.loads(capsys.readouterr().out) == [1, "二", None]


def test_without_indent_a_document_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # when two documents are printed as JSON Lines
    print_json({"a": [1, 2]}, indent=None)
    print_json({"b": "短信"}, indent=None)
    # then each is one line
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"a": [1, 2]}, {"b": "短信"}]


def test_a_refusal_prints_its_error_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # given
    refusal = NotFound("party.not_found", "未找到该登记人", "No party with this id", field="holder_id")
    # when
    with pytest.raises(SystemExit) as exit_:
        fail(refusal)
    # then
    assert exit_.value.code == 2
    assert json.loads(capsys.readouterr().out) == {"error": refusal.to_dict()}
