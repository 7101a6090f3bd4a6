"""继续办理 on the H5 home screen (headless Chromium, the whole local stack): the box that names an owner's
unfinished registration is filled in after home is painted, so on a slow network it arrives while a finger
may be on its way to a tile. It arrives below every tile and below the 待补登记 reminder, with a 未完成 mark
over the corner of 车主实名登记: no tile (nor the reminder) moves, both boxes are on the 375×812 screen, and
a tap aimed at a tile before the answer came opens that tile. On a bad network one question held for good
hides nothing of the other's box, and a question that fails takes its box of the previous visit away. On a
320×568 screen, where 继续办理 is below the fold, the 未完成 mark leads to it. Screen readers hear the boxes
once, from a status region, not at each visit. Screenshots are kept in the test's tmp dir
(``<tmp>/screenshots``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.h5_home import (
    HOLD_BACKFILL,
    PLACE,
    TILE_PLACES,
    TILES,
    leave_at_confirm_vehicle,
    on_screen,
    put_in_service,
    tap_at,
)
from tests.e2e.test_h5_lifecycle import log_in, take_vehicle, text
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: This module's own phones: an owner signs in with one, and it is the sales record's contact of a car.
OWNER = "13800007521"
OWNER_FIRST_VISIT = "13800007522"
OWNER_BACKFILL_HELD = "13800007523"
OWNER_QUESTION_FAILS = "13800007524"
OWNER_SMALL_SCREEN = "13800007525"

#: The page's ``GET /v1/me/registrations?open=true`` (继续办理) held in the browser's network stack
#: (DevTools ``Fetch``): the page sends it as ever and it waits, unanswered, until ``Fetch.disable``.
HOLD_RESUME = {"patterns": [{"urlPattern": "*/v1/me/registrations?open=true*", "requestStage": "Request"}]}

#: The smallest phone the client is for (an iPhone SE of the first generation), CSS pixels.
SMALL_PHONE = {"width": 320, "height": 568, "deviceScaleFactor": 2, "mobile": True}

#: Counts, from now on, the paintings of 继续办理's list and what home's status region says.
WATCH_HOME = """
window.homeWatch = { painted: 0, said: 0 };
new MutationObserver(() => (window.homeWatch.painted += 1))
  .observe(document.getElementById('home-resume-list'), { childList: true });
new MutationObserver(() => (window.homeWatch.said += 1))
  .observe(document.getElementById('home-status'), { childList: true, characterData: true, subtree: true });
"""


@pytest.fixture
def owner(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    for method, path in (("GET", "/h5"), ("POST", "/v1/inventory/in-service")):
        if not stack.route_exists(method, path):
            pytest.skip(f"app.py does not declare {method} {path}")
    return Phone(browser, stack, tmp_path, camera)


def status_said(me: Phone) -> str:
    """What home's status region (read by screen readers, not drawn) says now."""
    return str(me.element("#home-status").get_attribute("textContent") or "")


def test_with_continue_held_for_good_the_reminder_still_comes_below_the_tiles(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    in_service = put_in_service(stack, OWNER_FIRST_VISIT)

    # Given a bad network: the page's question for the unfinished registrations never gets an answer
    me.driver.execute_cdp_cmd("Fetch.enable", HOLD_RESUME)
    log_in(me, OWNER_FIRST_VISIT)
    before = me.driver.execute_script(TILE_PLACES, list(TILES))

    # Then the reminder still shows, below the tiles (none moved), marked on 我的车辆, and on the screen
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())
    assert "车辆识别代号尾号 " + in_service[-6:] + " 的车联网卡未实名登记" in text(me, "#home-backfill")
    assert me.element("#home-vehicles-mark").is_displayed()
    assert not me.element("#home-resume").is_displayed()
    assert not me.element("#home-register-mark").is_displayed()
    assert me.driver.execute_script(TILE_PLACES, list(TILES)) == before
    assert on_screen(me, "home-backfill")
    me.shot("home-continue-held-for-good")

    # And screen readers are told of it by the status region (the box itself is no live region)
    assert me.element("#home-backfill").get_attribute("aria-live") is None
    assert me.element("#home-status").get_attribute("role") == "status"
    assert in_service[-6:] in status_said(me)
    me.driver.execute_cdp_cmd("Fetch.disable", {})
    assert me.errors() == []


def test_with_the_reminder_held_for_good_continue_still_comes(owner: Phone, stack: Stack) -> None:
    me = owner
    put_in_service(stack, OWNER_BACKFILL_HELD)
    started = take_vehicle(stack, from_end=True)

    # Given the owner signed in, with a registration started and left at its first step
    log_in(me, OWNER_BACKFILL_HELD)
    leave_at_confirm_vehicle(me, started)

    # When the app is opened again on a bad network: the question for cars to register never answered
    me.driver.execute_cdp_cmd("Fetch.enable", HOLD_BACKFILL)
    me.driver.get(me.driver.current_url.split("#")[0])
    me.wait_until("a screen", lambda: me.driver.execute_script("return document.body.dataset.screen"))
    if me.driver.execute_script("return document.body.dataset.screen") != "home":
        me.tap("#go-home")
        me.wait_screen("home")

    # Then 继续办理 still shows, with 未完成 on 车主实名登记
    me.wait_until("继续办理", lambda: me.element("#home-resume").is_displayed())
    assert "VIN 尾号 " + started[-6:] in text(me, "#home-resume")
    assert me.element("#home-register-mark").is_displayed()
    me.shot("home-reminder-held-for-good")
    me.driver.execute_cdp_cmd("Fetch.disable", {})
    assert me.errors() == []


def test_a_failing_question_takes_away_the_box_the_last_visit_showed(owner: Phone, stack: Stack) -> None:
    me = owner
    put_in_service(stack, OWNER_QUESTION_FAILS)
    started = take_vehicle(stack, from_end=True)

    # Given home showed 继续办理 (a registration left at its first step) and the 待补登记 reminder
    log_in(me, OWNER_QUESTION_FAILS)
    leave_at_confirm_vehicle(me, started)
    me.tap("#go-home")
    me.wait_screen("home")
    me.wait_until("继续办理", lambda: me.element("#home-resume").is_displayed())
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())
    assert me.element("#home-register-mark").is_displayed()

    # When they come back to home with nothing changed, home paints the same again: nothing is said
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    me.driver.execute_script(WATCH_HOME)
    me.tap("#go-home")
    me.wait_screen("home")
    me.wait_until(
        "继续办理 painted again", lambda: me.driver.execute_script("return window.homeWatch.painted")
    )
    assert me.driver.execute_script("return window.homeWatch.said") == 0
    assert me.element("#home-resume").is_displayed()

    # When, back on home later, the question for the unfinished registrations fails (no connection)
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    me.driver.execute_cdp_cmd("Network.enable", {})
    me.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/v1/me/registrations?open=true*"]})
    me.tap("#go-home")
    me.wait_screen("home")

    # Then what the last visit said of it is gone, box and mark, and the reminder (answered) stays
    me.wait_until("继续办理 gone", lambda: not me.element("#home-resume").is_displayed())
    assert not me.element("#home-register-mark").is_displayed()
    assert not me.element("#home-resume-list").find_elements("css selector", ".resume-item")
    me.wait_until("the home reminder", lambda: me.element("#home-backfill").is_displayed())
    assert me.element("#home-vehicles-mark").is_displayed()
    me.shot("home-continue-failed")
    me.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def test_on_a_small_screen_the_unfinished_mark_leads_to_continue(owner: Phone, stack: Stack) -> None:
    me = owner
    put_in_service(stack, OWNER_SMALL_SCREEN)
    started = take_vehicle(stack, from_end=True)

    # Given a 320×568 phone (set once the page is open: the driver sets its own on opening), and a
    # registration started and left at its first step
    log_in(me, OWNER_SMALL_SCREEN)
    me.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", SMALL_PHONE)
    assert me.driver.execute_script("return [innerWidth, innerHeight]") == [320, 568]
    leave_at_confirm_vehicle(me, started)
    me.tap("#go-home")
    me.wait_screen("home")
    me.wait_until("继续办理", lambda: me.element("#home-resume").is_displayed())

    # Then 继续办理 is below the fold, and 车主实名登记 carries 未完成 on the screen
    assert not on_screen(me, "home-resume")
    assert on_screen(me, "home-register-mark")
    me.shot("small-home")

    # When the person taps 未完成 (where it is drawn, over the tile's corner)
    left, top, width, height = me.driver.execute_script(PLACE, "home-register-mark")
    tap_at(me, left + width / 2, top + height / 2)

    # Then home stays, 继续办理's registration is scrolled onto the screen and has the focus
    item = "#home-resume .resume-item[data-kind='registration']"
    me.wait_until(
        "继续办理 on the screen",
        lambda: me.driver.execute_script(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
            "return r.top >= 0 && r.bottom <= window.innerHeight",
            item,
        ),
    )
    assert me.driver.execute_script("return document.body.dataset.screen") == "home"
    assert me.driver.execute_script("return document.activeElement.matches(arguments[0])", item)
    assert started[-6:] in me.driver.execute_script("return document.activeElement.textContent")
    me.shot("small-continue")

    # And taking it opens the registration at its step due
    me.tap(item)
    me.wait_screen("confirm_vehicle")
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
    leave_at_confirm_vehicle(me, started)

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
    assert "实名登记 · VIN 尾号 " + started[-6:] in shown
    assert "下一步：确认车辆信息" in shown
    assert started not in shown
    assert me.element("#home-register-mark").is_displayed()
    assert not me.element("#home-deregister-mark").is_displayed()
    assert me.driver.execute_script(TILE_PLACES, [*TILES, "home-backfill"]) == before

    # And 继续办理 is on the phone's screen together with the 待补登记 reminder, each a labelled region, no
    # live region (home is visited again and again): the status region says what they say, once
    assert in_service[-6:] in text(me, "#home-backfill")
    me.shot("home-continue-arrived")
    assert on_screen(me, "home-resume")
    assert on_screen(me, "home-backfill")
    for box in ("home-resume", "home-backfill"):
        assert me.element("#" + box).get_attribute("aria-live") is None
        title = me.element("#" + box).get_attribute("aria-labelledby")
        assert title
        assert text(me, "#" + title)
    said = status_said(me)
    assert "您有一项未完成的办理" in said
    assert in_service[-6:] in said

    # And the tap lands where it was aimed: 车主实名登记 opens the VIN screen
    tap_at(me, *aimed)
    me.wait_screen("vin")
    assert me.errors() == []
    assert me.csp_violations() == []
