"""What the H5 home-screen tests share (``test_h5_backfill_notice``, ``test_h5_home_resume``): the tiles and
where they are on the screen, a finger's tap at a point, the 待补登记 question held in the browser's
network stack, a car put in service with a phone on its sales record, and a registration started and left
at its first step. Not a test module: its names are imported by them."""

from __future__ import annotations

from chalicelib.kernel.clock import china_day, utc_now
from tests.e2e.conftest import Stack
from tests.e2e.test_h5_lifecycle import cards_of, take_vehicle
from tests.e2e.test_h5_registration import Phone

#: The tiles of the home screen, each a place a person may be about to tap.
TILES = (
    "home-register",
    "home-deregister",
    "home-vehicles",
    "home-enterprise",
    "home-complaint",
    "home-help",
)

#: Where each tile of ``arguments[0]`` is on the screen now: its ``getBoundingClientRect`` by id.
TILE_PLACES = """
return Object.fromEntries(arguments[0].map((id) => {
  const r = document.getElementById(id).getBoundingClientRect();
  return [id, [r.left, r.top, r.width, r.height]];
}));
"""

#: Where the element ``arguments[0]`` (an id) is on the screen now: its ``getBoundingClientRect``.
PLACE = """
const r = document.getElementById(arguments[0]).getBoundingClientRect();
return [r.left, r.top, r.width, r.height];
"""

#: The page's ``GET /v1/me/backfill`` (待补登记) held in the browser's network stack (DevTools ``Fetch``):
#: the request is sent by the page as ever and waits there, unanswered, until ``Fetch.disable`` lets it
#: through.
HOLD_BACKFILL = {"patterns": [{"urlPattern": "*/v1/me/backfill*", "requestStage": "Request"}]}


def tap_at(me: Phone, x: float, y: float) -> None:
    """A finger put down and lifted at ``(x, y)`` of the screen, whatever is there by then (the phone's
    touch input through DevTools: the page gets the touch, and the tap it makes, as from a finger)."""
    for kind, points in (("touchStart", [{"x": x, "y": y}]), ("touchEnd", [])):
        me.driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def on_screen(me: Phone, element_id: str) -> bool:
    """Whether the element is displayed and wholly inside the window (nothing of it to scroll to)."""
    left, top, width, height = me.driver.execute_script(PLACE, element_id)
    inner = me.driver.execute_script("return [window.innerWidth, window.innerHeight]")
    shown = me.element("#" + element_id).is_displayed()
    return bool(shown and left >= 0 and top >= 0 and left + width <= inner[0] and top + height <= inner[1])


def report_in_service(stack: Stack, iccid: str, phone: str) -> None:
    """The OEM's in-service feed naming the card ``iccid`` in use since today, with ``phone`` as its sales
    record's contact: the card is 待补登记 for whoever signs in with that phone. The feed must take it."""
    status, report = stack.call(
        "POST",
        "/v1/inventory/in-service?format=json",
        [{"iccid": iccid, "in_service_since": china_day(utc_now()).isoformat(), "contact_phone": phone}],
        token=stack.admin_token,
    )
    assert status == 200, report
    assert report["errors"] == [], report


def put_in_service(stack: Stack, phone: str) -> str:
    """A car taken by no other test put in service with ``phone`` as its sales record's contact (待补登记
    for whoever signs in with it): its VIN."""
    vin = take_vehicle(stack, from_end=True)
    report_in_service(stack, cards_of(stack, vin)[0]["iccid"], phone)
    return vin


def leave_at_confirm_vehicle(me: Phone, vin: str) -> None:
    """From home, a registration of ``vin`` started (车主实名登记, the VIN typed) and left at its first
    step, 确认车辆信息, the screen the page is on when this returns."""
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
