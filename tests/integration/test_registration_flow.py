"""The owner's registration and de-registration through the API, on the embedded AWS with the real
local engines: SMS codes from the local SMS drop, OCR of synthetic ID cards, liveness and portrait match
with real faces from ``../shared/faces``, the outbox push, the operator's answer and the result SMS."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.core.settings import get_settings
from chalicelib.local.synthetic import inventory_rows, make_resident_id, make_vin
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.registration.service import RegistrationService
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    burst,
    call,
    s3,
    send_burst,
    start_sideways,
    stored_keys,
    upload,
)
from tests.synthetic_documents import (
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    authorization_letter,
    id_back,
    id_front,
    require_cjk_font,
)

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

OWNER = "owner-a"
OTHER = "owner-b"
PHONE = "13912345678"
#: The owner's own phone in a delegated registration (委托登记): the owner confirms with its code.
OWNER_PHONE = "13700001111"
REG = "/v1/me/registrations"
DEREG = "/v1/me/deregistrations"

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def person(token: Callable[..., str]) -> Headers:
    def headers(subject: str = OWNER) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token('owner', subject=subject)}",
            "Content-Type": "application/json",
        }

    return headers


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # One phone gets several codes within a test: no 60 s wait between them (tested in test_sms_codes).
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(4, seed=23))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return [row["vin"] for row in rows]


def sms_code(api: Any, phone: str, purpose: str, headers: dict[str, str]) -> str:
    status, sent = call(api, "post", "/v1/auth/sms-codes", headers, {"phone": phone, "purpose": purpose})
    assert status == 202, sent
    text = deps.sms_drop().recent(1)[0].text
    return "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]


def outbox_records(kind: str) -> int:
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel

    return sum(1 for r in OutboxModel.scan() if r.kind == kind)


def prove_identity(api: Any, me: dict[str, str], flow_id: str, *, name: str = PERSON_NAME) -> None:
    """Identity, both sides of the ID card read by OCR, and a live face that matches the portrait."""
    identity = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": name,
        "address": PERSON_ADDRESS,
    }
    status, body = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity)
    assert status == 200, body
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
    assert status == 200, outcome
    assert outcome["passed"] is True, outcome


def accept_all(api: Any, me: dict[str, str], reg_id: str) -> tuple[int, Any]:
    status, texts = call(api, "get", "/v1/consents", me)
    assert status == 200
    accepted = [
        {"kind": d["kind"], "version": d["version"], "sha256": d["sha256"]} for d in texts["documents"]
    ]
    return call(api, "post", f"{REG}/{reg_id}/consents", me, {"accepted": accepted, "client": {"ua": "test"}})


def head_unit_code(vin: str) -> str:
    """The code the car's head unit shows now (the sandbox telematics' drop)."""
    return deps.vehicle_channel().recent(vin, 1)[0].code


def prove_possession(api: Any, me: dict[str, str], reg_id: str, vin: str) -> dict[str, Any]:
    """Possession of the car shown by the one-time code its head unit displays."""
    status, sent = call(api, "post", f"{REG}/{reg_id}/possession/head-unit-code", me)
    assert status == 202, sent
    body = {"method": "head_unit", "code": head_unit_code(vin)}
    status, reg = call(api, "post", f"{REG}/{reg_id}/possession", me, body)
    assert status == 200, reg
    return dict(reg)


def register(api: Any, me: dict[str, str], vin: str, *, submit: bool = True) -> dict[str, Any]:
    """A whole registration up to the operator's answer (pending), or up to the submit step."""
    status, reg = call(api, "post", REG, me, {"vin": vin})
    assert status == 201, reg
    reg_id = reg["registration_id"]
    status, reg = call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    assert (status, reg["step"]) == (200, "verify_phone"), reg
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    assert (status, reg["step"]) == (200, "possession"), reg
    reg = prove_possession(api, me, reg_id, vin)
    assert reg["step"] == "identity", reg
    prove_identity(api, me, reg["flow_id"])
    status, reg = call(api, "get", f"{REG}/{reg_id}", me)
    assert reg["step"] == "consents", reg
    status, reg = accept_all(api, me, reg_id)
    assert (status, reg["step"]) == (200, "submit"), reg
    if not submit:
        return dict(reg)
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, reg["step"]) == (200, "pending"), reg
    return dict(reg)


def operator_answers(vin: str, outcome: CallbackOutcome, reason: str | None = None) -> None:
    """The operator's callback for the vehicle's (first) card, applied as the callback route applies it."""
    answer_card(deps.inventory_repo().cards_of_vehicle(vin)[0].iccid, outcome, reason)


def test_an_owner_registers_a_vehicle_and_hears_the_result(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    # Given a whole registration submitted
    reg = register(api, me, vins[0])
    reg_id = reg["registration_id"]
    # Then everything shown is masked
    assert reg["vehicle"]["vin_masked"] != vins[0]
    assert reg["vehicle"]["vin_masked"].endswith(vins[0][-6:])
    assert reg["phone_masked"] == "139****5678"
    assert PHONE not in json.dumps(reg)
    assert PERSON_ID_NUMBER not in json.dumps(reg)
    assert reg["cards"][0]["state"] == "pending"
    # And a second submit changes nothing: one registration, one push
    status, again = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, again["step"]) == (200, "pending")
    assert outbox_records("register") == 1
    # When the operator accepts
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    # Then the registration is registered, the SMS says so, and my vehicles show it
    status, reg = call(api, "get", f"{REG}/{reg_id}", me)
    assert reg["step"] == "registered"
    assert reg["cards"][0]["state"] == "registered"
    assert "实名登记成功" in deps.sms_drop().recent(1)[0].text
    status, mine = call(api, "get", "/v1/me/vehicles", me)
    assert status == 200
    assert len(mine["vehicles"]) == 1
    card = mine["vehicles"][0]["cards"][0]
    assert card["state"] == "registered"
    assert "telematics" in card["functions"]
    assert [h["to_state"] for h in card["history"]][-2:] == ["pending", "registered"]
    assert "*" in card["iccid_masked"]
    assert "*" in card["msisdn_masked"]
    # And the live capture is kept encrypted with the registration (现场拍摄留存), the flow kept too
    keys = stored_keys(reg["flow_id"])
    live = [k for k in keys if "/live_capture/" in k]
    assert live
    kept = deps.registration_service().store.get(reg_id)
    assert kept is not None
    assert kept.onsite_photo == live[0]
    head = s3().head_object(Bucket=get_settings().documents_bucket, Key=live[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    flow = deps.verification_service().flow(reg["flow_id"], OWNER)
    assert flow.expires_at > datetime.now(UTC) + timedelta(days=365)
    # And the submitted evidence is closed: no photo of it can be replaced
    status, err = call(
        api,
        "post",
        f"/v1/flows/{reg['flow_id']}/uploads",
        me,
        {"kind": "id_back", "content_type": "image/jpeg"},
    )
    assert (status, err["code"]) == (409, "flow.not_open")
    # And someone else starting the vehicle learns nothing of it (possession is shown first)
    status, other = call(api, "post", REG, person(OTHER), {"vin": vins[0]})
    assert (status, other["step"], other["cards"]) == (201, "confirm_vehicle", [])
    assert other["vehicle"]["brand"] == ""


def test_a_refusal_is_shown_with_the_operators_reason(api: Any, person: Headers, vins: list[str]) -> None:
    require_cjk_font()
    me = person()
    reg = register(api, me, vins[1])
    operator_answers(vins[1], CallbackOutcome.REJECTED, reason="该证件在黑名单中")
    _status, reg = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert reg["step"] == "rejected"
    assert reg["result"]["reason_zh"] == "该证件在黑名单中"
    assert reg["cards"][0]["state"] == "unregistered"
    assert reg["cards"][0]["functions"] == ["emergency"]
    assert "未通过" in deps.sms_drop().recent(1)[0].text


def test_steps_run_in_order_and_belong_to_their_owner(api: Any, person: Headers, vins: list[str]) -> None:
    me, other = person(), person(OTHER)
    # A VIN with a bad check digit, and an unknown one
    bad = vins[0][:8] + ("0" if vins[0][8] != "0" else "1") + vins[0][9:]
    status, err = call(api, "post", REG, me, {"vin": bad})
    assert (status, err["code"], err["field"]) == (422, err["code"], "vin")
    assert err["code"].startswith("vin.")
    unknown = make_vin(random.Random(99))
    assert unknown not in vins
    status, stranger = call(api, "post", REG, me, {"vin": unknown})
    assert (status, stranger["step"]) == (201, "confirm_vehicle")
    # Steps out of order
    status, reg = call(api, "post", REG, me, {"vin": vins[2]})
    assert (status, reg["step"]) == (201, "confirm_vehicle")
    reg_id = reg["registration_id"]
    for path, body in (("phone", {"phone": PHONE, "code": "123456"}), ("submit", None)):
        status, err = call(api, "post", f"{REG}/{reg_id}/{path}", me, body)
        assert (status, err["code"]) == (409, "registration.step_out_of_order"), err
        assert err["details"]["step"] == "confirm_vehicle"
    status, err = accept_all(api, me, reg_id)
    assert (status, err["code"]) == (409, "registration.step_out_of_order")
    # Starting again resumes the same registration
    status, resumed = call(api, "post", REG, me, {"vin": vins[2]})
    assert (status, resumed["registration_id"]) == (200, reg_id)
    # Another person's registration: 403 and nothing about it
    status, err = call(api, "get", f"{REG}/{reg_id}", other)
    assert status == 403
    assert vins[2] not in json.dumps(err)
    assert "vehicle" not in err
    status, err = call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", other, {})
    assert status == 403
    # Nobody can de-register a vehicle that is not registered to them
    status, err = call(api, "post", DEREG, other, {"vin": vins[2]})
    assert (status, err["code"]) == (403, "vehicle.not_yours")
    # A wrong SMS code is refused and changes nothing
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    wrong = "000000" if code != "000000" else "111111"
    status, err = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": wrong})
    assert (status, err["code"]) == (422, "sms.code_wrong") or status == 400, err
    status, reg = call(api, "get", f"{REG}/{reg_id}", me)
    assert reg["step"] == "verify_phone"
    assert reg["flow_id"] is None


def test_outdated_or_partial_consents_are_refused(api: Any, person: Headers, vins: list[str]) -> None:
    from chalicelib.registration.domain.registrations import RegistrationStatus

    me = person()
    _status, reg = call(api, "post", REG, me, {"vin": vins[3]})
    reg_id = reg["registration_id"]
    repo = deps.registration_service().store
    stored = repo.get(reg_id)
    assert stored is not None
    assert stored.status is RegistrationStatus.OPEN
    # (the consents step reached directly: the checks before it are tested above)
    from chalicelib.consents.domain import AcceptedConsent
    from chalicelib.consents.texts import check_consents, consent_documents
    from chalicelib.kernel.errors import InvalidField

    docs = consent_documents()
    full = [AcceptedConsent(kind=d.kind, version=d.version, sha256=d.sha256) for d in docs]
    check_consents(full)
    with pytest.raises(InvalidField) as missing:
        check_consents(full[1:])
    assert missing.value.code == "consent.missing"
    with pytest.raises(InvalidField) as outdated:
        check_consents([*full[:-1], full[-1].model_copy(update={"sha256": "0" * 64})])
    check_consents(full[:2])  # the biometric consent is given before the face step, on the flow
    assert outdated.value.code == "consent.outdated"
    assert {d.kind.value for d in docs} == {
        "registration_agreement",
        "responsibility_notice",
        "biometric_consent",
    }


def test_an_abandoned_registration_expires_and_its_photos_are_purged(
    api: Any, person: Headers, vins: list[str]
) -> None:
    me = person()
    status, reg = call(api, "post", REG, me, {"vin": vins[3]})
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    flow_id = reg["flow_id"]
    status, _doc = upload(api, me, flow_id, DocumentKind.ID_BACK, id_back())
    assert status == 201
    assert stored_keys(flow_id)
    # When both expire
    service = deps.registration_service()
    past = datetime.now(UTC) - timedelta(minutes=1)
    stored = service.store.get(reg_id)
    assert stored is not None
    service.store.save(stored.model_copy(update={"expires_at": past, "version": stored.version + 1}))
    verification = deps.verification_service()
    flow = verification.flow(flow_id, OWNER)
    verification.flows._flows.save(flow.model_copy(update={"expires_at": past, "version": flow.version + 1}))
    # Then the registration is gone for its owner, and the purge deletes it with the photos
    status, err = call(api, "get", f"{REG}/{reg_id}", me)
    assert (status, err["code"]) == (404, "registration.not_found")
    assert service.purge_abandoned() == {"registrations": 1, "flows": 1, "finished": 0, "released": 0}
    assert stored_keys(flow_id) == []
    assert service.store.get(reg_id) is None
    assert service.purge_abandoned()["flows"] == 0


def test_the_registered_person_deregisters_with_phone_and_face(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    register(api, me, vins[0])
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    # When the owner de-registers the vehicle
    status, dereg = call(api, "post", DEREG, me, {"vin": vins[0]})
    assert (status, dereg["step"]) == (201, "verify_phone"), dereg
    dereg_id = dereg["registration_id"]
    # Another phone than the one registered is refused
    other_phone = "13700001111"
    code = sms_code(api, other_phone, "deregistration", me)
    status, err = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": other_phone, "code": code})
    assert (status, err["code"]) == (422, "phone.not_registered")
    code = sms_code(api, PHONE, "deregistration", me)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    assert (status, dereg["step"]) == (200, "documents"), dereg  # the registered identity
    prove_identity(api, me, dereg["flow_id"])
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert dereg["step"] == "submit", dereg
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    # Then the operator is told, and the de-registration waits for its answer
    assert (status, dereg["step"]) == (200, "pending"), dereg
    assert deps.inventory_repo().cards_of_vehicle(vins[0])[0].state.value == "registered"
    assert "已注销实名" not in deps.sms_drop().recent(1)[0].text
    # And once the operator accepts, the card is back to emergency-only and the person gets an SMS
    operator_answers(vins[0], CallbackOutcome.ACCEPTED)
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert (status, dereg["step"]) == (200, "deregistered"), dereg
    card = deps.inventory_repo().cards_of_vehicle(vins[0])[0]
    assert card.state.value == "unregistered"
    assert card.functions == [CardFunction.EMERGENCY]
    assert outbox_records("deregister") == 1
    assert "注销" in deps.sms_drop().recent(1)[0].text
    # And the vehicle can be registered anew
    status, fresh = call(api, "post", REG, person(OTHER), {"vin": vins[0]})
    assert status == 201, fresh


def test_a_trustee_registers_for_the_owner_with_the_authorization_letter(
    api: Any, person: Headers, vins: list[str], identity_authority: Any
) -> None:
    from chalicelib.local.sandbox_authority import Citizen

    require_cjk_font()
    me = person()
    status, reg = call(api, "post", REG, me, {"vin": vins[1], "delegated": True})
    assert status == 201
    assert reg["delegated"] is True
    assert reg["steps"][:4] == ["confirm_vehicle", "verify_phone", "possession", "delegation"]
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    reg = prove_possession(api, me, reg_id, vins[1])
    assert reg["step"] == "delegation"
    owner_id = make_resident_id(random.Random(5))
    # The owner is a real person, and the carrier holds the owner's phone in the owner's name
    identity_authority.register(Citizen(name="李四", id_number=owner_id, phone=OWNER_PHONE))
    owner = {"id_type": "resident_id", "id_number": owner_id, "name": "李四", "address": "上海市"}
    body = {"owner": owner, "owner_phone": OWNER_PHONE}
    # Without the letter the delegation is refused
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, body)
    assert (status, err["code"]) == (422, "delegation.letter_missing")
    # A letter drawn for another car is uploaded first
    other_car = authorization_letter(owner_name="李四", owner_id_number=owner_id, vin=vins[2], fmt="JPEG")
    status, doc = upload(api, me, reg["flow_id"], DocumentKind.AUTHORIZATION_LETTER, other_car)
    assert status == 201, doc
    # The owner's ID card is required too (第十二条), and must be the owner's
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, body)
    assert (status, err["code"]) == (422, "delegation.owner_id_missing")
    # (the back of the owner's ID card too: its validity is registered, 第五条)
    assert upload(api, me, reg["flow_id"], DocumentKind.OWNER_ID_BACK, id_back(fmt="JPEG"))[0] == 201
    someone_else = make_resident_id(random.Random(6))
    wrong_card = id_front(name="李四", id_number=someone_else, address="上海市", fmt="JPEG")
    assert upload(api, me, reg["flow_id"], DocumentKind.OWNER_ID_FRONT, wrong_card)[0] == 201
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, body)
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "owner.id_number"), err
    owner_card = id_front(name="李四", id_number=owner_id, address="上海市", fmt="JPEG")
    assert upload(api, me, reg["flow_id"], DocumentKind.OWNER_ID_FRONT, owner_card)[0] == 201
    # The letter is read: one for another car is refused, and nothing is recorded
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, body)
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "authorization_letter.vin"), err
    assert call(api, "get", f"{REG}/{reg_id}", me)[1]["delegation"] is None
    letter = authorization_letter(owner_name="李四", owner_id_number=owner_id, vin=vins[1], fmt="JPEG")
    assert upload(api, me, reg["flow_id"], DocumentKind.AUTHORIZATION_LETTER, letter)[0] == 201
    # A phone the carrier does not hold in the owner's name (运营商三要素) is refused, nothing recorded
    strangers = {**body, "owner_phone": "13655556666"}
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, strangers)
    assert (status, err["code"], err["field"]) == (422, "delegation.phone_not_owners", "owner_phone"), err
    assert call(api, "get", f"{REG}/{reg_id}", me)[1]["delegation"] is None
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation", me, body)
    assert (status, reg["step"]) == (200, "delegation"), reg
    assert reg["delegation"]["owner_id_photo"] is True
    assert reg["delegation"]["letter"] is True
    assert reg["delegation"]["confirmed"] is False
    assert owner_id not in json.dumps(reg)
    assert OWNER_PHONE not in json.dumps(reg)
    # Until the owner confirms, the registration goes no further
    status, err = accept_all(api, me, reg_id)
    assert (status, err["code"]) == (409, "registration.step_out_of_order"), err
    # The owner's code is sent by the delegation step only, to the owner's phone
    status, err = call(
        api, "post", "/v1/auth/sms-codes", me, {"phone": OWNER_PHONE, "purpose": "delegation_confirm"}
    )
    assert (status, err["code"]) == (422, "sms.purpose_not_here")
    status, sent = call(api, "post", f"{REG}/{reg_id}/delegation/code", me)
    assert status == 202, sent
    message = deps.sms_drop().recent(1)[0]
    assert "委托他人办理" in message.text
    owner_code = "".join(ch for ch in message.text.split("验证码")[1] if ch.isdigit())[:6]
    wrong = "000000" if owner_code != "000000" else "111111"
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation/confirm", me, {"code": wrong})
    assert (status, err["code"]) == (422, "sms.code_wrong"), err
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation/confirm", me, {"code": owner_code})
    assert (status, reg["step"]) == (200, "identity"), reg
    assert (reg["delegation"]["confirmed"], reg["delegation"]["confirmed_by"]) == (True, "sms")
    # The trustee proves their own identity, then consents and submits
    prove_identity(api, me, reg["flow_id"])
    # Once the face was checked, neither the owner nor the letter can change
    other_owner = {"owner": {**owner, "name": "王五"}, "owner_phone": OWNER_PHONE}
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation", me, other_owner)
    assert (status, err["code"]) == (409, "delegation.locked")
    status, err = call(
        api,
        "post",
        f"/v1/flows/{reg['flow_id']}/uploads",
        me,
        {"kind": "authorization_letter", "content_type": "image/jpeg"},
    )
    assert (status, err["code"]) == (409, "flow.documents_locked")
    status, reg = accept_all(api, me, reg_id)
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert reg["step"] == "pending", reg
    # Both identities are recorded: the card's holder is the owner, the flow verified the trustee
    card = deps.inventory_repo().cards_of_vehicle(vins[1])[0]
    assert card.holder_id is not None
    holder = deps.party_repo().get(card.holder_id)
    assert holder is not None
    assert holder.id_number == owner_id
    assert holder.name == "李四"
    flow = deps.verification_service().flow(reg["flow_id"], OWNER)
    assert flow.identity is not None
    assert flow.identity.id_number == PERSON_ID_NUMBER


def clock_at(monkeypatch: pytest.MonkeyPatch, service: RegistrationService, at: datetime) -> None:
    """The registration use cases' clock reads ``at`` (until ``monkeypatch.undo()``)."""
    for part in (
        service.registrations,
        service.steps,
        service.submission,
        service.results,
        service.housekeeping,
    ):
        monkeypatch.setattr(part, "_clock", lambda: at)


def timed_out(*_: Any) -> Any:
    """Stands for a request that dies at this point (a Lambda timeout)."""
    raise RuntimeError("the Lambda timed out")


def test_a_submit_that_dies_after_the_push_is_finished_by_the_recovery(
    api: Any, person: Headers, vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_cjk_font()
    me = person()
    reg = register(api, me, vins[2], submit=False)
    reg_id = reg["registration_id"]
    service = deps.registration_service()

    # Given a submit whose request dies right after the push committed
    monkeypatch.setattr(service.submission, "_finish", timed_out)
    status, err = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert status == 500, err
    monkeypatch.undo()
    # Then the card is pending with its push, the flow is kept, and the person sees "pending"
    assert outbox_records("register") == 1
    status, shown = call(api, "get", f"{REG}/{reg_id}", me)
    assert shown["step"] == "pending"
    flow = deps.verification_service().flow(reg["flow_id"], OWNER)
    assert flow.expires_at > datetime.now(UTC) + timedelta(days=365)
    # And the operator answers before anything recorded the submission: nobody can be told yet
    sent_before = len(deps.sms_drop().recent(100))
    operator_answers(vins[2], CallbackOutcome.ACCEPTED)
    assert len(deps.sms_drop().recent(100)) == sent_before
    # When the recovery runs after the claim went stale, the submission is finished (no second push)
    # and the person gets the result SMS
    later = datetime.now(UTC) + timedelta(minutes=5)
    clock_at(monkeypatch, service, later)
    assert service.recover_stuck() == {"finished": 1, "released": 0}
    monkeypatch.undo()
    assert outbox_records("register") == 1
    assert "实名登记成功" in deps.sms_drop().recent(1)[0].text


def test_a_submit_that_dies_before_the_push_is_opened_again(
    api: Any, person: Headers, vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_cjk_font()
    me = person()
    reg = register(api, me, vins[3], submit=False)
    reg_id = reg["registration_id"]
    service = deps.registration_service()

    monkeypatch.setattr(deps.lifecycle(), "submit_registrations", timed_out)
    status, _ = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert status == 500
    monkeypatch.undo()
    assert outbox_records("register") == 0
    later = datetime.now(UTC) + timedelta(minutes=5)
    clock_at(monkeypatch, service, later)
    assert service.recover_stuck() == {"finished": 0, "released": 1}
    monkeypatch.undo()
    # The person can submit again, and this time it goes through once
    status, shown = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, shown["step"]) == (200, "pending"), shown
    assert outbox_records("register") == 1


def test_the_eleventh_card_of_one_id_is_refused_with_the_way_to_a_business_hall(
    api: Any, person: Headers, vins: list[str]
) -> None:
    from chalicelib.adapters.dynamo.models_outbox import CardsPerIdModel
    from chalicelib.kernel.personal import IdType, id_lookup_value

    require_cjk_font()
    me = person()
    reg = register(api, me, vins[1], submit=False)
    reg_id = reg["registration_id"]
    # Given the person already holds ten active cards with this card's operator
    card = deps.inventory_repo().cards_of_vehicle(vins[1])[0]
    id_hash = deps.keyed_hasher().digest(id_lookup_value(IdType.RESIDENT_ID, PERSON_ID_NUMBER))
    CardsPerIdModel(f"{id_hash}#{card.operator.value}", active=10, updated_at=datetime.now(UTC)).save()
    # When they submit, the card is refused online, with the business hall to go to
    status, err = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, err["code"]) == (409, "registration.cards_per_id_exceeded"), err
    assert "营业厅" in err["message_zh"]
    assert "business hall" in err["message_en"]
    # And nothing changed: the card is unregistered, nothing is pushed, the registration is open again
    assert deps.inventory_repo().get_card(card.iccid).state.value == "unregistered"  # type: ignore[union-attr]
    assert outbox_records("register") == 0
    from chalicelib.adapters.dynamo.models import PartyModel

    assert list(PartyModel.scan()) == []  # the holder's personal data is not kept for a refused push
    status, shown = call(api, "get", f"{REG}/{reg_id}", me)
    assert shown["step"] == "submit"
    assert shown["expires_at"] is not None


def test_a_registration_waiting_for_review_outlives_its_expiry(
    api: Any, person: Headers, vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.registration.domain.registrations import RegistrationKind
    from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus

    me = person()
    status, reg = call(api, "post", REG, me, {"vin": vins[2]})
    assert status == 201
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    reg = prove_possession(api, me, reg_id, vins[2])
    # Given its face attempts ran out and a reviewer has the case (the flow as request_review leaves it)
    verification = deps.verification_service()
    flow = verification.flow(reg["flow_id"], OWNER)
    reviewing = flow.model_copy(
        update={
            "status": FlowStatus.IN_REVIEW,
            "checks": {CheckName.FACE: CheckVerdict.IN_REVIEW},
            "expires_at": datetime.now(UTC) + timedelta(days=14),
            "version": flow.version + 1,
        }
    )
    verification.flows._flows.save(reviewing)
    # When a day and more has passed
    service = deps.registration_service()
    later = datetime.now(UTC) + timedelta(hours=25)
    clock_at(monkeypatch, service, later)
    monkeypatch.setattr(verification.flows, "_clock", lambda: later)
    # Then the purge keeps both, and the person still finds the registration waiting for the review
    counts = service.purge_abandoned()
    assert (counts["registrations"], counts["flows"]) == (0, 0)
    shown = service.get(reg_id, OWNER, RegistrationKind.REGISTRATION)
    assert shown.step.value == "review"
    assert verification.flow(reg["flow_id"], OWNER).status is FlowStatus.IN_REVIEW


def test_my_vehicles_show_only_my_own_part_of_a_cards_history(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    # Given someone else registered the car first and was refused
    register(api, person(OTHER), vins[3])
    operator_answers(vins[3], CallbackOutcome.REJECTED, reason="该证件在黑名单中")
    # When I register it and the operator accepts
    me = person()
    register(api, me, vins[3])
    operator_answers(vins[3], CallbackOutcome.ACCEPTED)
    # Then my vehicles show my registration's history only
    status, mine = call(api, "get", "/v1/me/vehicles", me)
    assert status == 200
    history = mine["vehicles"][0]["cards"][0]["history"]
    assert [h["to_state"] for h in history] == ["pending", "registered"]
    assert "黑名单" not in json.dumps(mine)
    # And the person refused before no longer sees the car, which is registered to someone else now
    _, theirs = call(api, "get", "/v1/me/vehicles", person(OTHER))
    assert theirs["vehicles"] == []


@pytest.fixture
def two_card_vin(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(1, seed=41, cards_per_vehicle=2))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    assert len(rows) == 2
    return rows[0]["vin"]


def answer_card(iccid: str, outcome: CallbackOutcome, reason: str | None = None) -> None:
    card = deps.inventory_repo().get_card(iccid)
    assert card is not None
    record_id = deps.outbox_store().lifecycle(iccid).message_id
    assert record_id is not None
    deps.lifecycle().apply_callback(
        OperatorCallback(
            callback_id=uuid.uuid4().hex,
            message_id=record_id,
            operator=card.operator,
            iccid=iccid,
            outcome=outcome,
            reason_code="blacklisted" if reason else None,
            reason_zh=reason,
            reason_en="refused" if reason else None,
            functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS]
            if outcome is CallbackOutcome.ACCEPTED
            else [],
            decided_at=datetime.now(UTC),
        )
    )
    deps.registration_service().on_push_result(record_id)


def test_a_two_card_vehicle_is_decided_when_both_cards_are(
    api: Any, person: Headers, two_card_vin: str
) -> None:
    require_cjk_font()
    me = person()
    reg = register(api, me, two_card_vin)
    first, second = (c.iccid for c in deps.inventory_repo().cards_of_vehicle(two_card_vin))
    assert outbox_records("register") == 2  # both cards pushed, in one transaction
    sent = len(deps.sms_drop().recent(100))
    # When the operator refuses one card while the other is still with it, the registration waits
    answer_card(first, CallbackOutcome.REJECTED, reason="该证件在黑名单中")
    _, shown = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert shown["step"] == "pending"
    assert len(deps.sms_drop().recent(100)) == sent
    # And once the second is answered it is decided, with the refusal's reason, told once
    answer_card(second, CallbackOutcome.ACCEPTED)
    _, shown = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert (shown["step"], shown["result"]["reason_zh"]) == ("rejected", "该证件在黑名单中")
    assert len(deps.sms_drop().recent(100)) == sent + 1


def test_a_de_registration_that_dies_half_way_is_finished_by_the_next_submit(
    api: Any, person: Headers, two_card_vin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_cjk_font()
    me = person()
    register(api, me, two_card_vin)
    cards = [c.iccid for c in deps.inventory_repo().cards_of_vehicle(two_card_vin)]
    for iccid in cards:
        answer_card(iccid, CallbackOutcome.ACCEPTED)
    status, dereg = call(api, "post", DEREG, me, {"vin": two_card_vin})
    assert status == 201, dereg
    dereg_id = dereg["registration_id"]
    code = sms_code(api, PHONE, "deregistration", me)
    _, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    prove_identity(api, me, dereg["flow_id"])
    # Given a submit whose request dies after the first card was de-registered
    lifecycle = deps.lifecycle()
    real = lifecycle.deregister
    calls: list[str] = []

    def dies_on_the_second(iccid: str, actor: str, reason: str) -> Any:
        calls.append(iccid)
        if len(calls) == 2:
            timed_out()
        return real(iccid, actor, reason)

    monkeypatch.setattr(lifecycle, "deregister", dies_on_the_second)
    status, _ = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    assert status == 500
    monkeypatch.undo()
    assert outbox_records("deregister") == 1
    # When the person submits again, the other card's de-registration is pushed too
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/submit", me)
    assert (status, dereg["step"]) == (200, "pending"), dereg
    assert outbox_records("deregister") == 2
    # And once the operator accepts both, both are back to emergency-only and the result is told
    for iccid in cards:
        answer_card(iccid, CallbackOutcome.ACCEPTED)
    status, dereg = call(api, "get", f"{DEREG}/{dereg_id}", me)
    assert (status, dereg["step"]) == (200, "deregistered"), dereg
    states = sorted(deps.inventory_repo().get_card(i).state.value for i in cards)  # type: ignore[union-attr]
    assert states == ["unregistered", "unregistered"]
    assert "注销" in deps.sms_drop().recent(1)[0].text
