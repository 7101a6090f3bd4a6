"""实际使用人 (第九条(四)) through the API: a card registered to an enterprise (set up through the cards
services: the enterprise's party with its responsible person, accepted by the sandbox operator) shows in
the enterprise's vehicles; its legal person records the actual user, changes it (the first ends where the
second starts), the history keeps both, masked; an agent of another enterprise is told the card does not
exist; the changes reach the sandbox operator through the outbox and its acceptance shows on the records;
a reviewer reads them in clear only with a reason, recorded in the read log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.fleet.apply import enterprise_party_id
from chalicelib.kernel.clock import china_day
from chalicelib.kernel.personal import IdType, Party, PartyKind
from chalicelib.local.sandbox_operator import SandboxOperator
from tests.integration.test_agents_api import (
    NAME_A,
    NAME_B,
    USCC_A,
    USCC_B,
    get,
    make_legal,
    make_natural,
    post,
    refresh,
    sign_in,
    sign_up,
)

Api = Any
USER_ID = "11010519491231002X"
BATCH_ID = "fb_" + "a1" * 12


@pytest.fixture
def sandbox(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxOperator]:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    # The platform's callbacks go through the chalice test client: the sandbox's own deliveries go
    # nowhere (one quick attempt) and the test posts what it decided through the API.
    with SandboxOperator(
        deps.operator_keys(),
        "http://127.0.0.1:9/v1/operator/callbacks",
        decision_delay_seconds=0,
        callback_attempts=1,
        callback_timeout_seconds=0.5,
    ) as running:
        yield running


def _dispatcher(sandbox: SandboxOperator) -> Any:
    from chalicelib.adapters.operator.http import HttpOperatorGateway
    from chalicelib.kernel.operators import Operator
    from chalicelib.operators.dispatch import Dispatcher

    gateway = HttpOperatorGateway(dict.fromkeys(Operator, sandbox.url), deps.operator_keys())
    return Dispatcher(deps.outbox_store(), gateway, deps.push_queue())


def _answered(api: Api, sandbox: SandboxOperator, record_id: str) -> None:
    """Push one outbox record to the sandbox and post its decision through the callback route."""
    from chalicelib.operators.wire import encode_callback

    assert _dispatcher(sandbox).dispatch(record_id).value == "sent"
    assert sandbox.wait_idle()
    (callback,) = sandbox.callbacks_for(record_id)
    request = encode_callback(
        callback, deps.operator_keys().current(callback.operator), now=datetime.now(UTC)
    )
    response = api.http.post("/v1/operator/callbacks", body=request.body, headers={**request.headers})
    assert response.status_code == 200, response.body


def _enterprise_card(api: Api, sandbox: SandboxOperator) -> Any:
    """A vehicle's card registered to enterprise A under its responsible person, accepted by the operator."""
    from chalicelib.cards.holders import holder_from_party
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.local.synthetic import inventory_rows

    rows = list(inventory_rows(1, seed=77))
    assert import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test").errors == []
    (card,) = deps.inventory_repo().cards_of_vehicle(rows[0]["vin"])
    enterprise = Party(
        party_id=enterprise_party_id(BATCH_ID),  # as an approved fleet batch stores it
        kind=PartyKind.ENTERPRISE,
        id_type=IdType.USCC,
        id_number=USCC_A,
        name=NAME_A,
    )
    responsible = Party(id_type=IdType.RESIDENT_ID, id_number="110101199003074477", name="王责任")
    for party in (enterprise, responsible):
        deps.party_repo().put(party)
    holder = holder_from_party(enterprise, deps.keyed_hasher(), responsible)
    (outcome,) = deps.lifecycle().submit_registrations([card.iccid], holder, "test")
    assert outcome.record_id is not None
    _answered(api, sandbox, outcome.record_id)
    registered = deps.inventory_repo().get_card(card.iccid)
    assert registered is not None
    assert registered.state.value == "registered"
    return registered


def _user(name: str, valid_from: str, phone: str = "13912345678") -> dict[str, Any]:
    return {
        "name": name,
        "id_type": "resident_id",
        "id_number": USER_ID,
        "phone": phone,
        "valid_from": valid_from,
    }


def test_the_legal_person_records_and_changes_an_actual_user_pushed_to_the_operator_and_accepted(
    api: Api, sandbox: SandboxOperator, token: Callable[..., str]
) -> None:
    card = _enterprise_card(api, sandbox)
    legal_a_id = sign_up(api, "legalA", "13800000001")
    make_legal(legal_a_id, USCC_A, NAME_A)
    legal_b_id = sign_up(api, "legalB", "13800000002")
    make_legal(legal_b_id, USCC_B, NAME_B)
    agent_id = sign_up(api, "agentLi", "13800000003")
    make_natural(agent_id)
    legal_a, legal_b, agent = sign_in(api, "legalA"), sign_in(api, "legalB"), sign_in(api, "agentLi")
    path = f"/v1/enterprise/cards/{card.iccid}/actual-users"
    today = china_day(datetime.now(UTC))

    # The enterprise's vehicles show the card, registered, nobody using it yet
    status, vehicles = get(api, "/v1/enterprise/vehicles", legal_a["token"])
    assert status == 200, vehicles
    (vehicle,) = vehicles["items"]
    (shown,) = vehicle["cards"]
    assert (vehicle["vin"], shown["iccid"], shown["state"], shown["actual_user"]) == (
        card.vin,
        card.iccid,
        "registered",
        None,
    )
    assert shown["msisdn"] != card.msisdn  # masked
    assert shown["batch_id"] == BATCH_ID

    # The legal person records the first actual user, then changes it from today
    start = (today - timedelta(days=30)).isoformat()
    status, first = post(api, path, _user("张三", start), legal_a["token"])
    assert status == 201, first
    assert (first["name"], first["id_number"], first["masked"], first["push_state"]) == (
        "张*",
        "1101**********002X",
        True,
        "pending",
    )
    status, second = post(api, path, _user("李四", today.isoformat(), "13700001111"), legal_a["token"])
    assert status == 201, second

    # The history keeps both, newest first; the first ended where the second starts
    status, history = get(api, path, legal_a["token"])
    assert status == 200, history
    assert [(r["record_id"], r["valid_from"], r["valid_to"], r["current"]) for r in history["items"]] == [
        (second["record_id"], today.isoformat(), None, True),
        (first["record_id"], start, today.isoformat(), False),
    ]
    assert all(r["masked"] for r in history["items"])

    # Bad periods change nothing: overlapping, reversed, too far ahead (field errors, zh and en)
    bad = [
        (_user("王五", (today - timedelta(days=3)).isoformat()), "actual_user.period_overlaps", "valid_from"),
        (
            {**_user("王五", today.isoformat()), "valid_to": (today - timedelta(days=1)).isoformat()},
            "actual_user.period_reversed",
            "valid_to",
        ),
        (
            _user("王五", (today + timedelta(days=3)).isoformat()),
            "actual_user.from_too_far_ahead",
            "valid_from",
        ),
        (
            {**_user("王五", today.isoformat()), "id_number": "110105194912310021"},
            "resident_id.check_char",
            None,
        ),
    ]
    for doc, code, field in bad:
        status, refused = post(api, path, doc, legal_a["token"])
        assert (status, refused["code"]) == (422, code), refused
        assert refused["message_zh"]
        assert refused["message_en"]
        if field:
            assert refused["field"] == field
    assert len(get(api, path, legal_a["token"])[1]["items"]) == 2

    # An agent of another enterprise (approved there) is told the card does not exist; so is its legal person
    status, applied = post(
        api, "/v1/enterprise/agent-applications", {"company_name": NAME_B, "uscc": USCC_B}, agent["token"]
    )
    assert status == 201, applied
    status, _ = post(api, f"/v1/enterprise/agents/{agent_id}/approve", {}, legal_b["token"])
    assert status == 200
    assert refresh(api, agent)[0] == 200
    for other in (agent, legal_b):
        status, unknown = get(api, path, other["token"])
        assert (status, unknown["code"]) == (404, "card.not_found")
        status, unknown = post(api, path, _user("赵六", today.isoformat()), other["token"])
        assert (status, unknown["code"]) == (404, "card.not_found")
    assert get(api, "/v1/enterprise/vehicles", agent["token"])[1]["items"] == []

    # Both changes reach the sandbox operator through the outbox; its acceptance shows on the records
    pushes = [deps.actual_users().history(USCC_A, card.iccid)[i].push_record_id for i in (1, 0)]
    for record_id in pushes:
        assert record_id is not None
        _answered(api, sandbox, record_id)
    kept = sandbox.actual_users[card.iccid]
    assert [m.actual_user.record_ref for m in kept if m.actual_user] == [
        first["record_id"],
        second["record_id"],
    ]
    assert kept[1].actual_user is not None
    assert kept[1].actual_user.ended_ref == first["record_id"]
    assert kept[1].holder is not None
    assert (kept[1].holder.name, kept[1].holder.phone) == ("李四", "13700001111")
    status, history = get(api, path, legal_a["token"])
    assert [r["push_state"] for r in history["items"]] == ["accepted", "accepted"]
    status, vehicles = get(api, "/v1/enterprise/vehicles", legal_a["token"])
    assert vehicles["items"][0]["cards"][0]["actual_user"]["record_id"] == second["record_id"]
    assert deps.inventory_repo().get_card(card.iccid).state.value == "registered"  # type: ignore[union-attr]

    # Ending the current user (tomorrow) is pushed too; ending one that has ended is refused
    tomorrow = (today + timedelta(days=1)).isoformat()
    status, ended = post(api, f"{path}/{second['record_id']}/end", {"valid_to": tomorrow}, legal_a["token"])
    assert (status, ended["valid_to"], ended["push_state"]) == (200, tomorrow, "pending"), ended
    status, again = post(api, f"{path}/{first['record_id']}/end", {}, legal_a["token"])
    assert (status, again["code"]) == (409, "actual_user.already_ended")

    # Every change is in the enterprise's action log under the legal person's name
    status, actions = get(api, "/v1/enterprise/actions", legal_a["token"])
    assert status == 200, actions
    kinds = [a["action"] for a in actions["items"] if a["action"].startswith("actual_user.")]
    assert kinds == ["actual_user.ended", "actual_user.recorded", "actual_user.recorded"]

    # A reviewer reads them in clear only with a reason, and the read is recorded
    reviewer = {"Authorization": f"Bearer {token('reviewer', subject='reviewer-1')}"}
    masked = json.loads(api.http.get(path, headers=reviewer).body)
    assert masked["items"][0]["name"] == "李*"
    response = api.http.get(f"{path}?reason=核对实际使用人登记", headers=reviewer)
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["items"][0]["name"] == "李四"
    auditor = token("auditor", subject="auditor-1")
    status, reads = get(api, f"/v1/audit/reads?record_kind=card&record_id={card.iccid}", auditor)
    assert status == 200, reads
    assert [(r["actor"], r["fields"]) for r in reads["reads"]] == [
        ("reviewer-1", ["actual_user.id_number", "actual_user.name", "actual_user.phone"])
    ]
