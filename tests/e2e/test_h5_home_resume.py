"""继续办理 on the H5 home screen (headless Chromium, the whole local stack): the box that names an owner's
unfinished registration is filled in after home is painted, so on a slow network it arrives while a finger
may be on its way to a tile. It arrives below every tile and below the 待补登记 reminder, with a 未完成 mark
over the corner of 车主实名登记: no tile (nor the reminder) moves, both boxes are on the 375×812 screen, and
a tap aimed at a tile before the answer came opens that tile. Screenshots are kept in the test's tmp dir
(``<tmp>/screenshots``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chalicelib.kernel.clock import china_day, utc_now
from tests.e2e.conftest import Stack
from tests.e2e.test_h5_backfill_notice import TILE_PLACES, TILES, tap_at
from tests.e2e.test_h5_lifecycle import cards_of, log_in, take_vehicle, text
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: This module's own phones: an owner signs in with one, and it is the sales record's contact of a car.
OWNER = "13800007521"
OWNER_FIRST_VISIT = "13800007522"

#: The page's ``GET /v1/me/registrations?open=true`` (继续办理) held in the browser's network stack
#: (DevTools ``Fetch``): the page sends it as ever and it waits, unanswered, until ``Fetch.disable``.
HOLD_RESUME = {"patterns": [{"urlPattern": "*/v1/me/registrations?open=true*", "requestStage": "Request"}]}

#: Whether the browser has had the answer to the page's ``GET /v1/me/backfill`` (its resource timing entry
#: is written when the response has come in full).
BACKFILL_ANSWERED = """
return performance.getEntriesByType('resource').some((e) => e.name.includes('/v1/me/backfill'));
"""

#: Where the element ``arguments[0]`` (an id) is on the screen now: its ``getBoundingClientRect``.
PLACE = """
const r = document.getElementById(arguments[0]).getBoundingClientRect();
return [r.left, r.top, r.width, r.height];
"""


@pytest.fixture
def owner(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    for method, path in (("GET", "/h5"), ("POST", "/v1/inventory/in-service")):
        if not stack.route_exists(method, path):
            pytest.skip(f"app.py does not declare {method} {path}")
    return Phone(browser, stack, tmp_path, camera)


def on_screen(me: Phone, element_id: str) -> bool:
    """Whether the element is displayed and wholly inside the window (nothing of it to scroll to)."""
    left, top, width, height = me.driver.execute_script(PLACE, element_id)
    inner = me.driver.execute_script("return [window.innerWidth, window.innerHeight]")
    shown = me.element("#" + element_id).is_displayed()
    return bool(shown and left >= 0 and top >= 0 and left + width <= inner[0] and top + height <= inner[1])


def put_in_service(stack: Stack, phone: str) -> str:
    """A car taken by no other test put in service with ``phone`` as its sales record's contact (待补登记
    for whoever signs in with it): its VIN."""
    vin = take_vehicle(stack, from_end=True)
    card = cards_of(stack, vin)[0]
    since = china_day(utc_now()).isoformat()
    status, report = stack.call(
        "POST",
        "/v1/inventory/in-service?format=json",
        [{"iccid": card["iccid"], "in_service_since": since, "contact_phone": phone}],
        token=stack.admin_token,
    )
    assert status == 200, report
    assert report["errors"] == [], report
    return vin


def test_on_a_slow_network_the_reminder_waits_for_continue_and_both_come_below_the_tiles_together(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    in_service = put_in_service(stack, OWNER_FIRST_VISIT)

    # Given a slow network: the page's question for the unfinished registrations gets no answer for now
    me.driver.execute_cdp_cmd("Fetch.enable", HOLD_RESUME)
    log_in(me, OWNER_FIRST_VISIT)
    before = me.driver.execute_script(TILE_PLACES, list(TILES))

    # When the answer about cars to register came (the browser has it), the reminder is not shown yet
    me.wait_until("the 待补登记 answer", lambda: me.driver.execute_script(BACKFILL_ANSWERED))
    assert not me.element("#home-backfill").is_displayed()
    assert not me.element("#home-vehicles-mark").is_displayed()
    me.shot("home-both-held")

    # Then, 继续办理 answered (nothing to carry on with), the reminder shows below the tiles: none moved
    me.driver.execute_cdp_cmd("Fetch.disable", {})
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())
    assert in_service[-6:] in text(me, "#home-backfill")
    assert me.element("#home-vehicles-mark").is_displayed()
    assert not me.element("#home-resume").is_displayed()
    assert not me.element("#home-register-mark").is_displayed()
    assert me.driver.execute_script(TILE_PLACES, list(TILES)) == before
    assert on_screen(me, "home-backfill")
    me.shot("home-both-arrived")
    assert me.errors() == []


def test_a_tap_aimed_at_register_before_continue_answers_opens_register_and_nothing_moves(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    # Given a car in use whose sales record names the owner's phone (待补登记 on home as well)
    in_service = put_in_service(stack, OWNER)
    started = take_vehicle(stack, from_end=True)

    # Given the owner signed in, with a registration of another car started and left at its first step
    log_in(me, OWNER)
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", started)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")

    # Given a slow network: the page's question for the unfinished registrations gets no answer for now
    me.driver.execute_cdp_cmd("Fetch.enable", HOLD_RESUME)
    me.tap("#go-home")
    me.wait_screen("home")

    # When they aim at 车主实名登记 and the answer comes while the finger is on its way
    before = me.driver.execute_script(TILE_PLACES, [*TILES, "home-backfill"])
    assert not me.element("#home-resume").is_displayed()
    assert me.element("#home-backfill").is_displayed()
    assert not me.element("#home-register-mark").is_displayed()
    left, top, width, height = before["home-register"]
    aimed = (left + width / 2, top + height / 2)
    me.shot("home-continue-held")
    me.driver.execute_cdp_cmd("Fetch.disable", {})
    me.wait_until("继续办理", lambda: me.element("#home-resume").is_displayed())

    # Then 继续办理 names the car by its tail (never its VIN) and the step due, 车主实名登记 carries 未完成
    # (车主注销实名 nothing), and no tile has moved, nor the 待补登记 reminder
    shown = text(me, "#home-resume")
    assert "实名登记 · 尾号 " + started[-6:] in shown
    assert "下一步：确认车辆信息" in shown
    assert started not in shown
    assert me.element("#home-register-mark").is_displayed()
    assert not me.element("#home-deregister-mark").is_displayed()
    assert me.driver.execute_script(TILE_PLACES, [*TILES, "home-backfill"]) == before

    # And 继续办理 is on the phone's screen together with the 待补登记 reminder, each a labelled live region
    assert in_service[-6:] in text(me, "#home-backfill")
    me.shot("home-continue-arrived")
    assert on_screen(me, "home-resume")
    assert on_screen(me, "home-backfill")
    for box in ("home-resume", "home-backfill"):
        assert me.element("#" + box).get_attribute("aria-live") == "polite"
        title = me.element("#" + box).get_attribute("aria-labelledby")
        assert title
        assert text(me, "#" + title)

    # And the tap lands where it was aimed: 车主实名登记 opens the VIN screen
    tap_at(me, *aimed)
    me.wait_screen("vin")
    assert me.errors() == []
    assert me.csp_violations() == []
