"""Inventory import and card moves, against in-memory fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chalicelib.cards.domain.inventory import CardFunction, CardState
from chalicelib.cards.inventory import import_inventory, parse_inventory
from chalicelib.kernel.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from chalicelib.local.synthetic import inventory_csv, inventory_rows
from tests.fakes.cards import FakeInventory, put_card_state

HEADER = "vin,engine_no,brand,model,colour,production_date,dealer_code,iccid,msisdn\n"
GOOD = "LSVAU218XN2183294,E12345678,启航,QH-5,白,2025-03-01,D100,89860112345678901237,1460012345678\n"


def fixed_clock() -> datetime:
    return datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def run(text: str, repo: FakeInventory, fmt: str = "csv"):
    return import_inventory(parse_inventory(text, fmt, max_rows=1000), repo, actor="t", clock=fixed_clock)  # type: ignore[arg-type]


def test_import_creates_vehicles_cards_and_history() -> None:
    # Given an empty inventory and a file of 20 vehicles with two cards each
    repo = FakeInventory()
    text = inventory_csv(20, seed=3, cards_per_vehicle=2)
    # When it is imported
    report = run(text, repo)
    # Then every vehicle and card exists, each card unregistered with emergency functions only
    assert (report.vehicles_created, report.cards_created, report.errors) == (20, 40, [])
    card = next(iter(repo.cards.values()))
    assert card.state is CardState.UNREGISTERED
    assert card.functions == [CardFunction.EMERGENCY]
    assert [e.event for e in repo.history(card.iccid)] == ["imported"]


def test_reimporting_the_same_file_changes_nothing() -> None:
    repo = FakeInventory()
    text = inventory_csv(10, seed=4)
    run(text, repo)
    writes = repo.writes
    report = run(text, repo)
    assert repo.writes == writes
    assert (report.vehicles_created, report.cards_created, report.vehicles_updated, report.cards_updated) == (
        0,
        0,
        0,
        0,
    )
    assert (report.vehicles_unchanged, report.cards_unchanged) == (10, 10)


def test_reimport_keeps_a_registered_cards_state() -> None:
    repo = FakeInventory()
    run(HEADER + GOOD, repo)
    put_card_state(repo, "89860112345678901237", CardState.PENDING, actor="t", holder_id="p1")
    run(HEADER + GOOD, repo)
    assert repo.cards["89860112345678901237"].state is CardState.PENDING


def test_changed_facts_are_updated_without_touching_state() -> None:
    repo = FakeInventory()
    run(HEADER + GOOD, repo)
    changed = GOOD.replace(",白,", ",黑,").replace("1460012345678", "1460087654321")
    report = run(HEADER + changed, repo)
    assert (report.vehicles_updated, report.cards_updated) == (1, 1)
    assert repo.vehicles["LSVAU218XN2183294"].colour == "黑"
    card = repo.cards["89860112345678901237"]
    assert card.msisdn == "1460087654321"
    assert card.version == 2
    assert [e.event for e in repo.history(card.iccid)] == ["imported", "facts_updated"]


def test_bad_rows_are_reported_and_good_rows_still_imported() -> None:
    # Given a file with one good row and rows broken in different fields
    rows = [
        GOOD,
        GOOD.replace("LSVAU218XN2183294", "LSVAU2181N2183294").replace("901237", "901245"),  # VIN check digit
        "LFV2A21KXF3043455,E1,启航,QH-5,白,,,89860112345678901245,1460012345670\n",  # engine number too short
        "LFV2A21KXF3043455,E12345678,启航,QH-5,白,2099-01-01,,89860112345678901252,1460012345671\n",  # future
        "LFV2A21KXF3043455,E12345678,启航,QH-5,白,,,89860312345678901235,1460012345672\n",  # operators differ
        GOOD.replace("1460012345678", "1460012345679"),  # duplicate ICCID in the file
    ]
    repo = FakeInventory()
    report = run(HEADER + "".join(rows), repo)
    # Then each bad row is reported by line, field and code, and the good one is imported
    found = {(e.row, e.field, e.code) for e in report.errors}
    assert (3, "vin", "vin.check_digit") in found
    assert (4, "engine_no", "engine_no.format") in found
    assert (5, "production_date", "production_date.invalid") in found
    assert (6, "msisdn", "card.operator_mismatch") in found
    assert (7, "iccid", "import.duplicate_iccid") in found
    assert report.rejected_rows == 5
    assert list(repo.cards) == ["89860112345678901237"]
    assert all(e.message_zh and e.message_en for e in report.errors)


def test_rows_of_one_vehicle_must_agree() -> None:
    repo = FakeInventory()
    second = GOOD.replace("白", "红").replace("89860112345678901237", "89860112345678901245")
    report = run(HEADER + GOOD + second, repo)
    assert [(e.row, e.code) for e in report.errors] == [(3, "import.vehicle_mismatch")]


def test_a_card_cannot_move_to_another_vehicle_by_import() -> None:
    repo = FakeInventory()
    run(HEADER + GOOD, repo)
    moved = GOOD.replace("LSVAU218XN2183294", "LFV2A21KXF3043455")
    report = run(HEADER + moved, repo)
    assert [e.code for e in report.errors] == ["card.vin_conflict"]
    assert repo.cards["89860112345678901237"].vin == "LSVAU218XN2183294"


def test_json_rows_and_aliases() -> None:
    repo = FakeInventory()
    rows = list(inventory_rows(3, seed=9))
    for r in rows:
        r["color"] = r.pop("colour")
    report = run(json.dumps({"rows": rows}), repo, "json")
    assert report.cards_created == 3


def test_json_row_missing_a_value_is_a_row_error() -> None:
    repo = FakeInventory()
    rows = list(inventory_rows(2, seed=9))
    del rows[1]["engine_no"]
    report = run(json.dumps(rows), repo, "json")
    assert [(e.row, e.field, e.code) for e in report.errors] == [(2, "engine_no", "engine_no.required")]


def test_gb18030_spreadsheet_export_is_read() -> None:
    repo = FakeInventory()
    report = import_inventory(
        parse_inventory((HEADER + GOOD).encode("gb18030"), "csv", max_rows=10), repo, actor="t"
    )
    assert report.cards_created == 1
    assert repo.vehicles["LSVAU218XN2183294"].brand == "启航"


@pytest.mark.parametrize(
    ("text", "fmt", "code"),
    [
        ("", "csv", "import.empty"),
        (HEADER, "csv", "import.empty"),
        ("vin,iccid\n", "csv", "import.missing_column"),
        (HEADER.replace("dealer_code", "dealer_name") + GOOD, "csv", "import.unknown_column"),
        ("{not json", "json", "import.json"),
        ('{"rows": 3}', "json", "import.json_shape"),
    ],
)
def test_a_bad_file_is_refused_whole(text: str, fmt: str, code: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_inventory(text, fmt, max_rows=10)  # type: ignore[arg-type]
    assert info.value.code == code


def test_too_many_rows_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_inventory(inventory_csv(5), "csv", max_rows=4)


def test_state_machine_moves_and_history() -> None:
    repo = FakeInventory()
    run(HEADER + GOOD, repo)
    iccid = "89860112345678901237"
    put_card_state(repo, iccid, CardState.PENDING, actor="a", holder_id="p1")
    card = put_card_state(repo, iccid, CardState.REGISTERED, actor="op", reason="accepted")
    assert card.holder_id == "p1"
    assert CardFunction.DATA in card.functions
    card = put_card_state(repo, iccid, CardState.DEREGISTERED, actor="a")
    assert card.holder_id is None
    assert card.functions == [CardFunction.EMERGENCY]
    put_card_state(repo, iccid, CardState.UNREGISTERED, actor="a")
    events = repo.history(iccid)
    assert [(e.from_state, e.to_state) for e in events[1:]] == [
        (CardState.UNREGISTERED, CardState.PENDING),
        (CardState.PENDING, CardState.REGISTERED),
        (CardState.REGISTERED, CardState.DEREGISTERED),
        (CardState.DEREGISTERED, CardState.UNREGISTERED),
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("target", [CardState.REGISTERED, CardState.DEREGISTERED, CardState.UNREGISTERED])
def test_illegal_moves_are_refused_and_change_nothing(target: CardState) -> None:
    repo = FakeInventory()
    run(HEADER + GOOD, repo)
    with pytest.raises(Conflict) as info:
        put_card_state(repo, "89860112345678901237", target, actor="a")
    assert info.value.code == "card.illegal_transition"
    assert repo.cards["89860112345678901237"].version == 1
    assert len(repo.history("89860112345678901237")) == 1


def test_unknown_card_is_404() -> None:
    with pytest.raises(NotFound):
        put_card_state(FakeInventory(), "89860112345678901237", CardState.PENDING, actor="a")
