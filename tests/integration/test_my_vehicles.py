"""我的车辆 and the result as a receipt, through the API: the receipt number (受理编号) a submission is
given (shown again on every read, in 我的车辆's history, found by support), the holder masked, the
history oldest-first, the cars still in progress, the de-registration started from the car listed (no
VIN typed), and a registration read after its de-registration telling what the card is now."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.local.synthetic import inventory_rows
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (
    DEREG,
    PHONE,
    REG,
    operator_answers,
    prove_identity,
    register,
    sms_code,
)
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    burst,
    call,
    send_burst,
    start_sideways,
    upload,
)
from tests.synthetic_documents import PERSON_NAME, id_back, id_front, require_cjk_font

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

Headers = dict[str, str]
RECEIPT = re.compile(r"^(DJ|GH|ZX)\d{8}-[0-9A-HJKMNP-TV-Z]{6}$")


def headers(token: Callable[..., str], role: str, subject: str) -> Headers:
    return {"Authorization": f"Bearer {token(role, subject=subject)}", "Content-Type": "application/json"}


@pytest.fixture
def me(token: Callable[..., str]) -> Headers:
    return headers(token, "owner", "owner-a")


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(3, seed=31))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return [row["vin"] for row in rows]


def finish_checks(api: Any, me: Headers, path: str, reg: dict[str, Any]) -> dict[str, Any]:
    """The identity (unless the de-registration took the registered one), both ID photos and the face."""
    flow_id = reg["flow_id"]
    if reg["step"] == "identity":
        prove_identity(api, me, flow_id)
    else:
        for kind, photo in (
            (DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT)),
            (DocumentKind.ID_BACK, id_back()),
        ):
            status, doc = upload(api, me, flow_id, kind, photo)
            assert status == 201, doc
            status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", me)
            assert status == 200, reading
        session = start_sideways(api, me, flow_id)
        status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
        assert (status, outcome["passed"]) == (200, True), outcome
    status, reg = call(api, "get", f"{path}/{reg['registration_id']}", me)
    assert status == 200, reg
    return dict(reg)


def deregister_from_my_vehicles(api: Any, me: Headers, registration_id: str) -> dict[str, Any]:
    """注销 picked in 我的车辆 by the registration it lists, then phone, checks and submit."""
    status, dereg = call(api, "post", DEREG, me, {"registration_id": registration_id})
    assert (status, dereg["step"]) == (201, "verify_phone"), dereg
    code = sms_code(api, PHONE, "deregistration", me)
    dereg_id = dereg["registration_id"]
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    assert status == 200, dereg
    dereg = finish_checks(api, me, DEREG, dereg)
    assert dereg["step"] == "submit", dereg
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    assert (status, dereg["step"]) == (200, "pending"), dereg
    return dict(dereg)


def test_a_registration_gets_a_receipt_shown_on_every_read_in_my_vehicles_and_found_by_support(
    api: Any, me: Headers, vins: list[str], token: Callable[..., str]
) -> None:
    require_cjk_font()
    # Given a registration submitted
    reg = register(api, me, vins[0])
    reg_id = reg["registration_id"]
    # Then it has a receipt number (登记: DJ, the China day, six characters) and the holder, masked
    receipt = reg["receipt_no"]
    assert RECEIPT.match(receipt), receipt
    assert receipt.startswith("DJ")
    assert reg["holder_masked"] == PERSON_NAME[0] + "*" * (len(PERSON_NAME) - 1)
    assert PERSON_NAME not in json.dumps(reg)
    assert reg["submitted_at"] is not None
    # And the same number on a refresh, before and after the operator's answer
    _, again = call(api, "get", f"{REG}/{reg_id}", me)
    assert again["receipt_no"] == receipt
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    _, done = call(api, "get", f"{REG}/{reg_id}", me)
    assert (done["step"], done["receipt_no"], done["ended"]) == ("registered", receipt, None)
    # And 我的车辆 shows it, the card's holder masked and the history oldest first, the receipt on the
    # entry that started it
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    assert vehicle["receipt_no"] == receipt
    (card,) = vehicle["cards"]
    assert card["holder_masked"] == done["holder_masked"]
    history = card["history"]
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert [h["event"] for h in history][:2] == ["registration_submitted", "registration_accepted"]
    assert history[0]["receipt_no"] == receipt
    assert [h["receipt_no"] for h in history[1:]] == [None] * (len(history) - 1)
    # And support finds it by the number (as read out: lower case is fine)
    support = headers(token, "admin", "admin-1")
    status, found = call(api, "get", f"/v1/admin/receipts/{receipt}", support)
    assert status == 200, found
    assert (found["registration_id"], found["kind"], found["vin"]) == (reg_id, "registration", vins[0])
    assert found["step"] == "registered"
    assert found["holder_masked"] == done["holder_masked"]
    status, found = call(api, "get", f"/v1/admin/receipts/{receipt.lower()}", support)
    assert (status, found["registration_id"]) == (200, reg_id)
    # But an unknown number is not found, and an owner may not look numbers up
    status, err = call(api, "get", "/v1/admin/receipts/DJ20260101-000000", support)
    assert (status, err["code"]) == (404, "receipt.not_found")
    status, _ = call(api, "get", f"/v1/admin/receipts/{receipt}", me)
    assert status == 403
    # And another registration gets another number
    other = register(api, headers(token, "owner", "owner-b"), vins[1])
    assert RECEIPT.match(other["receipt_no"])
    assert other["receipt_no"] != receipt


def test_my_vehicles_list_the_cars_in_progress_with_their_step(
    api: Any, me: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    # Given one car registered and another whose registration stopped at the phone step
    register(api, me, vins[0])
    status, open_reg = call(api, "post", REG, me, {"vin": vins[1]})
    assert status == 201, open_reg
    status, open_reg = call(api, "post", f"{REG}/{open_reg['registration_id']}/confirm-vehicle", me, {})
    assert (status, open_reg["step"]) == (200, "verify_phone")
    # Then 我的车辆 lists the first as a vehicle and the second as in progress, with its step and VIN tail
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    assert [v["registration_id"] for v in mine["vehicles"]] != [open_reg["registration_id"]]
    (progress,) = mine["in_progress"]
    assert progress["registration_id"] == open_reg["registration_id"]
    assert (progress["kind"], progress["step"]) == ("registration", "verify_phone")
    assert progress["vin_masked"].endswith(vins[1][-6:])
    assert vins[1] not in json.dumps(mine)
    assert progress["expires_at"] is not None
    # And no receipt before a submission
    assert open_reg["receipt_no"] is None
    assert open_reg["holder_masked"] is None


def test_a_car_is_deregistered_from_my_vehicles_and_the_old_result_tells_the_card_is_not_registered(
    api: Any, me: Headers, vins: list[str], token: Callable[..., str]
) -> None:
    require_cjk_font()
    # Given my car registered
    reg = register(api, me, vins[0])
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    # When someone else names my registration to de-register it, they are refused, learning nothing
    status, err = call(
        api,
        "post",
        DEREG,
        headers(token, "owner", "owner-b"),
        {"registration_id": vehicle["registration_id"]},
    )
    assert (status, err["code"]) == (403, "vehicle.not_yours")
    status, err = call(api, "post", DEREG, me, {})
    assert (status, err["code"]) == (422, "field.required")
    # When I de-register it from 我的车辆 (the car picked, no VIN typed)
    dereg = deregister_from_my_vehicles(api, me, vehicle["registration_id"])
    # Then the de-registration has its own receipt (注销: ZX) and names whose registration ends
    assert RECEIPT.match(dereg["receipt_no"])
    assert dereg["receipt_no"].startswith("ZX")
    assert dereg["holder_masked"] == reg["holder_masked"]
    # And once the operator accepts
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    _, dereg = call(api, "get", f"{DEREG}/{dereg['registration_id']}", me)
    assert dereg["step"] == "deregistered"
    # Then the registration read again (a refresh of its result) still says it was accepted, and that
    # its card is not registered any more since the de-registration
    _, old = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert old["step"] == "registered"
    assert old["ended"] is not None
    assert old["ended"]["step"] == "deregistered"
    assert [c["state"] for c in old["cards"]] == ["unregistered"]
    # And 我的车辆 shows the car de-registered: no holder on the card, both receipts in the history
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    (vehicle,) = mine["vehicles"]
    assert vehicle["step"] == "deregistered"
    assert vehicle["deregistration_receipt_no"] == dereg["receipt_no"]
    (card,) = vehicle["cards"]
    assert (card["state"], card["holder_masked"]) == ("unregistered", None)
    receipts = [h["receipt_no"] for h in card["history"] if h["receipt_no"]]
    assert receipts == [reg["receipt_no"], dereg["receipt_no"]]
    assert mine["in_progress"] == []
