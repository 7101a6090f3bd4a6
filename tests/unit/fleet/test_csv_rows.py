"""Vehicles given as text: a CSV with or without a header, or VINs pasted; every row told with its line,
bad VINs and repeats refused, the good rows kept in order."""

from __future__ import annotations

import pytest

from chalicelib.fleet.csv_rows import MAX_ROWS, parse_csv, parse_pasted
from chalicelib.kernel.errors import InvalidField
from tests.unit.test_validators import with_vin_check

VIN_A = with_vin_check("LSVAA4180E2100001")
VIN_B = with_vin_check("LSVAA4180E2100002")
VIN_C = with_vin_check("LSVAA4180E2100003")


def wrong_check(vin: str) -> str:
    digit = "1" if vin[8] != "1" else "2"
    return vin[:8] + digit + vin[9:]


def test_a_csv_with_a_header_reads_the_vin_column_and_tells_bad_rows_by_their_line() -> None:
    text = (
        f"plate,vin,note\n京A1,{VIN_A},x\n京A2,{wrong_check(VIN_B)},y\n\n"
        f"京A3,{VIN_C.lower()},z\n京A4,{VIN_A},dup\n"
    )
    rows = parse_csv(text)
    assert [(r.line, r.vin, r.ok) for r in rows] == [
        (2, VIN_A, True),
        (3, wrong_check(VIN_B), False),
        (5, VIN_C, True),
        (6, VIN_A, False),
    ]
    assert rows[1].error is not None
    assert rows[1].error.code == "vin.check_digit"
    assert rows[3].error is not None
    assert rows[3].error.code == "fleet.duplicate_row"
    assert rows[3].error.details == {"first_line": 2}


def test_a_csv_without_a_header_is_one_vin_per_line_and_a_chinese_header_is_taken() -> None:
    assert [(r.line, r.ok) for r in parse_csv(f"{VIN_A}\n{VIN_B}\n")] == [(1, True), (2, True)]
    rows = parse_csv(f"\ufeff车架号\n{VIN_C}\nnot-a-vin\n")
    assert [(r.line, r.ok) for r in rows] == [(2, True), (3, False)]
    assert rows[1].error is not None
    assert rows[1].error.code == "vin.length"


def test_pasted_vins_are_split_on_separators_and_numbered_in_order() -> None:
    rows = parse_pasted([f"{VIN_A}, {VIN_B}；{VIN_C}", VIN_A])
    assert [(r.line, r.vin, r.ok) for r in rows] == [
        (1, VIN_A, True),
        (2, VIN_B, True),
        (3, VIN_C, True),
        (4, VIN_A, False),
    ]


def test_a_text_of_too_many_rows_is_refused_whole() -> None:
    with pytest.raises(InvalidField) as refused:
        parse_csv("\n".join([VIN_A] * (MAX_ROWS + 1)))
    assert refused.value.code == "fleet.too_many_rows"
