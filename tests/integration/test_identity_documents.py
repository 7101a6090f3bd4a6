"""如实登记 (第五条/第八条): the ID card's true validity read from its back, kept with the party and
pushed; an expired ID refused; documents OCR cannot read (passports, permits) sent to a reviewer at once."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageOps

from chalicelib.adapters.dynamo.models import PartyModel
from chalicelib.adapters.dynamo.models_outbox import OutboxModel
from chalicelib.core import deps
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration import test_registration_flow as registration_flow
from tests.integration.test_registration_flow import (
    PHONE,
    REG,
    Headers,
    accept_all,
    operator_answers,
    prove_possession,
    sms_code,
)
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    burst,
    call,
    consent_to_face_check,
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
    require_cjk_font,
)

# The registration walk's fixtures (an owner's headers, an imported inventory).
person = registration_flow.person
vins = registration_flow.vins

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")


def up_to_identity(api: Any, me: dict[str, str], vin: str) -> dict[str, Any]:
    """A registration walked through the phone and possession steps, at its identity step."""
    status, reg = call(api, "post", REG, me, {"vin": vin})
    assert status == 201, reg
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    assert (status, reg["step"]) == (200, "possession"), reg
    reg = prove_possession(api, me, reg_id, vin)
    assert reg["step"] == "identity", reg
    return reg


def type_identity(api: Any, me: dict[str, str], flow_id: str, **identity: str) -> None:
    body = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
        **identity,
    }
    status, shown = call(api, "put", f"/v1/flows/{flow_id}/identity", me, body)
    assert status == 200, shown
    consent_to_face_check(api, me, flow_id)  # before any face is processed (the ID front's portrait)


def read(api: Any, me: dict[str, str], flow_id: str, kind: DocumentKind, photo: bytes) -> tuple[int, Any]:
    status, doc = upload(api, me, flow_id, kind, photo)
    assert status == 201, doc
    return call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", me)


def face_check(api: Any, me: dict[str, str], flow_id: str) -> dict[str, Any]:
    session = start_sideways(api, me, flow_id)
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert status == 200, outcome
    return dict(outcome)


def pushed_holder(iccid: str) -> dict[str, Any]:
    """The holder of the register push for ``iccid`` as the outbox keeps it (opened)."""
    records = [r for r in OutboxModel.scan() if r.kind == "register" and r.iccid == iccid]
    assert len(records) == 1
    record = deps.outbox_store().get(records[0].record_id)
    assert record is not None
    holder: dict[str, Any] = record.message.model_dump(mode="json")["holder"]
    return holder


def test_an_expired_id_card_is_refused_at_its_back_and_the_flow_cannot_go_on(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[0])
    flow_id = reg["flow_id"]
    type_identity(api, me, flow_id)
    status, front = read(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    assert status == 200, front
    # When the back shows a validity that ended
    status, err = read(
        api,
        me,
        flow_id,
        DocumentKind.ID_BACK,
        id_back(valid_from=date(2000, 1, 1), valid_until=date(2020, 1, 1)),
    )
    # Then it is refused on the ID back with the date, in both languages
    assert (status, err["code"], err["field"]) == (422, "id_card.expired", "id_back"), err
    assert err["details"]["valid_until"] == "2020-01-01"
    assert err["message_zh"]
    assert err["message_en"]
    # And the registration stays at its documents: consents (and so the submit) are out of order
    status, shown = call(api, "get", f"{REG}/{reg['registration_id']}", me)
    assert shown["step"] == "documents", shown
    status, refused = accept_all(api, me, reg["registration_id"])
    assert status == 409, refused
    # And a valid back lets it go on
    status, back = read(api, me, flow_id, DocumentKind.ID_BACK, id_back())
    assert status == 200, back


@pytest.mark.parametrize(
    ("valid_until", "stored", "pushed"),
    [(date(2035, 6, 1), date(2035, 6, 1), "2035-06-01"), (None, None, None)],
    ids=["dated", "permanent"],
)
def test_the_validity_read_from_the_id_back_is_kept_with_the_party_and_pushed(
    api: Any,
    person: Headers,
    vins: list[str],
    valid_until: date | None,
    stored: date | None,
    pushed: str | None,
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[1])
    reg_id, flow_id = reg["registration_id"], reg["flow_id"]
    type_identity(api, me, flow_id)
    status, _ = read(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    assert status == 200
    status, back = read(api, me, flow_id, DocumentKind.ID_BACK, id_back(valid_until=valid_until))
    assert status == 200, back
    assert face_check(api, me, flow_id)["passed"] is True
    status, shown = accept_all(api, me, reg_id)
    assert (status, shown["step"]) == (200, "submit"), shown
    status, shown = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, shown["step"]) == (200, "pending"), shown
    iccid = deps.inventory_repo().cards_of_vehicle(vins[1])[0].iccid
    # Then the push carries the ID's end date (None only for 长期)
    holder = pushed_holder(iccid)
    assert holder["id_valid_until"] == pushed
    # And once registered, the party keeps the validity, the end date sealed (never in clear)
    operator_answers(vins[1], CallbackOutcome.ACCEPTED)
    card = deps.inventory_repo().cards_of_vehicle(vins[1])[0]
    assert card.holder_id is not None
    party = deps.party_repo().get(card.holder_id)
    assert party is not None
    assert (party.id_valid_until, party.id_permanent) == (stored, valid_until is None)
    item = PartyModel.get(card.holder_id)
    assert item.id_valid_until is None
    assert (item.id_valid_until_enc is not None) == (valid_until is not None)
    if item.id_valid_until_enc is not None:
        assert b"2035" not in bytes(item.id_valid_until_enc)


PASSPORT_NUMBER = "E12345678"
PASSPORT_NAME = "SMITH JOHN"


def passport_page(portrait: Path) -> bytes:
    """A passport's data page: the holder's printed portrait and the machine-readable zone (drawn; OCR
    of the product does not read passports)."""
    page = Image.new("RGB", (880, 620), (224, 232, 240))
    draw = ImageDraw.Draw(page)
    draw.text((300, 60), "PASSPORT", fill=(20, 20, 60))
    draw.text((300, 120), f"Surname/Given names: {PASSPORT_NAME}", fill=(20, 20, 60))
    draw.text((300, 170), f"Passport No.: {PASSPORT_NUMBER}", fill=(20, 20, 60))
    draw.text((40, 540), f"P<GBR{PASSPORT_NAME.replace(' ', '<<')}<<<<<<<<<<<<<<<<<<<<<<", fill=(0, 0, 0))
    with Image.open(portrait) as source:
        page.paste(ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), (220, 280)), (40, 60))
    out = io.BytesIO()
    page.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_a_passport_holder_goes_to_a_reviewer_at_once_and_the_approval_lets_the_flow_go_on(
    api: Any, person: Headers, vins: list[str], auth: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[2])
    reg_id, flow_id = reg["registration_id"], reg["flow_id"]
    type_identity(api, me, flow_id, id_type="passport", id_number=PASSPORT_NUMBER, name=PASSPORT_NAME)
    # When the passport's data page is uploaded and read
    status, outcome = read(api, me, flow_id, DocumentKind.ID_FRONT, passport_page(FACES / CARD_PORTRAIT))
    # Then it is not refused as an unreadable ID card: a review case is opened at once
    assert status == 200, outcome
    assert outcome["review_case_id"], outcome
    assert outcome["agreed"] is False
    flow = call(api, "get", f"/v1/flows/{flow_id}", me)[1]
    assert flow["status"] == "in_review"
    status, shown = call(api, "get", f"{REG}/{reg_id}", me)
    assert shown["step"] == "review", shown
    # And the reviewer has what they need: the reason, the document photo and the typed identity
    reviewer = auth("reviewer")
    case_path = f"/v1/review-cases/{outcome['review_case_id']}?reason=review-passport"
    status, case = call(api, "get", case_path, reviewer)
    assert status == 200, case
    assert case["case"]["reason"] == "document_not_machine_readable"
    assert case["documents"]["id_front"]
    assert case["flow"]["identity"]["id_type"] == "passport"
    assert case["flow"]["identity"]["id_number"] == PASSPORT_NUMBER
    # When the reviewer approves the document
    body = {"decision": "approve", "note": "data page agrees with the typed identity"}
    status, decided = call(
        api, "post", f"/v1/review-cases/{outcome['review_case_id']}/decision", reviewer, body
    )
    assert (status, decided["status"]) == (200, "approved"), decided
    # Then the person goes on with the face check against the passport's portrait
    flow = call(api, "get", f"/v1/flows/{flow_id}", me)[1]
    assert flow["status"] == "open"
    assert (flow["checks"]["ocr_id_front"], flow["checks"]["ocr_id_back"]) == ("approved", "approved")
    assert "face" not in flow["checks"]
    assert face_check(api, me, flow_id)["passed"] is True
    # And the registration is submitted with the passport holder pushed
    status, shown = accept_all(api, me, reg_id)
    assert (status, shown["step"]) == (200, "submit"), shown
    status, shown = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, shown["step"]) == (200, "pending"), shown
    holder = pushed_holder(deps.inventory_repo().cards_of_vehicle(vins[2])[0].iccid)
    assert (holder["id_type"], holder["id_number"]) == ("passport", PASSPORT_NUMBER)


def test_a_rejected_passport_closes_the_flow(
    api: Any, person: Headers, vins: list[str], auth: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[3])
    flow_id = reg["flow_id"]
    type_identity(api, me, flow_id, id_type="passport", id_number=PASSPORT_NUMBER, name=PASSPORT_NAME)
    _, outcome = read(api, me, flow_id, DocumentKind.ID_FRONT, passport_page(FACES / CARD_PORTRAIT))
    body = {"decision": "reject", "note": "portrait and data page do not belong together"}
    status, _ = call(
        api, "post", f"/v1/review-cases/{outcome['review_case_id']}/decision", auth("reviewer"), body
    )
    assert status == 200
    flow = call(api, "get", f"/v1/flows/{flow_id}", me)[1]
    assert flow["status"] == "rejected"
    status, err = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)
    assert (status, err["code"]) == (409, "flow.not_open")
