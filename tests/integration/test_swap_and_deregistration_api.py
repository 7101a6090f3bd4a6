"""A card's life around the owner's registration, through the API: after 更换零部件 the owner's flow
registers the fitted card (the retired one is never offered, pushed or shown), and a de-registration
is done when the operator says so — its acceptance or its refusal, shown, told by SMS, seen by the OEM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.local.synthetic import inventory_rows
from chalicelib.operators.domain.messages import CallbackOutcome
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (
    DEREG,
    PHONE,
    REG,
    answer_card,
    outbox_records,
    prove_identity,
    register,
    sms_code,
)
from tests.integration.test_verification_api import call
from tests.synthetic_documents import require_cjk_font

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

Headers = dict[str, str]


@pytest.fixture
def me(token: Callable[..., str]) -> Headers:
    return {
        "Authorization": f"Bearer {token('owner', subject='owner-a')}",
        "Content-Type": "application/json",
    }


@pytest.fixture
def admin(token: Callable[..., str]) -> Headers:
    return {
        "Authorization": f"Bearer {token('admin', subject='admin-1')}",
        "Content-Type": "application/json",
    }


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(3, seed=29))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return [row["vin"] for row in rows]


def iccid_of(vin: str) -> str:
    (card,) = deps.inventory_repo().cards_of_vehicle(vin)
    return card.iccid


def swap(api: Any, admin: Headers, vin: str, old: str, new: str) -> None:
    body = {"old_iccid": old, "new_iccid": new}
    status, result = call(api, "post", f"/v1/admin/vehicles/{vin}/swap", admin, body)
    assert status == 200, result
    assert result["old"]["retired"] == "swapped_out"


def pushed_iccids(kind: str) -> list[str]:
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel

    return [r.iccid for r in OutboxModel.scan() if r.kind == kind]


def state(iccid: str) -> str:
    card = deps.inventory_repo().get_card(iccid)
    assert card is not None
    return card.state.value


def deregistration_submitted(api: Any, me: Headers, vin: str) -> str:
    status, dereg = call(api, "post", DEREG, me, {"vin": vin})
    assert status == 201, dereg
    dereg_id = str(dereg["registration_id"])
    code = sms_code(api, PHONE, "deregistration", me)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    assert (status, dereg["step"]) == (200, "documents"), dereg  # the registered identity
    prove_identity(api, me, dereg["flow_id"])
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    assert (status, dereg["step"]) == (200, "pending"), dereg
    return dereg_id


def test_after_a_swap_the_owners_registration_pushes_and_registers_the_fitted_card(
    api: Any, me: Headers, admin: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    # Given the part holding the vehicle's card was replaced by a spare (another vehicle's card)
    old, new = iccid_of(vins[0]), iccid_of(vins[2])
    swap(api, admin, vins[0], old, new)
    # When the owner registers the vehicle through the whole flow
    reg = register(api, me, vins[0])
    # Then only the fitted card is offered and pushed; the retired one never moves
    assert [c["iccid_masked"][-4:] for c in reg["cards"]] == [new[-4:]]
    assert pushed_iccids("register") == [new]
    assert state(old) == "unregistered"
    # And once the operator accepts, the vehicle shows the new card registered
    answer_card(new, CallbackOutcome.ACCEPTED)
    status, shown = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert (status, shown["step"]) == (200, "registered"), shown
    status, mine = call(api, "get", "/v1/me/vehicles", me)
    assert status == 200
    (vehicle,) = mine["vehicles"]
    assert [(c["iccid_masked"][-4:], c["state"]) for c in vehicle["cards"]] == [(new[-4:], "registered")]
    assert vehicle["step"] == "registered"


def test_a_swapped_out_registered_card_leaves_my_vehicles_and_the_fitted_one_is_registered_anew(
    api: Any, me: Headers, admin: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    old, new = iccid_of(vins[1]), iccid_of(vins[2])
    register(api, me, vins[1])
    answer_card(old, CallbackOutcome.ACCEPTED)
    # When the part is replaced, the old card's registration ends and it leaves my vehicles
    swap(api, admin, vins[1], old, new)
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    assert mine["vehicles"] == []
    # And my next registration of the vehicle takes the fitted card (never 409 card.swapped_out)
    register(api, me, vins[1])
    assert pushed_iccids("register").count(new) == 1
    assert state(new) == "pending"


def test_a_deregistration_is_pending_until_the_operator_accepts_then_told_by_sms(
    api: Any, me: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    iccid = iccid_of(vins[0])
    register(api, me, vins[0])
    answer_card(iccid, CallbackOutcome.ACCEPTED)
    dereg_id = deregistration_submitted(api, me, vins[0])
    # While the operator has not answered: pending, the card still registered, no result SMS
    assert state(iccid) == "registered"
    assert "已注销实名" not in deps.sms_drop().recent(1)[0].text
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    assert (vehicle["step"], vehicle["deregistration"]["step"]) == ("pending", "pending")
    # When the operator accepts: de-registered, emergency only, told once
    answer_card(iccid, CallbackOutcome.ACCEPTED)
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert (status, dereg["step"]) == (200, "deregistered"), dereg
    assert state(iccid) == "unregistered"
    assert "已注销实名" in deps.sms_drop().recent(1)[0].text
    # And my vehicles show the card's true state, not the old 实名登记成功
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    assert vehicle["step"] == "deregistered"
    assert [c["state"] for c in vehicle["cards"]] == ["unregistered"]


def test_a_refused_deregistration_is_shown_with_its_reason_told_by_sms_and_seen_by_the_oem(
    api: Any, me: Headers, admin: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    iccid = iccid_of(vins[0])
    register(api, me, vins[0])
    answer_card(iccid, CallbackOutcome.ACCEPTED)
    dereg_id = deregistration_submitted(api, me, vins[0])
    sent = len(deps.sms_drop().recent(100))
    # When the operator refuses it
    answer_card(iccid, CallbackOutcome.REJECTED, reason="该卡存在未结清费用")
    # Then the person sees the refusal with its reason, and hears it once
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert (status, dereg["step"], dereg["result"]["reason_zh"]) == (200, "rejected", "该卡存在未结清费用")
    texts = [m.text for m in deps.sms_drop().recent(100)]
    assert len(texts) == sent + 1
    assert "注销未获电信企业同意" in texts[0]
    assert "该卡存在未结清费用" in texts[0]
    # And the card stays registered, as my vehicles say
    assert state(iccid) == "registered"
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    assert (vehicle["step"], vehicle["deregistration"]["step"]) == ("registered", "rejected")
    # And the OEM sees the refusal in the card's history, and the push as rejected
    status, history = call(api, "get", f"/v1/cards/{iccid}/history", admin)
    assert status == 200, history
    refused = [e for e in history["events"] if e["event"] == "deregistration_refused"]
    assert len(refused) == 1
    assert "该卡存在未结清费用" in refused[0]["reason"]
    assert outbox_records("deregister") == 1
