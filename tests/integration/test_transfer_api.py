"""过户 (第十三条) through the API with the real local engines: the buyer of a car registered to someone
else shows they hold it, goes on as a transfer, is verified as a registration verifies (ID photos, live
face, consents) and submits; the seller is told by SMS and keeps the card until the operator accepts the
buyer's registration. Started by the buyer, or by the OEM at a dealer's request (the buyer's phone shows
possession). The admin's own transfer route is for corrections, with a reason."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.cards.domain.lifecycle import transferred_from
from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.kernel.personal import mask_phone
from chalicelib.local.synthetic import inventory_rows, make_resident_id
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (
    PHONE,
    REG,
    accept_all,
    answer_card,
    head_unit_code,
    prove_identity,
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
from tests.synthetic_documents import (
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    id_back,
    id_front,
    id_photo,
    require_cjk_font,
)

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

Headers = dict[str, str]

BUYER = "owner-buyer"
SELLER = "owner-seller"
#: The buyer is the synthetic person the sandbox authority knows (``prove_identity``), on ``PHONE``.
BUYER_PHONE = PHONE
SELLER_PHONE = "13600002222"
SELLER_NAME = "赵六"
#: The seller is another real face than the buyer's: the card's portrait from one photo, the live
#: seller from another.
SELLER_CARD = "biden_1.jpg"
SELLER_LIVE = "biden_2.jpg"
#: Not the buyer's face: the buyer's live check fails with it.
STRANGER = "alex_lacamoire_3.jpg"


def headers(token: Callable[..., str], role: str, subject: str) -> Headers:
    return {"Authorization": f"Bearer {token(role, subject=subject)}", "Content-Type": "application/json"}


@pytest.fixture
def buyer(token: Callable[..., str]) -> Headers:
    return headers(token, "owner", BUYER)


@pytest.fixture
def seller(token: Callable[..., str]) -> Headers:
    return headers(token, "owner", SELLER)


@pytest.fixture
def admin(token: Callable[..., str]) -> Headers:
    return headers(token, "admin", "admin-7")


@pytest.fixture
def vin(aws: None, identity_authority: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A vehicle registered (accepted by the operator) to the seller through the API."""
    require_cjk_font()
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(2, seed=31))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return str(rows[0]["vin"])


def iccid_of(vin: str) -> str:
    (card,) = deps.inventory_repo().cards_of_vehicle(vin)
    return card.iccid


def holder_of(vin: str) -> str | None:
    card = deps.inventory_repo().get_card(iccid_of(vin))
    assert card is not None
    return card.holder_id


def transfer_records() -> int:
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel

    return sum(1 for r in OutboxModel.scan() if r.kind == "transfer")


def texts_to(phone: str) -> list[str]:
    return [m.text for m in deps.sms_drop().recent(50) if m.phone == mask_phone(phone)]


def started(api: Any, me: Headers, vin: str, phone: str) -> str:
    """A registration of ``vin`` up to the possession step, the phone verified."""
    status, reg = call(api, "post", REG, me, {"vin": vin})
    assert status == 201, reg
    reg_id = str(reg["registration_id"])
    status, reg = call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    assert status == 200, reg
    code = sms_code(api, phone, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": phone, "code": code})
    assert status == 200, reg
    return reg_id


def by_head_unit(api: Any, me: Headers, reg_id: str, vin: str) -> tuple[int, Any]:
    status, sent = call(api, "post", f"{REG}/{reg_id}/possession/head-unit-code", me)
    assert status == 202, sent
    body = {"method": "head_unit", "code": head_unit_code(vin)}
    return call(api, "post", f"{REG}/{reg_id}/possession", me, body)


def seller_registers(
    api: Any, seller: Headers, identity_authority: Any, vin: str, *, accepted: bool = True
) -> str | None:
    """The seller's own registration, as another person than the buyer, accepted by the operator
    (or still with it); returns the card's holder (the seller's party once accepted)."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.local.sandbox_authority import Citizen

    id_number = make_resident_id(random.Random(131))
    portrait = id_photo(LocalFaceEngine(), FACES / SELLER_CARD)
    identity_authority.register(Citizen(name=SELLER_NAME, id_number=id_number, portrait=portrait))
    reg_id = started(api, seller, vin, SELLER_PHONE)
    status, reg = by_head_unit(api, seller, reg_id, vin)
    assert (status, reg["step"]) == (200, "identity"), reg
    flow_id = reg["flow_id"]
    identity = {"id_type": "resident_id", "id_number": id_number, "name": SELLER_NAME, "address": "上海市"}
    status, body = call(api, "put", f"/v1/flows/{flow_id}/identity", seller, identity)
    assert status == 200, body
    front = id_front(name=SELLER_NAME, id_number=id_number, address="上海市", portrait=portrait)
    for kind, photo in ((DocumentKind.ID_FRONT, front), (DocumentKind.ID_BACK, id_back())):
        assert upload(api, seller, flow_id, kind, photo)[0] == 201
        status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", seller)
        assert status == 200, reading
    session = start_sideways(api, seller, flow_id)
    frames = burst(session["challenge"]["direction"], name=SELLER_LIVE)
    status, outcome = send_burst(api, seller, flow_id, session, frames)
    assert (status, outcome["passed"]) == (200, True), outcome
    status, reg = accept_all(api, seller, reg_id)
    assert (status, reg["step"]) == (200, "submit"), reg
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", seller)
    assert (status, reg["step"]) == (200, "pending"), reg
    if not accepted:
        return None
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    party = holder_of(vin)
    assert party is not None
    return party


def buyer_chooses_transfer(api: Any, buyer: Headers, vin: str) -> str:
    """The buyer shows they hold the car (head-unit code), hears it is someone else's and transferable,
    and goes on as a transfer."""
    reg_id = started(api, buyer, vin, BUYER_PHONE)
    status, err = by_head_unit(api, buyer, reg_id, vin)
    assert (status, err["code"]) == (409, "possession.vehicle_claimed"), err
    assert err["details"]["transferable"] is True
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    assert (reg["step"], reg["possession"]["transferable"]) == ("possession", True), reg
    status, reg = call(api, "post", f"{REG}/{reg_id}/transfer", buyer)
    assert (status, reg["step"]) == (200, "identity"), reg
    assert reg["possession"]["transfer"] is True
    assert len(reg["cards"]) == 1
    return reg_id


def buyer_submits(api: Any, buyer: Headers, reg_id: str) -> dict[str, Any]:
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    prove_identity(api, buyer, reg["flow_id"])
    status, reg = accept_all(api, buyer, reg_id)
    assert (status, reg["step"]) == (200, "submit"), reg
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", buyer)
    assert (status, reg["step"]) == (200, "pending"), reg
    return dict(reg)


def my_vehicle(api: Any, me: Headers) -> dict[str, Any]:
    status, mine = call(api, "get", "/v1/me/vehicles", me)
    assert status == 200, mine
    (vehicle,) = mine["vehicles"]
    return dict(vehicle)


def test_a_buyer_transfers_the_car_the_seller_is_told_and_it_is_the_buyers_once_the_operator_accepts(
    api: Any, buyer: Headers, seller: Headers, identity_authority: Any, vin: str
) -> None:
    seller_party = seller_registers(api, seller, identity_authority, vin)
    # Given the buyer went on as a transfer and was verified as a registration is
    reg_id = buyer_chooses_transfer(api, buyer, vin)
    assert transfer_records() == 0
    # When the buyer submits
    reg = buyer_submits(api, buyer, reg_id)
    # Then the transfer is pushed once, the card stays the seller's meanwhile, and the seller is told
    assert transfer_records() == 1
    assert holder_of(vin) == seller_party
    assert reg["cards"][0]["state"] == "registered"
    assert any("申请过户" in t for t in texts_to(SELLER_PHONE))
    status, again = call(api, "post", f"{REG}/{reg_id}/submit", buyer)
    assert (status, again["step"], transfer_records()) == (200, "pending", 1)
    assert my_vehicle(api, seller)["step"] == "registered"
    assert my_vehicle(api, buyer)["step"] == "pending"
    # When the operator accepts the buyer's registration
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    # Then the card is the buyer's and the buyer hears so
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    assert reg["step"] == "registered", reg
    buyer_party = holder_of(vin)
    assert buyer_party not in (None, seller_party)
    assert any("过户实名登记成功" in t for t in texts_to(BUYER_PHONE))
    mine = my_vehicle(api, buyer)
    assert (mine["step"], mine["cards"][0]["state"]) == ("registered", "registered")
    # And the seller's vehicles show it transferred, no longer theirs (nothing of the buyer shown)
    theirs = my_vehicle(api, seller)
    assert theirs["step"] == "transferred", theirs
    assert theirs["cards"][0]["history"][-1]["event"] == "transferred"
    assert buyer_party not in str(theirs)
    # And the seller's service end is in the card's history: when, and whose (retention, 第十八条)
    ended = [e for e in deps.inventory_repo().history(iccid_of(vin)) if e.event == "transferred"]
    assert len(ended) == 1
    assert transferred_from(ended[0].reason) == seller_party
    # And the seller can no longer de-register it
    status, err = call(api, "post", "/v1/me/deregistrations", seller, {"vin": vin})
    assert (status, err["code"]) == (403, "vehicle.not_yours"), err


def test_a_buyer_who_fails_the_face_check_changes_nothing(
    api: Any, buyer: Headers, seller: Headers, identity_authority: Any, vin: str
) -> None:
    seller_party = seller_registers(api, seller, identity_authority, vin)
    seller_texts = len(texts_to(SELLER_PHONE))
    reg_id = buyer_chooses_transfer(api, buyer, vin)
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    flow_id = reg["flow_id"]
    # Given the buyer's ID card read, but another face before the camera
    identity = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }
    assert call(api, "put", f"/v1/flows/{flow_id}/identity", buyer, identity)[0] == 200
    for kind, photo in (
        (DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT)),
        (DocumentKind.ID_BACK, id_back()),
    ):
        assert upload(api, buyer, flow_id, kind, photo)[0] == 201
        assert call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", buyer)[0] == 200
    session = start_sideways(api, buyer, flow_id)
    status, outcome = send_burst(
        api, buyer, flow_id, session, burst(session["challenge"]["direction"], STRANGER)
    )
    assert (status, outcome["passed"]) == (200, False), outcome
    # When the buyer submits anyway
    status, err = call(api, "post", f"{REG}/{reg_id}/submit", buyer)
    # Then it is refused: nothing pushed, the seller keeps the card and hears nothing
    assert (status, err["code"], err["details"]["step"]) == (409, "registration.step_out_of_order", "face")
    assert transfer_records() == 0
    assert holder_of(vin) == seller_party
    assert len(texts_to(SELLER_PHONE)) == seller_texts
    assert my_vehicle(api, seller)["step"] == "registered"
    status, mine = call(api, "get", "/v1/me/vehicles", buyer)
    assert mine["vehicles"] == []


def test_a_transfer_the_operator_refuses_leaves_the_seller_registered_and_the_buyer_is_told(
    api: Any, buyer: Headers, seller: Headers, identity_authority: Any, vin: str
) -> None:
    seller_party = seller_registers(api, seller, identity_authority, vin)
    reg_id = buyer_chooses_transfer(api, buyer, vin)
    buyer_submits(api, buyer, reg_id)
    # When the operator refuses the buyer's registration
    answer_card(iccid_of(vin), CallbackOutcome.REJECTED, "证件信息核验不一致")
    # Then the buyer reads the refusal and its reason, and hears it by SMS
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    assert reg["step"] == "rejected", reg
    assert "证件信息核验不一致" in reg["result"]["reason_zh"]
    assert any("过户未获电信企业同意" in t and "证件信息核验不一致" in t for t in texts_to(BUYER_PHONE))
    assert my_vehicle(api, buyer)["step"] == "rejected"
    # And the seller keeps the card, registered, and may still de-register it
    assert holder_of(vin) == seller_party
    assert my_vehicle(api, seller)["step"] == "registered"
    status, dereg = call(api, "post", "/v1/me/deregistrations", seller, {"vin": vin})
    assert status == 201, dereg


def test_a_pending_registration_is_not_transferable(
    api: Any, buyer: Headers, seller: Headers, identity_authority: Any, vin: str
) -> None:
    # Given someone else's registration of the car still with the operator
    seller_registers(api, seller, identity_authority, vin, accepted=False)
    reg_id = started(api, buyer, vin, BUYER_PHONE)
    # When the buyer shows possession
    status, err = by_head_unit(api, buyer, reg_id, vin)
    # Then it is contestable, not transferable, and a transfer is refused
    assert (status, err["code"], err["details"]["transferable"]) == (409, "possession.vehicle_claimed", False)
    status, err = call(api, "post", f"{REG}/{reg_id}/transfer", buyer)
    assert (status, err["code"]) == (409, "transfer.not_transferable"), err


def test_the_oem_opens_a_transfer_for_a_dealer_and_the_buyer_shows_possession_by_phone(
    api: Any, buyer: Headers, seller: Headers, admin: Headers, identity_authority: Any, vin: str
) -> None:
    seller_party = seller_registers(api, seller, identity_authority, vin)
    # Given the OEM, at a dealer's request, opens a transfer to the buyer's phone
    doc = {"buyer_phone": BUYER_PHONE, "dealer_code": "D-0451"}
    status, opened = call(api, "post", f"/v1/admin/vehicles/{vin}/transfers", admin, doc)
    assert status == 201, opened
    assert (opened["vin"], opened["dealer_code"]) == (vin, "D-0451")
    assert opened["cards"][0]["events"] == ["transfer_opened"]
    opened_at = deps.inventory_repo().history(iccid_of(vin))[-1]
    assert (opened_at.event, opened_at.actor) == ("transfer_opened", "admin-7")
    assert "D-0451" in (opened_at.reason or "")
    # When the buyer verifies that phone: possession is shown by it, and the car is transferable
    reg_id = started(api, buyer, vin, BUYER_PHONE)
    status, reg = call(api, "get", f"{REG}/{reg_id}", buyer)
    assert reg["possession"]["method"] == "sales_phone", reg
    assert (reg["possession"]["proved"], reg["possession"]["transferable"]) == (True, True)
    status, reg = call(api, "post", f"{REG}/{reg_id}/transfer", buyer)
    assert (status, reg["step"]) == (200, "identity"), reg
    # Then the buyer's transfer goes as any other
    buyer_submits(api, buyer, reg_id)
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    assert holder_of(vin) not in (None, seller_party)
    assert my_vehicle(api, seller)["step"] == "transferred"


def test_the_oem_cannot_open_a_transfer_of_an_unknown_or_unregistered_vehicle(
    api: Any, admin: Headers, vin: str
) -> None:
    doc = {"buyer_phone": BUYER_PHONE, "dealer_code": "D-0451"}
    status, err = call(api, "post", f"/v1/admin/vehicles/{vin}/transfers", admin, doc)
    assert (status, err["code"]) == (409, "transfer.not_transferable"), err
    vehicle = deps.inventory_repo().get_vehicle(vin)
    assert vehicle is not None
    assert vehicle.owner_phone_hash != deps.sms_code_service().phone_hash(BUYER_PHONE)
    status, err = call(api, "post", "/v1/admin/vehicles/LSVAA4182E2123456/transfers", admin, doc)
    assert status in (404, 422), err
    status, err = call(api, "post", f"/v1/admin/vehicles/{vin}/transfers", admin, {"buyer_phone": "123"})
    assert status == 422, err


def test_an_admin_correction_without_a_reason_is_refused_at_the_field(
    api: Any, admin: Headers, vin: str
) -> None:
    iccid = iccid_of(vin)
    for doc in ({"holder_id": "p1"}, {"holder_id": "p1", "reason": "   "}):
        status, err = call(api, "post", f"/v1/admin/cards/{iccid}/transfer", admin, doc)
        assert status == 422, err
        fields = [e.get("field") for e in err.get("errors", [err])]
        assert "reason" in fields, err
