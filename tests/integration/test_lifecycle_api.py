"""The lifecycle admin routes over HTTP (Chalice's test client) and the lifecycle commands of the CLI,
against moto and the real adapters."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from chalicelib.cards.domain.inventory import Card, CardState
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.core import deps
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.operators.domain.outbox import OutboxStatus
from tests.integration.test_lifecycle import (
    World,
    answer,
    card_now,
    drain,
    events,
    import_cards,
    make_world,
    person,
    receive_all,
    register,
)

Auth = Callable[..., dict[str, str]]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def http(aws: None) -> Iterator[Any]:
    """The application with the lifecycle routes.

    Until app.py registers the lifecycle blueprint, it is registered here, once per process: Chalice
    consumes a blueprint's route options when registering it, so a second app would get it wrong; and the
    application's routes must match the declared ones that the OpenAPI document is made of.
    """
    from chalice.test import Client

    from app import app
    from chalicelib.api import lifecycle

    if "/v1/admin/outbox" not in app.routes:
        app.register_blueprint(lifecycle.bp)
    with Client(app) as client:
        yield client.http


@pytest.fixture
def world(http: Any) -> World:
    return make_world()


def push_all(world: World) -> None:
    """Dispatch what the routes committed (they stamp records with the real time, not the test's clock)."""
    world.clock.now = datetime.now(UTC)
    drain(world)


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def post(http: Any, path: str, auth: Auth, doc: Any = None, role: str = "admin") -> Any:
    payload = json.dumps(doc) if doc is not None else None
    return http.post(path, headers=auth(role, **JSON), body=payload)


def registered(world: World, seed: int) -> tuple[Card, str]:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=seed)
    owner = person(seed)
    register(world, card, owner)
    return card, owner.party_id


def test_admin_transfers_a_card_and_history_shows_it(http: Any, world: World, auth: Auth) -> None:
    card, seller = registered(world, 1)
    buyer = person(2, name="赵六")
    doc = {"holder_id": buyer.party_id, "reason": "登记人录入错误更正"}
    resp = post(http, f"/v1/admin/cards/{card.iccid}/transfer", auth, doc)
    assert resp.status_code == 200, resp.body
    outcome = body(resp)
    assert outcome["state"] == "registered"
    assert outcome["events"] == ["transfer_requested"]
    assert card_now(card.iccid).holder_id == seller
    history = body(http.get(f"/v1/cards/{card.iccid}/history", headers=auth("admin")))
    assert [e["event"] for e in history["events"]][-1] == "transfer_requested"
    assert "登记人录入错误更正" in history["events"][-1]["reason"]
    push_all(world)
    assert world.operator.received[outcome["record_id"]].kind is PushKind.TRANSFER
    world.lifecycle.apply_callback(answer(outcome["record_id"], card, CallbackOutcome.ACCEPTED))
    assert card_now(card.iccid).holder_id == buyer.party_id


def test_transfer_bad_input_is_refused_and_changes_nothing(http: Any, world: World, auth: Auth) -> None:
    card, _ = registered(world, 3)
    (idle,) = import_cards(Operator.CHINA_UNICOM, 1, seed=4)
    buyer = person(5)
    why = {"reason": "更正"}
    before = (card_now(card.iccid).version, card_now(idle.iccid).version)
    unknown = post(
        http, "/v1/admin/cards/89860112345678901245/transfer", auth, {"holder_id": buyer.party_id, **why}
    )
    assert (unknown.status_code, body(unknown)["code"]) == (404, "card.not_found")
    illegal = post(http, f"/v1/admin/cards/{idle.iccid}/transfer", auth, {"holder_id": buyer.party_id, **why})
    assert (illegal.status_code, body(illegal)["code"]) == (409, "card.not_registered")
    malformed = post(http, "/v1/admin/cards/12345/transfer", auth, {"holder_id": buyer.party_id, **why})
    assert malformed.status_code == 422
    nobody = post(http, f"/v1/admin/cards/{card.iccid}/transfer", auth, {"holder_id": "no-such-party", **why})
    assert (nobody.status_code, body(nobody)["code"]) == (404, "party.not_found")
    extra = post(http, f"/v1/admin/cards/{card.iccid}/transfer", auth, {"holder_id": "x", "vin": "y", **why})
    assert extra.status_code == 422
    owner_role = post(
        http, f"/v1/admin/cards/{card.iccid}/transfer", auth, {"holder_id": buyer.party_id, **why}, "owner"
    )
    assert owner_role.status_code == 403
    assert (card_now(card.iccid).version, card_now(idle.iccid).version) == before
    assert receive_all(world.queue) == []


def test_admin_scraps_a_vehicle_twice_harmlessly(http: Any, world: World, auth: Auth) -> None:
    card, _ = registered(world, 6)
    first = post(http, f"/v1/admin/vehicles/{card.vin}/scrap", auth)
    assert first.status_code == 200, first.body
    (done,) = body(first)["cards"]
    assert (done["iccid"], done["retired"], done["events"]) == (
        card.iccid,
        "scrapped",
        ["deregistered", "scrapped"],
    )
    again = post(http, f"/v1/admin/vehicles/{card.vin}/scrap", auth)
    assert body(again) == {"vin": card.vin, "cards": [], "already_retired": [card.iccid]}
    missing = post(http, "/v1/admin/vehicles/JHMCM56557C404453/scrap", auth)
    assert (missing.status_code, body(missing)["code"]) == (404, "vehicle.not_found")
    bad_vin = post(http, "/v1/admin/vehicles/KNEJC524585810962/scrap", auth)
    assert (bad_vin.status_code, body(bad_vin)["code"]) == (422, "vin.check_digit")


def test_admin_swaps_a_card(http: Any, world: World, auth: Auth) -> None:
    card, _ = registered(world, 7)
    (spare,) = import_cards(Operator.CHINA_UNICOM, 1, seed=8)
    resp = post(
        http, f"/v1/admin/vehicles/{card.vin}/swap", auth, {"old_iccid": card.iccid, "new_iccid": spare.iccid}
    )
    assert resp.status_code == 200, resp.body
    result = body(resp)
    assert (result["old"]["retired"], result["new"]["vin"]) == ("swapped_out", card.vin)
    assert events(spare.iccid) == ["imported", "swapped_in"]
    assert card_now(spare.iccid).state is CardState.UNREGISTERED
    busy, _ = registered(world, 9)
    refused = post(
        http, f"/v1/admin/vehicles/{card.vin}/swap", auth, {"old_iccid": spare.iccid, "new_iccid": busy.iccid}
    )
    assert (refused.status_code, body(refused)["code"]) == (409, "swap.new_card_in_use")
    assert card_now(busy.iccid).vin == busy.vin


def test_outbox_lists_by_status_and_retries_dead_records(http: Any, world: World, auth: Auth) -> None:
    # Given one pending registration and one that the operator refused (dead)
    (card_a,) = import_cards(Operator.CHINA_MOBILE, 1, seed=10)
    (card_b,) = import_cards(Operator.CHINA_MOBILE, 1, seed=11)
    pending = world.lifecycle.submit_registration(card_a.iccid, person(10), "owner:u1").record_id
    dead = world.lifecycle.submit_registration(card_b.iccid, person(11), "owner:u2").record_id
    assert pending is not None
    assert dead is not None
    world.operator.refuse = True
    world.dispatcher.dispatch(dead)
    listed = http.get("/v1/admin/outbox?status=dead", headers=auth("auditor"))
    assert listed.status_code == 200, listed.body
    (item,) = body(listed)["items"]
    assert (item["record_id"], item["status"], item["iccid"]) == (dead, "dead", card_b.iccid)
    assert "message" not in item  # lists carry no personal data
    pending_list = body(http.get("/v1/admin/outbox?status=pending&limit=1", headers=auth("admin")))
    assert [i["record_id"] for i in pending_list["items"]] == [pending]
    bad = http.get("/v1/admin/outbox?status=accepted", headers=auth("admin"))
    assert (bad.status_code, body(bad)["code"]) == (422, "outbox.status")
    assert http.get("/v1/admin/outbox?status=dead", headers=auth("owner")).status_code == 403
    # When an admin retries the dead one after the operator fixed its side
    world.operator.refuse = False
    retried = post(http, f"/v1/admin/outbox/{dead}/retry", auth)
    assert retried.status_code == 200, retried.body
    assert (body(retried)["status"], body(retried)["attempts"]) == ("pending", 0)
    push_all(world)
    record = world.store.get(dead)
    assert record is not None
    assert record.status is OutboxStatus.SENT
    # And retrying what is not dead, unknown or malformed is refused
    assert body(post(http, f"/v1/admin/outbox/{dead}/retry", auth))["code"] == "outbox.not_dead"
    assert post(http, f"/v1/admin/outbox/{'0' * 32}/retry", auth).status_code == 404
    assert post(http, "/v1/admin/outbox/not-an-id/retry", auth).status_code == 422
    assert deps.inventory_repo().get_card(card_b.iccid) is not None


# ------------------------------------------------------------------------------------------- the CLI


def cli(group: click.Group, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_cli_shows_a_card_and_scraps_its_vehicle(world: World) -> None:
    from chalicelib.cli.cards import card as card_group

    card, _ = registered(world, 20)
    code, shown = cli(card_group, "show", card.iccid)
    assert code == 0
    assert shown["state"] == "已登记 (registered)"
    assert [e["event"] for e in shown["history"]] == [
        "导入库存 (imported)",
        "提交实名登记 (registration_submitted)",
        "运营商接受实名登记 (registration_accepted)",
    ]
    assert shown["push"]["status"] == "运营商已接受 (accepted)"
    code, scrapped = cli(card_group, "scrap", card.vin)
    assert (code, scrapped["cards"][0]["retired"]) == (0, "scrapped")
    code, refused = cli(card_group, "transfer", card.iccid, "--holder", "nobody", "--reason", "wrong holder")
    assert (code, refused["error"]["code"]) == (2, "party.not_found")
    code, blank = cli(card_group, "transfer", card.iccid, "--holder", "nobody", "--reason", " ")
    assert (code, blank["error"]["code"]) == (2, "transfer.reason_required")
    code, missing = cli(card_group, "show", "89860112345678901245")
    assert (code, missing["error"]["code"]) == (2, "card.not_found")


def test_cli_outbox_status_and_retry(world: World) -> None:
    from chalicelib.cli.cards import outbox

    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=21)
    record_id = world.lifecycle.submit_registration(card.iccid, person(21), "owner:u1").record_id
    assert record_id is not None
    world.operator.refuse = True
    world.dispatcher.dispatch(record_id)
    code, status = cli(outbox, "status", "--status", "dead")
    assert code == 0
    assert status["total"]["dead"] == status["by_kind"]["register"]["dead"] == 1
    assert status["total"]["queued"] == status["total"]["waiting_for_operator"] == 0
    assert [i["record_id"] for i in status["page"]["items"]] == [record_id]
    code, revived = cli(outbox, "retry", record_id)
    assert (code, revived["status"]) == (0, "pending")
    code, again = cli(outbox, "retry", record_id)
    assert (code, again["error"]["code"]) == (2, "outbox.not_dead")


def test_cli_reconciles_with_an_operator_listing_file(world: World, tmp_path: Path) -> None:
    from chalicelib.cli.cards import operator

    first, second = import_cards(Operator.CHINA_UNICOM, 2, seed=22)
    owner = person(22)
    register(world, first, owner)
    register(world, second, owner)
    listing = tmp_path / "unicom.jsonl"
    lines = [
        {
            "iccid": first.iccid,
            "state": "registered",
            "holder_id_hash": owner.id_hash,
            "functions": ["emergency"],
        },
        {"iccid": second.iccid, "state": "deregistered", "functions": ["emergency"]},
    ]
    listing.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    code, report = cli(operator, "reconcile", "--operator", "china_unicom", "--listing", str(listing))
    assert code == 1
    assert (report["listed"], report["in_sync"], report["drift_count"]) == (2, 1, 1)
    assert report["drifts"] == [
        {"iccid": second.iccid, "kind": "state", "platform": "registered", "operator": "deregistered"}
    ]
    listing.write_text('{"iccid": 5}\n', encoding="utf-8")
    code, bad = cli(operator, "reconcile", "--operator", "china_unicom", "--listing", str(listing))
    assert (code, bad["error"]["code"]) == (2, "listing.line")
