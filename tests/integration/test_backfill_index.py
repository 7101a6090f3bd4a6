"""The in-service feed and the sparse backfill index on the embedded AWS (moto) with the real adapters:
what an import writes (sealed phones, the index, idempotence), and how the index follows every write of
a card's state through the real lifecycle (a pending or registered card leaves it in the same write)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from chalicelib.adapters.dynamo.agents import encode_cursor
from chalicelib.adapters.dynamo.backfill import DynamoBackfillTargets
from chalicelib.campaigns.domain import Target
from chalicelib.campaigns.in_service import parse_in_service
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES, Card, CardState, backfill_shard_of
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import BadRequest
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.sms.domain import subject_for
from tests.fakes.cards import put_card_state
from tests.integration.test_lifecycle import (
    World,
    answer,
    card_now,
    drain,
    import_cards,
    make_world,
    person,
    register,
)

PHONE = "13800138000"


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


def every_target(targets: DynamoBackfillTargets, limit: int = 1) -> dict[str, Target]:
    """The whole index, shard by shard and page by page (``limit`` targets a page)."""
    found: dict[str, Target] = {}
    for shard in BACKFILL_SHARD_NAMES:
        cursor: str | None = None
        while True:
            page, cursor = targets.page(shard, cursor, limit)
            assert all(backfill_shard_of(t.iccid) == shard for t in page)
            found.update({t.iccid: t for t in page})
            if cursor is None:
                break
    return found


def mark(text: str) -> dict[str, object]:
    report = deps.in_service_import().run(parse_in_service(text, "csv", max_rows=100), actor="ops")
    return report.model_dump()


def in_index(iccid: str) -> bool:
    page, _ = deps.backfill_targets().page(backfill_shard_of(iccid), None, 100)
    return iccid in {t.iccid for t in page}


def raw_card(iccid: str) -> dict[str, object]:
    table = get_settings().table_name("cards")
    item: dict[str, object] = client("dynamodb").get_item(TableName=table, Key={"iccid": {"S": iccid}})[
        "Item"
    ]
    return item


def test_an_import_fills_the_index_with_sealed_phones_and_a_reimport_changes_nothing(aws: None) -> None:
    # Given three vehicles of the inventory, the second with two cards
    first, second, third = import_cards(Operator.CHINA_UNICOM, 3, seed=41)
    pair = import_cards(Operator.CHINA_MOBILE, 1, seed=42, cards_per_vehicle=2)
    text = (
        "iccid,vin,in_service_since,contact_phone\n"
        f"{first.iccid},,2025-05-01,{PHONE}\n"
        f",{pair[0].vin},2025-06-01,\n"
        f"{second.iccid},,2999-01-01,\n"  # in the future: refused
        "89860112345678901260,,2025-05-01,\n"  # no such card: refused
    )
    # When the feed is imported
    report = mark(text)
    # Then good rows mark their cards (every card of a VIN row) and bad rows are reported alone
    assert (report["cards_marked"], report["rejected_rows"]) == (3, 2)
    assert [(e["row"], e["code"]) for e in report["errors"]] == [  # type: ignore[attr-defined]
        (4, "in_service_since.invalid"),
        (5, "card.not_found"),
    ]
    # And the index holds exactly those cards, read shard by shard, page by page
    targets = DynamoBackfillTargets()
    found = every_target(targets)
    assert set(found) == {first.iccid, pair[0].iccid, pair[1].iccid}
    assert found[first.iccid].in_service_since == date(2025, 5, 1)
    assert found[pair[0].iccid].contact_phone_sealed is None
    # And the phone is sealed at rest, looked up by its keyed hash, and opens to the number
    phone_hash = deps.sms_code_service().phone_hash(PHONE)
    assert found[first.iccid].contact_phone_hash == phone_hash
    assert PHONE not in json.dumps(raw_card(first.iccid), default=str)
    sealed = found[first.iccid].contact_phone_sealed
    assert sealed is not None
    assert deps.sealer().open(sealed) == PHONE
    # And the owner who signs in with that phone finds the card (the in-app notice)
    assert [t.iccid for t in targets.of_owner(subject_for(phone_hash))] == [first.iccid]
    # And the card's history says what changed, without the phone
    history = deps.inventory_repo().history(first.iccid)
    assert [e.event for e in history] == ["imported", "facts_updated"]
    assert PHONE not in (history[-1].reason or "")
    # When the same feed comes again, nothing changes
    again = mark(text)
    assert (again["cards_marked"], again["cards_updated"], again["cards_unchanged"]) == (0, 0, 3)
    assert card_now(first.iccid).version == 2
    # And a changed date updates the card, keeping its phone
    later = mark(f"iccid,in_service_since\n{first.iccid},2025-04-01\n")
    assert later["cards_updated"] == 1
    assert every_target(targets, 100)[first.iccid].contact_phone_hash == phone_hash
    assert third.iccid not in found
    # And `current` reads the cards as they are, an unknown one as None
    now = targets.current([first.iccid, third.iccid, "89860112345678901260"])
    assert now[first.iccid] is not None
    assert now[third.iccid] == Target(third.iccid, third.vin, "unregistered", None, None, None, indexed=False)
    assert now["89860112345678901260"] is None
    # And a cursor of one shard is refused on another
    shard = backfill_shard_of(pair[0].iccid)
    cursor = encode_cursor({"iccid": {"S": pair[0].iccid}, "backfill_shard": {"S": shard}})
    other = next(s for s in BACKFILL_SHARD_NAMES if s != shard)
    assert targets.page(shard, cursor, 10)[0] == [
        t
        for t in every_target(targets).values()
        if backfill_shard_of(t.iccid) == shard and t.iccid > pair[0].iccid
    ]
    for bad in (cursor, "not-a-cursor"):
        with pytest.raises(BadRequest):
            targets.page(other, bad, 1)
    # And a card being registered is no longer its contact's to be reminded of
    put_card_state(deps.inventory_repo(), first.iccid, CardState.PENDING, actor="t", holder_id="p1")
    assert targets.of_owner(subject_for(phone_hash)) == []


def test_the_index_follows_the_card_through_the_lifecycle(world: World) -> None:
    # Given a card in service
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=43)
    mark(f"iccid,in_service_since\n{card.iccid},2025-05-01\n")
    assert in_index(card.iccid)
    # When its owner submits a registration, it leaves the index in that write
    submitted = world.lifecycle.submit_registration(card.iccid, person(44), "owner:u1")
    assert submitted.record_id is not None
    assert (card_now(card.iccid).state, in_index(card.iccid)) == (CardState.PENDING, False)
    assert "backfill_shard" not in raw_card(card.iccid)
    # When the operator refuses it, the card is a target again
    drain(world)
    world.lifecycle.apply_callback(answer(submitted.record_id, card, CallbackOutcome.REJECTED))
    assert (card_now(card.iccid).state, in_index(card.iccid)) == (CardState.UNREGISTERED, True)
    assert card_now(card.iccid).in_service_since == date(2025, 5, 1)
    # When it is registered, it leaves; when the registration ends, it is back
    register(world, card, person(45))
    assert (card_now(card.iccid).state, in_index(card.iccid)) == (CardState.REGISTERED, False)
    ended = world.lifecycle.deregister(card.iccid, "owner:u1", "车辆出售 sold")
    drain(world)
    assert ended.record_id is not None
    world.lifecycle.apply_callback(answer(ended.record_id, card, CallbackOutcome.ACCEPTED))
    assert (card_now(card.iccid).state, in_index(card.iccid)) == (CardState.UNREGISTERED, True)
    # When the vehicle is scrapped, its card is retired and leaves for good; the feed cannot bring it back
    world.lifecycle.scrap(card.vin, "admin:a1")
    assert not in_index(card.iccid)
    again = mark(f"iccid,in_service_since\n{card.iccid},2025-05-02\n")
    assert [e["code"] for e in again["errors"]] == ["in_service.retired"]  # type: ignore[attr-defined]
    assert not in_index(card.iccid)


def test_the_repository_transition_keeps_the_index_a_deregistered_card_is_a_target(aws: None) -> None:
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=46)
    mark(f"iccid,in_service_since\n{card.iccid},2025-05-01\n")
    repo = deps.inventory_repo()
    moves: list[tuple[CardState, bool]] = []
    for state in (CardState.PENDING, CardState.REGISTERED, CardState.DEREGISTERED, CardState.UNREGISTERED):
        moved: Card = put_card_state(repo, card.iccid, state, actor="t", holder_id="p1")
        assert moved.in_service_since == date(2025, 5, 1)
        moves.append((state, in_index(card.iccid)))
    assert moves == [
        (CardState.PENDING, False),
        (CardState.REGISTERED, False),
        (CardState.DEREGISTERED, True),
        (CardState.UNREGISTERED, True),
    ]
    assert DynamoBackfillTargets().current([card.iccid])[card.iccid] == Target(
        card.iccid, card.vin, "unregistered", date(2025, 5, 1), None, None
    )


def test_the_demo_seed_puts_the_demo_owners_cars_in_service_and_the_cli_imports_a_feed(
    aws: None, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from chalicelib.cli.main import main
    from chalicelib.local.seed import DEMO_LOOKAHEAD, DEMO_OWNER_PHONE, DEMO_OWNER_VEHICLES

    # Given the demo seed as `make run` does it (`cheka seed`), twice
    runner = CliRunner()
    first = json.loads(runner.invoke(main, ["seed", "--vehicles", str(DEMO_LOOKAHEAD + 3)]).output)
    again = json.loads(runner.invoke(main, ["seed", "--vehicles", str(DEMO_LOOKAHEAD + 3)]).output)
    # Then the vehicles after the landing page's are in service, the first ones the demo owner's
    assert first["demo_owner_phone"] == DEMO_OWNER_PHONE
    assert 0 < len(first["backfill_vins"]) <= 3
    assert again["backfill_vins"] == first["backfill_vins"]
    assert not set(first["backfill_vins"]) & set(first["open_vins"])
    owner = subject_for(deps.sms_code_service().phone_hash(DEMO_OWNER_PHONE))
    mine = deps.backfill_targets().of_owner(owner)
    assert sorted(t.vin for t in mine) == sorted(first["backfill_vins"][:DEMO_OWNER_VEHICLES])
    # When a feed file is imported by `cheka inventory in-service`
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=47)
    feed = tmp_path / "in-service.json"
    feed.write_text(json.dumps([{"iccid": card.iccid, "in_service_since": "2025-05-01"}, {"vin": card.vin}]))
    result = runner.invoke(main, ["inventory", "in-service", str(feed)])
    # Then its report is printed, exit 1 for the refused row, and the good row's card is a target
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert (report["cards_marked"], [e["code"] for e in report["errors"]]) == (
        1,
        ["in_service_since.required"],
    )
    assert in_index(card.iccid)
