"""委托登记 in the browser, to the end: a trustee registers a car for its owner (the owner's identity,
ID card and authorization letter, the owner's code, the trustee's own face), the sandbox operator
accepts; the trustee's 我的车辆 reads "为 李* 登记" with no way to de-register it, and the owner, signed in
with the phone the trustee gave for them, finds the car among their own vehicles, registered."""

from __future__ import annotations

import random
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import Phone, prove_identity, show_possession, unregistered_vin
from tests.e2e.test_h5_registration import phone as phone  # the browser fixture
from tests.synthetic_documents import PERSON_ID_NUMBER, PERSON_NAME

TRUSTEE_LOGIN = "13800138021"
TRUSTEE_PHONE = "13900139021"
OWNER_MOBILE = "13700137021"
OWNER_NAME = "李四"
OWNER_ADDRESS = "上海市浦东新区世纪大道 100 号"


def sign_in(me: Phone, login: str) -> None:
    me.open()
    if me.wait_screen("login", "home") == "home":
        me.tap("#sign-out")
        me.wait_screen("login")
    me.fill("#login-phone", login)
    code = me.sms_code(login, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-agree")  # 已阅读并同意《用户协议》《隐私政策》
    me.tap("#login-submit")
    me.wait_screen("home")


def my_vehicle(me: Phone, vin: str) -> str:
    """The text of ``vin``'s entry in 我的车辆, once it shows there registered."""
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")

    def shown() -> str | None:
        text = str(me.element("#vehicle-list").text)
        return text if vin[-6:] in text and "实名登记成功" in text else None

    return str(me.wait_until("the vehicle among mine", shown))


def test_the_owner_sees_in_my_vehicles_the_car_a_trustee_registered_for_them(
    phone: Phone, stack: Stack, tmp_path: Path
) -> None:
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.local.synthetic import make_resident_id
    from tests.synthetic_documents import authorization_letter, id_back, id_front

    me = phone
    vin = unregistered_vin(stack)
    owner_id = make_resident_id(random.Random(2021))
    SandboxIdentityAuthority(stack.authority).register_citizen(OWNER_NAME, owner_id, phone=OWNER_MOBILE)

    # Given a trustee who registers the owner's car for them in the browser
    sign_in(me, TRUSTEE_LOGIN)
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.element("#vin-delegated").click()
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    me.fill("#owner-phone", TRUSTEE_PHONE)
    code = me.sms_code(TRUSTEE_PHONE, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")
    show_possession(me, vin, licence=True)
    me.wait_screen("delegation")
    me.fill("#owner-id-number", owner_id)
    me.fill("#owner-name", OWNER_NAME)
    me.fill("#owner-address", OWNER_ADDRESS)
    me.fill("#owner-mobile", OWNER_MOBILE)
    letter = tmp_path / "letter.jpg"
    letter.write_bytes(
        authorization_letter(
            owner_name=OWNER_NAME,
            owner_id_number=owner_id,
            trustee_name=PERSON_NAME,
            trustee_id_number=PERSON_ID_NUMBER,
            vin=vin,
            fmt="JPEG",
        )
    )
    me.choose_files("#letter-album", letter)
    me.wait_until(
        "the letter to be stored",
        lambda: me._js("return document.getElementById('doc-authorization_letter').dataset.state") == "done",
        45,
    )
    card = tmp_path / "owner-id.jpg"
    card.write_bytes(id_front(name=OWNER_NAME, id_number=owner_id, address=OWNER_ADDRESS, fmt="JPEG"))
    me.choose_files("#ownerid-album", card)
    me.wait_until(
        "the owner's ID card to be stored",
        lambda: me._js("return document.getElementById('doc-owner_id_front').dataset.state") == "done",
        45,
    )
    back = tmp_path / "owner-id-back.jpg"
    back.write_bytes(id_back(fmt="JPEG"))
    me.choose_files("#owneridback-album", back)
    me.wait_until(
        "the back of the owner's ID card to be stored",
        lambda: me._js("return document.getElementById('doc-owner_id_back').dataset.state") == "done",
        45,
    )
    me.tap("#delegation-submit")
    me.wait_until(
        "the owner's confirmation to be asked", lambda: me.element("#delegation-confirm").is_displayed(), 90
    )
    code = me.sms_code(OWNER_MOBILE, lambda: me.tap("#delegation-send"))
    me.fill("#delegation-code", code)
    me.tap("#delegation-confirm-submit")
    prove_identity(me, camera=False)  # the trustee's own identity and face
    me.wait_screen("consents")
    boxes = me.wait_until(
        "the texts to agree to",
        lambda: me.driver.find_elements("css selector", "#consent-list input[type=checkbox]"),
    )
    for box in boxes:
        box.click()
    me.tap("#consents-submit")
    me.wait_screen("submit")
    me.tap("#submit-button")
    me.wait_screen("result")
    me.wait_until(
        "the operator's answer",
        lambda: me._js(
            "const r = document.querySelector('section[data-screen=result]').dataset.result;"
            "return r && r !== 'pending' ? r : null"
        ),
        timeout=60,
    )
    assert me._js("return document.querySelector('section[data-screen=result]').dataset.result") == (
        "registered"
    ), me.messages()

    # Then the trustee reads the car as registered for the owner, with no way to de-register it
    me.tap("#go-home")
    me.wait_screen("home")
    theirs = my_vehicle(me, vin)
    assert "为 李* 登记" in theirs, theirs
    assert not me.driver.find_elements("css selector", "#vehicle-list .deregister")

    # When the owner signs in with the phone the trustee gave for them
    sign_in(me, OWNER_MOBILE)
    # Then the car is among the owner's vehicles, registered, and the owner may de-register it
    mine = my_vehicle(me, vin)
    assert "为 李* 登记" not in mine, mine
    assert "受托人为您办理" in mine, mine
    assert me.element("#vehicle-list .deregister").is_displayed()
