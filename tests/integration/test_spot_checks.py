"""抽查 (第十条) through the API: an operator's signed spot check opens a case in the OEM's queue, the
reviewer reads the registration's evidence and answers once, and the answer reaches the operator through
the outbox (the sandbox operator keeps it). A card's OEM view leads an auditor to its registration and
evidence; the admin's vehicle view marks a retired card beside the one fitted now."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.kernel.operators import Operator
from chalicelib.local.sandbox_operator import SandboxOperator
from chalicelib.local.synthetic import inventory_rows
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from tests.face_photos import FACES
from tests.integration.test_registration_flow import answer_card, register
from tests.integration.test_verification_api import call
from tests.synthetic_documents import require_cjk_font

CALLBACKS = "/v1/operator/callbacks"
Headers = dict[str, str]


def _headers(token: Callable[..., str], role: str, subject: str) -> Headers:
    return {"Authorization": f"Bearer {token(role, subject=subject)}", "Content-Type": "application/json"}


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(3, seed=41))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return [row["vin"] for row in rows]


@pytest.fixture
def sandbox(aws: None) -> Iterator[SandboxOperator]:
    # The platform's callback endpoint is the chalice test client here: the sandbox's own deliveries
    # go nowhere (one quick attempt) and the test posts what it decided through the API.
    with SandboxOperator(
        deps.operator_keys(),
        "http://127.0.0.1:9/v1/operator/callbacks",
        decision_delay_seconds=0,
        callback_attempts=1,
        callback_timeout_seconds=0.5,
    ) as running:
        yield running


def post_callback(api: Any, callback: OperatorCallback) -> tuple[int, dict[str, Any]]:
    """The operator's callback, signed with its keys, through the platform's callback route."""
    from chalicelib.operators.wire import encode_callback

    request = encode_callback(
        callback, deps.operator_keys().current(callback.operator), now=datetime.now(UTC)
    )
    response = api.http.post(CALLBACKS, body=request.body, headers={**request.headers})
    return response.status_code, json.loads(response.body)


def card_of(vin: str) -> Any:
    (card,) = deps.inventory_repo().cards_of_vehicle(vin)
    return card


def registered(api: Any, token: Callable[..., str], vin: str) -> tuple[dict[str, Any], Any, str]:
    """A vehicle registered by its owner through the whole flow and accepted by the operator."""
    require_cjk_font()
    me = _headers(token, "owner", "owner-spot")
    reg = register(api, me, vin)
    card = card_of(vin)
    record_id = deps.outbox_store().lifecycle(card.iccid).message_id
    assert record_id is not None
    answer_card(card.iccid, CallbackOutcome.ACCEPTED)
    return reg, card, record_id


def dispatch_answers(sandbox: SandboxOperator, operator: Operator) -> Any:
    from chalicelib.adapters.operator.http import HttpOperatorGateway
    from chalicelib.operators.dispatch import Dispatcher

    gateway = HttpOperatorGateway({operator: sandbox.url}, deps.operator_keys())
    return Dispatcher(deps.outbox_store(), gateway, deps.push_queue())


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_an_operators_spot_check_is_answered_from_the_evidence_and_pushed_back(
    api: Any, token: Callable[..., str], vins: list[str], sandbox: SandboxOperator
) -> None:
    reg, card, record_id = registered(api, token, vins[0])
    reviewer = _headers(token, "reviewer", "reviewer-1")
    auditor = _headers(token, "auditor", "auditor-1")
    # Given the operator sends a signed spot check on the card's registering push, due in three days
    due = datetime.now(UTC) + timedelta(days=3)
    spot = sandbox.spot_check(card.operator, card.iccid, record_id, answer_by=due, deliver=False)
    status, ack = post_callback(api, spot)
    assert (status, ack["note"]) == (200, "recorded"), ack
    # Then a case waits in the reviewers' queue, for that registration, with the operator's deadline
    status, queue = call(api, "get", "/v1/spot-checks", reviewer)
    assert status == 200, queue
    (check,) = queue["checks"]
    assert (check["iccid"], check["registration_id"], check["status"]) == (
        card.iccid,
        reg["registration_id"],
        "open",
    )
    assert datetime.fromisoformat(check["due_at"]) == due
    assert check["overdue"] is False
    flow_id = reg["flow_id"]
    assert flow_id in check["flow_ids"]
    # And the reviewer sees the registration's evidence; the auditor sees it masked
    status, detail = call(api, "get", f"/v1/spot-checks/{check['check_id']}?reason=answer-check", reviewer)
    assert status == 200, detail
    (evidence,) = [e for e in detail["evidence"] if e["flow_id"] == flow_id]
    assert evidence["chain"]["ok"] is True
    kinds = {e["kind"] for e in evidence["entries"]}
    assert {"face_compared", "ocr_read"} <= kinds, kinds
    revealed = [e for e in evidence["entries"] if isinstance(e["personal"], dict) and e["personal"]]
    assert revealed  # the reviewer reads the personal facts
    status, masked = call(api, "get", f"/v1/spot-checks/{check['check_id']}", auditor)
    assert status == 200
    assert all(isinstance(e["personal"], list) for ev in masked["evidence"] for e in ev["entries"])
    # When the reviewer answers: confirmed
    status, answered = call(
        api, "post", f"/v1/spot-checks/{check['check_id']}/answer", reviewer, {"verdict": "confirmed"}
    )
    assert status == 200, answered
    assert (answered["status"], answered["verdict"], answered["late"]) == ("answered", "confirmed", False)
    answer_record = answered["answer_record_id"]
    # Then the card's history has the spot check and its answer, the card unchanged
    events = [e for e in deps.inventory_repo().history(card.iccid) if e.event == "spot_check"]
    assert len(events) == 2
    assert deps.inventory_repo().get_card(card.iccid).state.value == "registered"  # type: ignore[union-attr]
    # And the answer goes to the operator through the outbox, signed like every push
    outcome = dispatch_answers(sandbox, card.operator).dispatch(answer_record)
    assert outcome.value == "sent"
    assert sandbox.wait_idle()
    kept = sandbox.spot_check_answers[spot.callback_id]
    assert (kept.verdict, kept.late, kept.note) == (SpotCheckVerdict.CONFIRMED, False, None)
    # And the operator's acknowledgement settles the record (the card's own push is untouched)
    (ack_callback,) = sandbox.callbacks_for(answer_record)
    assert ack_callback.outcome is CallbackOutcome.ACCEPTED
    status, _ = post_callback(api, ack_callback)
    assert status == 200
    record = deps.outbox_store().get(answer_record)
    assert record is not None
    assert record.status.value == "accepted"
    assert deps.outbox_store().lifecycle(card.iccid).message_id == record_id
    # And a second answer is refused: a case is answered once
    status, again = call(
        api,
        "post",
        f"/v1/spot-checks/{check['check_id']}/answer",
        reviewer,
        {"verdict": "discrepancy", "note": "again"},
    )
    assert (status, again["code"]) == (409, "spot_check.already_answered")
    # And the same spot check delivered again opens no second case
    status, _ = post_callback(api, spot)
    assert status == 200
    _, open_queue = call(api, "get", "/v1/spot-checks", reviewer)
    _, done_queue = call(api, "get", "/v1/spot-checks?status=answered", reviewer)
    assert (len(open_queue["checks"]), len(done_queue["checks"])) == (0, 1)

    # An overdue spot check: answered after its deadline, still sent, marked late
    late = sandbox.spot_check(
        card.operator,
        card.iccid,
        record_id,
        answer_by=datetime.now(UTC) - timedelta(minutes=1),
        deliver=False,
    )
    assert post_callback(api, late)[0] == 200
    _, queue = call(api, "get", "/v1/spot-checks", reviewer)
    (overdue,) = queue["checks"]
    assert overdue["overdue"] is True
    # And the hourly job counts it as open past its deadline (the alarmed gauge), until it is answered
    from chalicelib.events.reconcile import reconcile_pushes

    assert reconcile_pushes()["spot_checks_overdue"] == 1
    status, refused = call(
        api, "post", f"/v1/spot-checks/{overdue['check_id']}/answer", reviewer, {"verdict": "discrepancy"}
    )
    assert (status, refused["code"]) == (422, "spot_check.note_required")
    status, answered = call(
        api,
        "post",
        f"/v1/spot-checks/{overdue['check_id']}/answer",
        reviewer,
        {"verdict": "discrepancy", "note": "登记地址与证件地址不一致"},
    )
    assert status == 200, answered
    assert (answered["late"], answered["overdue"]) == (True, True)
    assert reconcile_pushes()["spot_checks_overdue"] == 0
    assert dispatch_answers(sandbox, card.operator).dispatch(answered["answer_record_id"]).value == "sent"
    assert sandbox.wait_idle()
    kept = sandbox.spot_check_answers[late.callback_id]
    assert (kept.verdict, kept.late, kept.note) == (
        SpotCheckVerdict.DISCREPANCY,
        True,
        "登记地址与证件地址不一致",
    )


def test_a_spot_check_on_an_unknown_card_or_message_is_refused_with_its_reason(
    api: Any, vins: list[str], sandbox: SandboxOperator
) -> None:
    card = card_of(vins[0])
    unknown = sandbox.spot_check(card.operator, "89860099999999999999", "outbox-00000001", deliver=False)
    status, refused = post_callback(api, unknown)
    assert (status, refused["code"]) == (404, "spot_check.unknown_card")
    assert refused["message_zh"]
    assert refused["message_en"]
    # A card of ours, but a message that is none of its pushes
    stray = sandbox.spot_check(card.operator, card.iccid, "outbox-00000002", deliver=False)
    status, refused = post_callback(api, stray)
    assert (status, refused["code"]) == (404, "spot_check.unknown_message")
    assert deps.spot_checks().queue(SpotCheckStatus.OPEN, 10, None)[0] == []
    assert [e.event for e in deps.inventory_repo().history(card.iccid)] == ["imported"]


def test_answering_an_unknown_spot_check_is_404_and_only_reviewers_answer(
    api: Any, token: Callable[..., str], aws: None
) -> None:
    reviewer = _headers(token, "reviewer", "reviewer-1")
    status, body = call(api, "post", "/v1/spot-checks/sc-none/answer", reviewer, {"verdict": "confirmed"})
    assert (status, body["code"]) == (404, "spot_check.not_found")
    auditor = _headers(token, "auditor", "auditor-1")
    status, _ = call(api, "post", "/v1/spot-checks/sc-none/answer", auditor, {"verdict": "confirmed"})
    assert status == 403
    dealer = _headers(token, "dealer", "dealer-1")
    status, _ = call(api, "get", "/v1/spot-checks", dealer)
    assert status == 403


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_an_auditor_goes_from_a_card_to_its_registration_and_evidence(
    api: Any, token: Callable[..., str], vins: list[str]
) -> None:
    reg, card, _ = registered(api, token, vins[1])
    auditor = _headers(token, "auditor", "auditor-1")
    # The card's OEM view names its registration and the flows holding the evidence
    status, shown = call(api, "get", f"/v1/cards/{card.iccid}", auditor)
    assert status == 200, shown
    link = shown["registration"]
    assert (link["registration_id"], link["kind"]) == (reg["registration_id"], "registration")
    assert reg["flow_id"] in link["flow_ids"]
    # And the auditor reads that evidence, personal facts masked, its chain verified
    status, evidence = call(api, "get", f"/v1/flows/{link['flow_ids'][0]}/evidence", auditor)
    assert status == 200, evidence
    assert evidence["chain"]["ok"] is True
    assert evidence["entries"]
    assert all(isinstance(e["personal"], list) for e in evidence["entries"])
    # The vehicle's dealer looks the card up without the registration (and without its holder)
    from tests.integration.test_dealers_api import dealer_headers

    vehicle = deps.inventory_repo().get_vehicle(card.vin)
    assert vehicle is not None
    assert vehicle.dealer_code is not None
    status, shown = call(api, "get", f"/v1/cards/{card.iccid}", dealer_headers(vehicle.dealer_code))
    assert status == 200
    assert shown["registration"] is None
    assert shown["holder"] is None


def test_the_vehicle_view_marks_the_retired_card_and_shows_the_fitted_one_as_current(
    api: Any, token: Callable[..., str], vins: list[str]
) -> None:
    admin = _headers(token, "admin", "admin-1")
    old, new = card_of(vins[0]).iccid, card_of(vins[2]).iccid
    status, swapped = call(
        api, "post", f"/v1/admin/vehicles/{vins[0]}/swap", admin, {"old_iccid": old, "new_iccid": new}
    )
    assert status == 200, swapped
    status, vehicle = call(api, "get", f"/v1/vehicles/{vins[0]}", admin)
    assert status == 200, vehicle
    cards = [(c["iccid"], c["current"], c["retired"]) for c in vehicle["cards"]]
    assert cards == [(new, True, None), (old, False, "swapped_out")]
    retired = vehicle["cards"][1]
    assert retired["retired_at"] is not None
    assert retired["state"] == "unregistered"
    # The retired card's own view says so too
    status, shown = call(api, "get", f"/v1/cards/{old}", admin)
    assert (status, shown["retired"], shown["current"]) == (200, "swapped_out", False)


def test_the_sandbox_sends_a_spot_check_when_asked_from_loopback(sandbox: SandboxOperator) -> None:
    import urllib.error
    import urllib.request

    body = json.dumps(
        {"operator": "china_mobile", "iccid": "89860012345678901234", "messageId": "outbox-00000009"}
    ).encode()
    request = urllib.request.Request(sandbox.url + "/_sandbox/spot-checks", data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        answer = json.loads(response.read())
    # The platform is unreachable here: the spot check was made and its delivery tried
    assert answer["delivered"] is False
    (made,) = sandbox.callbacks_for("outbox-00000009")
    assert (made.callback_id, made.outcome) == (answer["callbackId"], CallbackOutcome.SPOT_CHECK)
    bad = urllib.request.Request(sandbox.url + "/_sandbox/spot-checks", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(bad, timeout=5)
    assert refused.value.code == 400
    refused.value.close()
