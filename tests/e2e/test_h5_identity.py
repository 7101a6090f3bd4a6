"""识别后确认 in the browser: the owner photographs the ID card first and confirms what was read.

One story, as a phone owner lives it: the phone step offers the phone they logged in with; the back of
the card chosen for the front is told as the back (国徽面), an expired card as expired with what to do;
the reading fills the form, a wrong ID number is told to be checked (the last character may be X) and a
wrong name under the name (the good photos stay); the car is registered; then it is de-registered with
no identity typed again — only the photos and the face prove it is the same person.

Screenshots of each screen checked are saved under the test's tmp dir (``screenshots/``).
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_lifecycle import agree_and_submit, settled, take_vehicle, text
from tests.e2e.test_h5_registration import (
    Phone,
    consent_before_the_photos,
    pass_face_check,
    show_possession,
)
from tests.e2e.test_h5_registration import phone as phone  # the browser fixture
from tests.face_photos import CARD_PORTRAIT, FACES
from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME, id_back, id_front

LOGIN = "13600136201"


def log_in(me: Phone, phone_number: str) -> None:
    me.open()
    if me.wait_screen("login", "home") == "home":
        me.tap("#sign-out")
        me.wait_screen("login")
    me.fill("#login-phone", phone_number)
    code = me.sms_code(phone_number, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-agree")  # 已阅读并同意《用户协议》《隐私政策》
    me.tap("#login-submit")
    me.wait_screen("home")


def take_the_offered_phone(me: Phone) -> None:
    """The phone step with the login phone already there: one tap for the code, then on."""
    me.wait_screen("verify_phone")
    assert me.element("#owner-phone").get_attribute("value") == LOGIN
    assert "已填入您登录的手机号 136****6201" in text(me, "#phone-hint")
    code = me.sms_code(LOGIN, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)


def photo(me: Phone, kind: str, path: Path) -> str:
    """One side of the ID card through its camera input: ``done`` or ``failed`` once it is read."""
    me.choose_files(f"#doc-{kind}-camera", path)
    return str(me.wait_until(f"the {kind} photo", functools.partial(me.photo_read, kind), 45))


def test_an_owner_photographs_the_id_card_first_confirms_the_reading_and_deregisters_without_retyping(
    phone: Phone, stack: Stack
) -> None:
    me = phone
    vin = take_vehicle(stack, from_end=True)
    front = me.write("id_front.jpg", id_front(portrait=FACES / CARD_PORTRAIT, fmt="JPEG"))
    back = me.write("id_back.jpg", id_back(valid_until=date(2035, 6, 1), fmt="JPEG"))
    expired = me.write(
        "expired.jpg", id_back(valid_from=date(2000, 1, 1), valid_until=date(2020, 1, 1), fmt="JPEG")
    )

    # Given an owner logged in, registering their car
    log_in(me, LOGIN)
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    # Then the phone step offers the phone they logged in with (another could be typed)
    take_the_offered_phone(me)
    me.shot("phone-offered")
    me.tap("#phone-submit")
    show_possession(me, vin)

    # Then the ID card comes first: no identity to type, the photos asked for
    consent_before_the_photos(me)
    assert me.screen() == "documents"
    assert "核对确认" in text(me, 'section[data-screen="documents"] > .hint')
    assert not me.element("#confirm-form").is_displayed()
    assert "拍摄证件" in text(me, "#progress-text")

    # When the back is chosen for the front, it is told to be the back, and which side to take
    assert photo(me, "id_front", back) == "failed", me.messages()
    told = text(me, "#doc-id_front .doc-status")
    assert "国徽面" in told, told
    assert "人像面" in told, told
    assert "未找到人像" not in told
    assert told.count("拍摄") == 1, told  # the remedy said once
    me.shot("back-in-the-front-slot")

    # When the front is taken and an expired card's back, the card is told expired with what to do
    assert photo(me, "id_front", front) == "done", me.messages()
    assert photo(me, "id_back", expired) == "failed", me.messages()
    told = text(me, "#doc-id_back .doc-status")
    assert "已过有效期" in told, told
    assert "有效期内的身份证" in told, told
    assert "重新拍摄" not in told, told
    assert not me.element("#confirm-form").is_displayed()
    me.shot("expired-card")

    # When the valid back is taken, the form is filled from the reading, to be confirmed
    assert photo(me, "id_back", back) == "done", me.messages()
    me.wait_until("the form to confirm", lambda: me.element("#confirm-form").is_displayed())
    assert me.element("#confirm-name").get_attribute("value") == PERSON_NAME
    assert me.element("#confirm-id-number").get_attribute("value") == PERSON_ID_NUMBER
    assert me.element("#confirm-address").get_attribute("value") == PERSON_ADDRESS
    assert "2035-06-01" in text(me, "#confirm-validity")
    me.driver.execute_script("document.getElementById('confirm-form').scrollIntoView()")
    me.shot("reading-to-confirm")

    # When a digit of the number is changed by mistake, the owner is told to check it (X, not 校验位)
    wrong = PERSON_ID_NUMBER[:17] + ("0" if PERSON_ID_NUMBER[17] != "0" else "1")
    me.fill("#confirm-id-number", wrong)
    me.tap("#confirm-submit")
    refusal = me.wait_until(
        "the number's refusal", lambda: me.element("#confirm-id-number ~ .field-error").text
    )
    assert "核对" in refusal, refusal
    assert "X" in refusal, refusal
    assert "校验位" not in refusal
    me.shot("id-number-to-check")

    # When the number is back and the name is changed, the name is refused under it: check, not retake
    me.fill("#confirm-id-number", PERSON_ID_NUMBER)
    me.fill("#confirm-name", "王小红")
    me.tap("#confirm-submit")
    refusal = me.wait_until("the name's refusal", lambda: me.element("#confirm-name ~ .field-error").text, 45)
    assert "姓名" in refusal, refusal
    assert "核对" in refusal, refusal
    assert "拍摄" not in refusal, refusal
    assert me.photo_read("id_front") == "done"  # the good photos stay
    assert me.photo_read("id_back") == "done"
    me.shot("name-to-correct")

    # When the name is corrected, the card agrees and the face comes next
    me.fill("#confirm-name", PERSON_NAME)
    me.tap("#confirm-submit")
    pass_face_check(me, camera=False)
    agree_and_submit(me)
    assert settled(me) == "registered", me.messages()

    # When the owner de-registers the car
    me.tap("#result-vehicles")
    me.wait_screen("vehicles")
    me.wait_until(
        "the car among mine",
        lambda: any(
            e.is_displayed() for e in me.driver.find_elements("css selector", "#vehicle-list .deregister")
        ),
    )
    me.tap("#vehicle-list .deregister")
    if me.wait_screen("vin", "deregister_vehicle") == "vin":
        me.fill("#vin-input", vin)
        me.tap("#vin-submit")
    else:
        me.tap("#deregister-start")
    take_the_offered_phone(me)
    me.tap("#phone-submit")
    # Then no identity is asked: the registered one is used, and the card's photos are checked with it
    consent_before_the_photos(me)
    assert me.screen() == "documents"
    assert "登记时所用证件" in text(me, 'section[data-screen="documents"] > .hint')
    assert not me.element("#confirm-form").is_displayed()
    assert not me.element("#documents-edit").is_displayed()
    assert "证件信息" not in text(me, "#progress-text")
    me.shot("deregistration-photos")
    assert photo(me, "id_front", front) == "done", me.messages()
    assert photo(me, "id_back", back) == "done", me.messages()
    me.tap("#documents-next")
    pass_face_check(me, camera=False)
    me.wait_screen("submit")
    # And the person shown is the registered one, masked
    me.wait_until("the holder", lambda: PERSON_NAME[0] + "*" in text(me, "#submit-card"))
    assert PERSON_ID_NUMBER not in text(me, "#submit-card")
    me.shot("deregistration-submit")
    me.tap("#submit-button")
    me.wait_screen("result")
    assert settled(me) == "deregistered", me.messages()
