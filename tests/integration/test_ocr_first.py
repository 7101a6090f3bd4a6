"""识别后确认 (OCR first, then confirm), through the API: the ID card is photographed and read before the
identity is given, the reading fills the form the owner confirms or corrects, and the cross-check then
compares the confirmed values with the card (a typo is corrected in the form, the good photo stays).
A de-registration takes the registered identity instead of asking it again. And the messages the owner
reads about the photos and the ID number say what happened and what to do, once, without jargon."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration import test_registration_flow as registration_flow
from tests.integration.test_identity_documents import up_to_identity
from tests.integration.test_registration_flow import (
    DEREG,
    PHONE,
    REG,
    Headers,
    accept_all,
    operator_answers,
    register,
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

person = registration_flow.person
vins = registration_flow.vins

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")


def photographed(api: Any, me: dict[str, str], flow_id: str, kind: DocumentKind, photo: bytes) -> None:
    status, doc = upload(api, me, flow_id, kind, photo)
    assert status == 201, doc


def reading(api: Any, me: dict[str, str], flow_id: str, kind: DocumentKind) -> tuple[int, Any]:
    return call(api, "post", f"/v1/flows/{flow_id}/readings/{kind.value}", me)


def confirm(api: Any, me: dict[str, str], flow_id: str, **fields: str) -> tuple[int, Any]:
    """The form as the owner confirms it, then the cross-check of both sides with it."""
    body = {"id_type": "resident_id", **fields}
    status, shown = call(api, "put", f"/v1/flows/{flow_id}/identity", me, body)
    if status != 200:
        return status, shown
    for kind in (DocumentKind.ID_FRONT, DocumentKind.ID_BACK):
        status, read = call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind.value}", me)
        if status != 200:
            return status, read
    return status, read


def step_of(api: Any, me: dict[str, str], path: str, reg_id: str) -> str:
    status, reg = call(api, "get", f"{path}/{reg_id}", me)
    assert status == 200, reg
    return str(reg["step"])


def test_the_id_card_is_read_first_and_a_typo_in_the_confirmed_form_is_corrected_not_retaken(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[0])
    reg_id, flow_id = reg["registration_id"], reg["flow_id"]
    consent_to_face_check(api, me, flow_id)
    # Given both sides photographed before anything is typed
    photographed(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    photographed(api, me, flow_id, DocumentKind.ID_BACK, id_back(valid_until=date(2035, 6, 1)))
    # When they are read, then the owner gets the card's fields back, in clear, to confirm
    status, front = reading(api, me, flow_id, DocumentKind.ID_FRONT)
    assert status == 200, front
    assert (front["reading"]["name"], front["reading"]["id_number"]) == (PERSON_NAME, PERSON_ID_NUMBER)
    assert front["reading"]["address"] == PERSON_ADDRESS
    status, back = reading(api, me, flow_id, DocumentKind.ID_BACK)
    assert status == 200, back
    assert back["reading"]["valid_until"] == "2035-06-01"
    # And nothing is checked yet: the step is still the identity, the checks not recorded
    assert step_of(api, me, REG, reg_id) == "identity"
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert "ocr_id_front" not in flow["checks"], flow
    assert flow["identity"] is None, flow
    # And the cross-check itself still needs the identity: a client that skips the form cannot go on
    status, refused = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert status == 409, refused
    assert accept_all(api, me, reg_id)[0] == 409

    # When the owner's correction of the form leaves a wrong name
    status, err = confirm(api, me, flow_id, id_number=PERSON_ID_NUMBER, name="王小红", address=PERSON_ADDRESS)
    # Then the name is refused under its field, telling to check it against the card (no retake)
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "name"), err
    assert "姓名" in err["message_zh"], err
    assert "核对" in err["message_zh"], err
    assert "拍摄" not in err["message_zh"], err
    assert step_of(api, me, REG, reg_id) == "documents"
    # When the owner corrects it, the same photos agree: on to the face
    status, ok = confirm(
        api, me, flow_id, id_number=PERSON_ID_NUMBER, name=PERSON_NAME, address=PERSON_ADDRESS
    )
    assert status == 200, ok
    assert step_of(api, me, REG, reg_id) == "face"
    # And the validity read from the back is the identity's (what goes to the party and the push)
    session = start_sideways(api, me, flow_id)
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert (status, outcome["passed"]) == (200, True), outcome


def test_the_back_in_the_front_slot_is_told_it_is_the_back_and_the_front_in_the_back_slot_too(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[1])
    flow_id = reg["flow_id"]
    # When the back is chosen for the front
    status, err = upload(api, me, flow_id, DocumentKind.ID_FRONT, id_back(fmt="JPEG"))
    # Then the owner is told it is the 国徽面 and which side to photograph, not "no portrait"
    assert (status, err["code"], err["field"]) == (422, "id_card.back_side", "id_front"), err
    assert "国徽面" in err["message_zh"], err
    assert "人像面" in err["message_zh"], err
    assert "未找到人像" not in err["message_zh"]
    # When the front is chosen for the back, the owner is told it is the portrait side
    photographed(api, me, flow_id, DocumentKind.ID_BACK, id_front(portrait=FACES / CARD_PORTRAIT))
    status, err = reading(api, me, flow_id, DocumentKind.ID_BACK)
    assert (status, err["code"]) == (422, "id_card.front_side"), err
    assert "人像面" in err["message_zh"], err
    assert "国徽面" in err["message_zh"], err
    # And a photo with no card at all still says what it says (no portrait found)
    blank = id_front()  # a front without its portrait
    status, err = upload(api, me, flow_id, DocumentKind.ID_FRONT, blank)
    assert (status, err["code"]) == (422, "id_card.no_portrait"), err


def test_an_expired_card_is_told_as_expired_with_what_to_do_when_it_is_read(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    reg = up_to_identity(api, me, vins[2])
    flow_id = reg["flow_id"]
    expired = id_back(valid_from=date(2000, 1, 1), valid_until=date(2020, 1, 1))
    photographed(api, me, flow_id, DocumentKind.ID_BACK, expired)
    status, err = reading(api, me, flow_id, DocumentKind.ID_BACK)
    # Then it says the card has expired (with its date) and to use a valid one, not to retake it
    assert (status, err["code"], err["field"]) == (422, "id_card.expired", "id_back"), err
    assert "已过有效期" in err["message_zh"], err
    assert "2020-01-01" in err["message_zh"], err
    assert "有效期内的身份证" in err["message_zh"], err
    assert "重新拍摄" not in err["message_zh"], err


def test_a_wrong_id_number_says_to_check_it_and_that_the_last_may_be_x(
    api: Any, person: Headers, vins: list[str]
) -> None:
    me = person()
    reg = up_to_identity(api, me, vins[0])
    wrong = PERSON_ID_NUMBER[:17] + ("0" if PERSON_ID_NUMBER[17] != "0" else "1")
    body = {"id_type": "resident_id", "id_number": wrong, "name": PERSON_NAME, "address": PERSON_ADDRESS}
    status, err = call(api, "put", f"/v1/flows/{reg['flow_id']}/identity", me, body)
    assert (status, err["code"], err["field"]) == (422, "resident_id.check_char", "id_number"), err
    assert "校验位" not in err["message_zh"], err
    assert "核对" in err["message_zh"], err
    assert "X" in err["message_zh"], err


def test_a_vin_with_a_wrong_check_digit_hints_at_characters_easily_confused(
    api: Any, person: Headers, vins: list[str]
) -> None:
    me = person()
    vin = vins[0][:8] + ("0" if vins[0][8] != "0" else "1") + vins[0][9:]
    status, err = call(api, "post", REG, me, {"vin": vin})
    assert (status, err["code"]) == (422, "vin.check_digit"), err
    assert "校验位" not in err["message_zh"], err
    assert "0 与字母 D" in err["message_zh"], err
    assert "8 与 B" in err["message_zh"], err


def test_a_token_that_is_not_valid_says_to_log_in_again(api: Any) -> None:
    headers = {"Authorization": "Bearer not-a-token", "Content-Type": "application/json"}
    status, err = call(api, "get", "/v1/me/vehicles", headers)
    assert (status, err["code"]) == (401, "auth.invalid"), err
    assert err["message_zh"] == "登录状态已失效，请重新登录"
    assert "认证信息" not in err["message_zh"]


def test_a_deregistration_takes_the_registered_identity_and_the_card_must_be_that_holders(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    register(api, me, vins[1])
    operator_answers(vins[1], CallbackOutcome.ACCEPTED)
    status, dereg = call(api, "post", DEREG, me, {"vin": vins[1]})
    assert status == 201, dereg
    dereg_id = dereg["registration_id"]
    code = sms_code(api, PHONE, "deregistration", me)
    status, dereg = call(api, "post", f"{DEREG}/{dereg_id}/phone", me, {"phone": PHONE, "code": code})
    # Then the identity is the registered holder's (masked), and the photos are due: nothing to type
    assert (status, dereg["step"]) == (200, "documents"), dereg
    flow_id = dereg["flow_id"]
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    shown = flow["identity"]
    assert shown["name"] == PERSON_NAME[0] + "*" * (len(PERSON_NAME) - 1), shown
    assert shown["id_number"].endswith(PERSON_ID_NUMBER[-4:])
    assert PERSON_ID_NUMBER not in str(flow)
    # When someone else's card is photographed, it does not agree with the registered identity
    other = id_front(name="王小红", portrait=FACES / CARD_PORTRAIT)
    photographed(api, me, flow_id, DocumentKind.ID_FRONT, other)
    status, err = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "name"), err
    # When the holder's own card is photographed, both sides agree and the face comes next
    photographed(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    photographed(api, me, flow_id, DocumentKind.ID_BACK, id_back())
    for kind in ("id_front", "id_back"):
        status, read = call(api, "post", f"/v1/flows/{flow_id}/ocr/{kind}", me)
        assert status == 200, read
    assert step_of(api, me, DEREG, dereg_id) == "face"
