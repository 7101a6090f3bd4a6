"""我的车辆 and the receipt in the H5 client (headless Chromium, the whole local stack): the result of a
registration is a receipt (受理编号, time in China time, the business, the holder masked, the card),
shown again after a refresh and in 我的车辆's history (oldest first); a car still in progress is listed
with its step and 继续办理; the car is de-registered from 我的车辆 after a confirmation screen, its VIN
never typed; and the old registration read afterwards says its card is no longer registered, never
"实名登记成功". Screenshots are kept in the test's tmp dir (``<tmp>/screenshots``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chalicelib.kernel.personal import mask_name
from tests.e2e.conftest import Stack
from tests.e2e.test_h5_lifecycle import (
    agree_and_submit,
    cards_of,
    log_in,
    mask_iccid,
    my_vehicles,
    settled,
    start_registration,
    take_vehicle,
    text,
    verify_phone,
)
from tests.e2e.test_h5_registration import Phone, prove_identity
from tests.synthetic_documents import PERSON_NAME

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: This module's own phones (a phone gets one code per resend period).
LOGIN = "13800007411"
OWNER = "13900007412"
RECEIPT = re.compile(r"(DJ|GH|ZX)\d{8}-[0-9A-HJKMNP-TV-Z]{6}")
CHINA_TIME = re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d")
OPERATORS = {
    "china_mobile": "中国移动",
    "china_unicom": "中国联通",
    "china_telecom": "中国电信",
    "china_broadnet": "中国广电",
}


@pytest.fixture
def owner(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    if not stack.route_exists("GET", "/h5"):
        pytest.skip("app.py does not serve the H5 client")
    return Phone(browser, stack, tmp_path, camera)


def receipt_on_screen(me: Phone) -> str:
    found = RECEIPT.search(text(me, "#result-receipt"))
    assert found, text(me, "#result-receipt")
    return found.group(0)


def test_the_receipt_my_vehicles_and_deregistering_the_car_picked_there(owner: Phone, stack: Stack) -> None:
    me = owner
    vin = take_vehicle(stack)
    other_vin = take_vehicle(stack, from_end=True)
    holder = mask_name(PERSON_NAME)

    # Given a car registered in the client and accepted by the operator
    log_in(me, LOGIN)
    start_registration(me, vin, OWNER)
    prove_identity(me, camera=True)
    agree_and_submit(me)
    assert settled(me) == "registered", me.messages()

    # Then the result is a receipt: its number, the time in China time, the business, the holder masked,
    # the card by its ICCID tail
    receipt = receipt_on_screen(me)
    assert receipt.startswith("DJ")
    slip = text(me, "#result-receipt")
    assert CHINA_TIME.search(slip), slip
    assert "实名登记" in slip
    assert holder in slip
    assert PERSON_NAME not in slip
    (card,) = cards_of(stack, vin)
    assert mask_iccid(card["iccid"]) in text(me, "#result-card")
    assert "实名登记成功" in text(me, "#result-text")
    me.shot("result-receipt")

    # And a refresh shows the same receipt (on the result, or in 我的车辆)
    me.driver.refresh()
    if me.wait_screen("result", "home") == "result":
        assert receipt_on_screen(me) == receipt

    # And 我的车辆 names the holder (masked) and keeps the history oldest first, the receipt on the entry
    # that started it
    listed = my_vehicles(me, showing=receipt)
    assert "登记人 " + holder in listed
    assert PERSON_NAME not in listed
    me.element("#vehicle-list details.history summary").click()
    history = text(me, "#vehicle-list details.history")
    assert history.index("提交实名登记") < history.index(receipt) < history.index("电信企业确认登记"), history
    assert CHINA_TIME.search(history), history
    me.shot("vehicles-receipt-history")

    # Given a second car whose registration stopped at the phone step
    me.tap("#go-home")
    me.wait_screen("home")
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", other_vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    me.tap("#go-home")
    me.wait_screen("home")
    # Then 我的车辆 lists it as in progress, with the VIN tail and the step, and 继续办理 goes there
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    progress = me.wait_until(
        "the car in progress", lambda: (t := text(me, "#vehicle-progress")) and other_vin[-6:] in t and t
    )
    assert "验证手机号" in progress
    assert other_vin not in progress
    me.shot("vehicles-in-progress")
    me.tap("#vehicle-progress .in-progress button")
    me.wait_screen("verify_phone")

    # When the owner de-registers the first car from 我的车辆
    me.tap("#go-home")
    me.wait_screen("home")
    my_vehicles(me, showing=receipt)
    me.tap("#vehicle-list .deregister")
    # Then a confirmation screen shows the car picked: masked VIN, its card (ICCID tail, operator) and
    # whom it is registered to; no VIN to type
    me.wait_screen("deregister_vehicle")
    confirm = text(me, "#deregister-card")
    assert vin[-6:] in confirm
    assert vin not in confirm
    assert mask_iccid(card["iccid"]) in confirm
    assert OPERATORS[card["operator"]] in confirm
    assert "登记人 " + holder in confirm
    assert not me.driver.find_elements("css selector", "section:not([hidden]) #vin-input")
    me.shot("deregister-confirm-vehicle")
    me.tap("#deregister-start")
    verify_phone(me, OWNER)
    prove_identity(me, camera=True)
    me.wait_screen("submit")
    me.tap("#submit-button")
    me.wait_screen("result")
    assert settled(me) == "deregistered", me.messages()
    # And the de-registration's receipt is its own, naming whose registration ended
    dereg_receipt = receipt_on_screen(me)
    assert dereg_receipt.startswith("ZX")
    assert dereg_receipt != receipt
    assert "原登记人" in text(me, "#result-receipt")
    assert holder in text(me, "#result-receipt")
    assert "实名注销成功" in text(me, "#result-text")
    me.shot("deregistration-receipt")

    # Then 我的车辆 shows the card unregistered, with nobody as its holder, both receipts in the history
    listed = my_vehicles(me, showing=dereg_receipt)
    assert "已注销实名" in listed
    assert "未登记" in listed
    assert "实名登记成功" not in listed
    assert "登记人 " + holder not in listed
    # And the old registration's receipt, opened again, tells the card is no longer registered
    me.tap("#vehicle-list .receipt-open")
    me.wait_screen("result")
    assert me._js("return document.querySelector('section[data-screen=result]').dataset.ended") == (
        "deregistered"
    )
    assert receipt_on_screen(me) == receipt
    shown = text(me, "#result-text") + text(me, "#result-reason")
    assert "实名登记成功" not in shown, shown
    assert "已注销" in shown, shown
    assert "未登记" in text(me, "#result-card")
    me.shot("old-receipt-after-deregistration")
