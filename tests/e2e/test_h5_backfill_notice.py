"""待补登记 in the H5 client (headless Chromium, the whole local stack): an owner whose car is in use and
whose card was never registered (the OEM's in-service feed names their phone) signs in, is reminded of it
on the home screen, finds the car in 我的车辆 with the deadline of the active backfill campaign, opts out
of the backfill SMS (and the choice holds when the page is read again), and 立即登记 starts the
registration of that very car, its VIN never typed (the inventory gives the car that phone as its owner
phone, so the sales-phone proof would pass); where the notice comes without the VIN, 立即登记 opens the
VIN screen naming the car's tail, a VIN with another tail is refused on the screen before anything is
posted, and the registration starts from the right VIN typed. On a slow network, a tap aimed at 我的车辆
before the reminder's answer comes still lands on 我的车辆: the reminder arrives below the tiles and none
of them moves. Screenshots are kept in the test's tmp dir (``<tmp>/screenshots``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chalicelib.kernel.clock import china_day, utc_now
from chalicelib.local.synthetic import inventory_rows
from tests.e2e.conftest import Stack
from tests.e2e.h5_home import (
    HOLD_BACKFILL,
    TILE_PLACES,
    TILES,
    on_screen,
    put_in_service,
    report_in_service,
    tap_at,
)
from tests.e2e.test_h5_lifecycle import cards_of, log_in, mask_iccid, take_vehicle, text
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: This module's own phones: the sales record's contact, and the phone the owner signs in with.
CONTACT = "13800007511"
CONTACT_NO_VIN = "13800007512"
CONTACT_LATE = "13800007513"

#: The seed of this module's own imported car: fixed, so a failure reproduces with the same car, and
#: another than the demo inventory's (2026) and the other tests' seeds, so the car is no one else's.
INVENTORY_SEED = 7511

#: Counts the registrations the page posts (``window.registrationPosts``).
COUNT_REGISTRATION_POSTS = """
window.registrationPosts = 0;
const before = window.fetch;
window.fetch = (url, init) => {
  const method = String((init && init.method) || 'GET').toUpperCase();
  if (method === 'POST' && String(url).endsWith('/v1/me/registrations')) window.registrationPosts += 1;
  return before(url, init);
};
"""


@pytest.fixture
def owner(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    for method, path in (("GET", "/h5"), ("POST", "/v1/inventory/in-service"), ("POST", "/v1/campaigns")):
        if not stack.route_exists(method, path):
            pytest.skip(f"app.py does not declare {method} {path}")
    return Phone(browser, stack, tmp_path, camera)


def date_zh(iso: str) -> str:
    y, m, d = (int(p) for p in iso.split("-"))
    return f"{y}年{m}月{d}日"


def test_an_owner_sees_the_deadline_opts_out_and_starts_the_registration_from_the_notice(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    # Given a car whose inventory row gives the owner's phone as its owner phone (the sales-phone proof)
    [row] = list(inventory_rows(1, seed=INVENTORY_SEED))
    status, report = stack.call(
        "POST", "/v1/admin/inventory/imports", [{**row, "owner_phone": CONTACT}], token=stack.admin_token
    )
    assert status == 200, report
    assert not report.get("errors"), report
    vin = row["vin"]
    card = cards_of(stack, vin)[0]
    today = china_day(utc_now())

    # Given the car in service with the owner's phone on its sales record, and an active campaign
    report_in_service(stack, card["iccid"], CONTACT)
    status, created = stack.call(
        "POST",
        "/v1/campaigns",
        {
            "name": "补登记提醒（浏览器测试）",
            "deadline": (today + timedelta(days=120)).isoformat(),
            "waves": [60, 30],
            "template": "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}",
            "channels": ["sms"],
            "rate_per_second": 10,
        },
        token=stack.admin_token,
    )
    assert status == 201, created

    # When the owner signs in with that phone, home reminds them of the car, and 去登记 opens 我的车辆
    log_in(me, CONTACT)
    reminder = me.wait_until(
        "the home reminder",
        lambda: text(me, "#home-backfill") if me.element("#home-backfill").is_displayed() else None,
    )
    assert "车辆识别代号尾号 " + vin[-6:] + " 的车联网卡未实名登记" in reminder
    me.shot("backfill-home")
    me.tap("#home-backfill-open")
    me.wait_screen("vehicles")

    def shown() -> str | None:
        found = me.driver.find_elements("css selector", "#vehicle-backfill .backfill-register")
        return text(me, "#vehicle-backfill") if found else None

    notice = str(me.wait_until("the backfill notice", shown))
    # Then the car is shown by its VIN tail and card (masked), with the nearest active campaign's deadline
    assert "待补登记" in notice
    assert vin[-6:] in notice
    assert vin not in notice
    assert mask_iccid(card["iccid"]) in notice
    deadline = me.driver.execute_script(
        "return fetch('/v1/me/backfill', {headers: {Authorization: 'Bearer ' + sessionStorage.getItem("
        "'cheka.h5.token')}}).then((r) => r.json())"
    )
    assert deadline["cards"][0]["deadline"], json.dumps(deadline, ensure_ascii=False)
    assert "请于 " + date_zh(deadline["cards"][0]["deadline"]) + " 前完成实名登记" in notice
    me.shot("backfill-notice")

    # When they opt out of the backfill SMS, the choice shows and holds when 我的车辆 is read again
    me.tap("#vehicle-backfill .backfill-opt")
    me.wait_until("the opt-out", lambda: "重新接收补登记短信" in text(me, "#vehicle-backfill .backfill-opt"))
    assert "您已退订补登记提醒短信" in text(me, "#vehicle-backfill")
    me.tap("#go-home")
    me.wait_screen("home")
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    me.wait_until("the opt-out kept", lambda: "您已退订补登记提醒短信" in text(me, "#vehicle-backfill"))
    me.shot("backfill-opted-out")

    # When they tap 立即登记, the registration of that car starts: its vehicle is confirmed next
    me.tap("#vehicle-backfill .backfill-register")
    me.wait_screen("confirm_vehicle")
    assert vin[-6:] in text(me, "#vehicle-card")
    assert me.errors() == []
    me.shot("backfill-registration-started")


def test_without_the_vin_register_opens_the_vin_screen_naming_the_tail_and_starts_from_the_vin_typed(
    owner: Phone, stack: Stack
) -> None:
    me = owner

    # Given the car in service with the owner's phone on its sales record, but another phone (or none) as
    # the vehicle's owner phone: the sales-phone proof would fail, so the notice comes without the VIN
    vin = put_in_service(stack, CONTACT_NO_VIN)
    log_in(me, CONTACT_NO_VIN)
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    me.wait_until(
        "the backfill notice",
        lambda: me.driver.find_elements("css selector", "#vehicle-backfill .backfill-register"),
    )
    assert vin[-6:] in text(me, "#vehicle-backfill")

    # When they tap 立即登记, the VIN screen opens empty, naming the car's tail, and the page holds no VIN
    me.tap("#vehicle-backfill .backfill-register")
    me.wait_screen("vin")
    assert "请输入尾号为 " + vin[-6:] + " 的车辆识别代号" in text(me, "#vin-hint")
    assert me.element("#vin-input").get_attribute("value") == ""
    assert vin not in me.driver.page_source
    me.shot("backfill-vin-asked")

    # When they type a VIN whose tail is another car's, it is refused on the field: the page stays on the
    # VIN screen and posts no registration
    me.driver.execute_script(COUNT_REGISTRATION_POSTS)
    other = take_vehicle(stack)
    assert other[-6:] != vin[-6:]
    me.fill("#vin-input", other)
    me.tap("#vin-submit")
    me.wait_until("the VIN tail error", lambda: me.element("#vin-input ~ .field-error").is_displayed())
    assert "尾号与待登记车辆" in me.element("#vin-input ~ .field-error").text
    assert vin[-6:] in me.element("#vin-input ~ .field-error").text
    assert me.screen() == "vin"
    assert me.driver.execute_script("return window.registrationPosts") == 0
    me.shot("backfill-vin-tail-refused")

    # Then the right VIN typed starts the registration of that car, as any registration
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    assert vin[-6:] in text(me, "#vehicle-card")
    assert me.driver.execute_script("return window.registrationPosts") == 1
    assert me.errors() == []
    assert me.csp_violations() == []


def test_a_tap_aimed_at_my_vehicles_before_the_reminder_answers_opens_my_vehicles_and_no_tile_moves(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    vin = put_in_service(stack, CONTACT_LATE)

    # Given a slow network: the page's question for unregistered cars gets no answer for now
    me.driver.execute_cdp_cmd("Fetch.enable", HOLD_BACKFILL)
    log_in(me, CONTACT_LATE)

    # When the owner taps 我的车辆 at once, before the reminder's answer, 我的车辆 opens
    assert not me.element("#home-backfill").is_displayed()
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    me.tap("#go-home")
    me.wait_screen("home")

    # When they aim at 我的车辆 again and the answer comes while the finger is on its way
    before = me.driver.execute_script(TILE_PLACES, list(TILES))
    assert not me.element("#home-backfill").is_displayed()
    left, top, width, height = before["home-vehicles"]
    aimed = (left + width / 2, top + height / 2)
    me.shot("home-reminder-held")
    me.driver.execute_cdp_cmd("Fetch.disable", {})
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())

    # Then the reminder shows (in view on the phone, and marked on 我的车辆) and no tile has moved
    assert vin[-6:] in text(me, "#home-backfill")
    assert me.element("#home-vehicles-mark").is_displayed()
    assert me.driver.execute_script(TILE_PLACES, list(TILES)) == before
    assert on_screen(me, "home-backfill")
    me.shot("home-reminder-arrived")

    # And the tap lands where it was aimed: 我的车辆 opens
    tap_at(me, *aimed)
    me.wait_screen("vehicles")
    assert me.errors() == []
    assert me.csp_violations() == []
