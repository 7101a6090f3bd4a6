"""委托登记 belongs to the owner, through the API: a trustee registers a car for its owner; once the
operator accepts, the owner, signed in with the phone the trustee gave for them, sees the car in 我的车辆
and de-registers it with their own face; the trustee reads it as registered for the (masked) owner and
may not de-register it; the operator hears the owner's phone as the card's contact, not the trustee's."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.kernel.personal import mask_name
from chalicelib.local.synthetic import make_resident_id
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (
    DEREG,
    PHONE,
    REG,
    accept_all,
    operator_answers,
    prove_identity,
    prove_possession,
    sms_code,
)
from tests.integration.test_registration_flow import vins as vins  # the demo inventory fixture
from tests.integration.test_verification_api import burst, call, send_burst, start_sideways, upload
from tests.synthetic_documents import authorization_letter, id_back, id_front, id_photo, require_cjk_font

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

Headers = dict[str, str]

TRUSTEE = "trustee-t"
OWNER_PHONE = "13700002222"
OWNER_NAME = "赵六"
OWNER_ADDRESS = "上海市浦东新区世纪大道100号"
#: The owner is another person than the trustee: their card's portrait from one photo, the live owner
#: from another photo of the same person.
OWNER_CARD = "biden_1.jpg"
OWNER_LIVE = "biden_2.jpg"
#: The owner's ID card is valid until then (its back, read by OCR): kept and pushed with the owner.
OWNER_VALID_UNTIL = date(2031, 5, 1)


@pytest.fixture
def trustee(token: Callable[..., str]) -> Headers:
    return {"Authorization": f"Bearer {token('owner', subject=TRUSTEE)}", "Content-Type": "application/json"}


class Owner:
    """The owner the trustee registers for: a real person to the identity authority, with a face."""

    def __init__(self, identity_authority: Any) -> None:
        from chalicelib.adapters.faces.local import LocalFaceEngine
        from chalicelib.local.sandbox_authority import Citizen

        self.id_number = make_resident_id(random.Random(77))
        self.portrait = id_photo(LocalFaceEngine(), FACES / OWNER_CARD)
        identity_authority.register(
            Citizen(name=OWNER_NAME, id_number=self.id_number, portrait=self.portrait, phone=OWNER_PHONE)
        )

    @property
    def identity(self) -> dict[str, str]:
        return {
            "id_type": "resident_id",
            "id_number": self.id_number,
            "name": OWNER_NAME,
            "address": OWNER_ADDRESS,
        }

    def card(self) -> bytes:
        return id_front(
            name=OWNER_NAME,
            id_number=self.id_number,
            address=OWNER_ADDRESS,
            portrait=self.portrait,
            fmt="JPEG",
        )


def register_for(api: Any, trustee: Headers, vin: str, owner: Owner) -> str:
    """The trustee's whole delegated registration, the owner confirming by the code sent to their
    phone, submitted (pending with the operator)."""
    status, reg = call(api, "post", REG, trustee, {"vin": vin, "delegated": True})
    assert status == 201, reg
    reg_id = str(reg["registration_id"])
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", trustee, {})
    code = sms_code(api, PHONE, "owner_phone", trustee)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", trustee, {"phone": PHONE, "code": code})
    assert status == 200, reg
    reg = prove_possession(api, trustee, reg_id, vin)
    flow_id = reg["flow_id"]
    letter = authorization_letter(owner_name=OWNER_NAME, owner_id_number=owner.id_number, vin=vin, fmt="JPEG")
    assert upload(api, trustee, flow_id, DocumentKind.OWNER_ID_FRONT, owner.card())[0] == 201
    owner_back = id_back(valid_until=OWNER_VALID_UNTIL, fmt="JPEG")
    assert upload(api, trustee, flow_id, DocumentKind.OWNER_ID_BACK, owner_back)[0] == 201
    assert upload(api, trustee, flow_id, DocumentKind.AUTHORIZATION_LETTER, letter)[0] == 201
    body = {"owner": owner.identity, "owner_phone": OWNER_PHONE}
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation", trustee, body)
    assert (status, reg["step"]) == (200, "delegation"), reg
    status, sent = call(api, "post", f"{REG}/{reg_id}/delegation/code", trustee)
    assert status == 202, sent
    text = deps.sms_drop().recent(1)[0].text
    owner_code = "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation/confirm", trustee, {"code": owner_code})
    assert (status, reg["step"]) == (200, "identity"), reg
    prove_identity(api, trustee, flow_id)
    status, reg = accept_all(api, trustee, reg_id)
    assert (status, reg["step"]) == (200, "submit"), reg
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", trustee)
    assert (status, reg["step"]) == (200, "pending"), reg
    return reg_id


def sign_in(api: Any, phone: str) -> Headers:
    """The person holding ``phone`` signs in with its SMS login code (an owner token)."""
    anonymous = {"Content-Type": "application/json"}
    code = sms_code(api, phone, "login", anonymous)
    status, signed = call(api, "post", "/v1/auth/login", anonymous, {"phone": phone, "code": code})
    assert status == 200, signed
    return {"Authorization": f"Bearer {signed['token']}", "Content-Type": "application/json"}


def prove_owner(api: Any, me: Headers, flow_id: str, owner: Owner) -> None:
    """The owner's own identity, ID card read on both sides and their live face against its portrait."""
    status, body = call(api, "put", f"/v1/flows/{flow_id}/identity", me, owner.identity)
    assert status == 200, body
    for kind, photo in ((DocumentKind.ID_FRONT, owner.card()), (DocumentKind.ID_BACK, id_back(fmt="JPEG"))):
        status, doc = upload(api, me, flow_id, kind, photo)
        assert status == 201, doc
        status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", me)
        assert status == 200, reading
    session = start_sideways(api, me, flow_id)
    frames = burst(session["challenge"]["direction"], name=OWNER_LIVE)
    status, outcome = send_burst(api, me, flow_id, session, frames)
    assert status == 200, outcome
    assert outcome["passed"] is True, outcome


def test_the_owner_sees_and_deregisters_the_car_a_trustee_registered_for_them(
    api: Any, trustee: Headers, vins: list[str], identity_authority: Any
) -> None:
    require_cjk_font()
    vin = vins[2]
    owner = Owner(identity_authority)
    # Given a trustee registered the car for its owner, and the operator accepted it
    reg_id = register_for(api, trustee, vin, owner)
    (card,) = deps.inventory_repo().cards_of_vehicle(vin)
    record_id = deps.outbox_store().lifecycle(card.iccid).message_id
    assert record_id is not None
    # The operator hears the owner as the holder, with the owner's phone as the contact
    pushed = deps.outbox_store().get(record_id)
    assert pushed is not None
    assert pushed.message.holder is not None
    assert (pushed.message.holder.id_number, pushed.message.holder.phone) == (owner.id_number, OWNER_PHONE)
    # and the owner's ID validity as its back was read (not 长期)
    assert pushed.message.holder.id_valid_until == OWNER_VALID_UNTIL.isoformat()
    operator_answers(vin, CallbackOutcome.ACCEPTED)
    # The owner is told by SMS, on their own phone, that a registration in their name succeeded
    told = [m for m in deps.sms_drop().recent(10) if "受托人已为您名下的车辆" in m.text]
    assert len(told) == 1, [m.text for m in deps.sms_drop().recent(10)]
    assert told[0].phone.endswith(OWNER_PHONE[-4:])
    assert vin[-6:] in told[0].text
    # When the owner signs in with the phone the trustee gave for them
    me = sign_in(api, OWNER_PHONE)
    status, mine = call(api, "get", "/v1/me/vehicles", me)
    assert status == 200, mine
    # Then the car is theirs in 我的车辆, registered
    (vehicle,) = mine["vehicles"]
    assert (vehicle["registration_id"], vehicle["step"]) == (reg_id, "registered"), vehicle
    assert (vehicle["delegated"], vehicle["registered_for"]) == (True, None)
    assert [c["state"] for c in vehicle["cards"]] == ["registered"]
    # And the trustee reads it as registered for the masked owner, and may not de-register it
    status, theirs = call(api, "get", "/v1/me/vehicles", trustee)
    (registered_for,) = theirs["vehicles"]
    assert registered_for["registered_for"] == mask_name(OWNER_NAME) != OWNER_NAME
    status, err = call(api, "post", DEREG, trustee, {"vin": vin})
    assert (status, err["code"]) == (403, "deregistration.registered_for_owner"), err
    assert err["message_zh"]
    assert err["message_en"]
    # When the owner de-registers it: the phone given for them, then their own face
    status, dereg = call(api, "post", DEREG, me, {"vin": vin})
    assert (status, dereg["step"]) == (201, "verify_phone"), dereg
    dereg_id = dereg["registration_id"]
    code = sms_code(api, PHONE, "deregistration", me)
    status, err = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    assert (status, err["code"]) == (422, "phone.not_registered"), err  # the trustee's phone is not theirs
    code = sms_code(api, OWNER_PHONE, "deregistration", me)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": OWNER_PHONE, "code": code})
    assert (status, dereg["step"]) == (200, "documents"), dereg  # the registered identity
    prove_owner(api, me, dereg["flow_id"], owner)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    assert (status, dereg["step"]) == (200, "pending"), dereg
    operator_answers(vin, CallbackOutcome.ACCEPTED)
    # Then the card is de-registered, and the owner's 我的车辆 says so
    assert deps.inventory_repo().cards_of_vehicle(vin)[0].state.value == "unregistered"
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert (status, dereg["step"]) == (200, "deregistered"), dereg
    _, mine = call(api, "get", "/v1/me/vehicles", me)
    assert [(v["step"], v["deregistration"]["step"]) for v in mine["vehicles"]] == [
        ("deregistered", "deregistered")
    ]


def test_the_trustees_face_cannot_end_a_registration_made_for_the_owner(
    api: Any, trustee: Headers, vins: list[str], identity_authority: Any
) -> None:
    """Even signed in with the owner's phone, a de-registration is the face-checked holder's only."""
    require_cjk_font()
    vin = vins[3]
    owner = Owner(identity_authority)
    register_for(api, trustee, vin, owner)
    operator_answers(vin, CallbackOutcome.ACCEPTED)
    me = sign_in(api, OWNER_PHONE)
    status, dereg = call(api, "post", DEREG, me, {"vin": vin})
    assert status == 201, dereg
    dereg_id = dereg["registration_id"]
    code = sms_code(api, OWNER_PHONE, "deregistration", me)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": OWNER_PHONE, "code": code})
    assert status == 200, dereg
    # When the person face-checked is the trustee, not the owner
    prove_identity(api, me, dereg["flow_id"])
    status, err = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    # Then nothing is pushed and the card stays registered to the owner
    assert (status, err["code"]) == (403, "deregistration.not_holder"), err
    assert deps.inventory_repo().cards_of_vehicle(vin)[0].state.value == "registered"
