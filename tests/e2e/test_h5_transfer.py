"""过户 in the H5 client (headless Chromium, the whole local stack): the buyer of a demo car registered to
someone else shows they hold it, reads that it is someone else's and may be transferred, goes on as its
buyer, is verified as any registration is, submits, and sees the sandbox operator's acceptance; the
seller is told by SMS; the buyer's vehicles show the car. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_lifecycle import (
    agree_and_submit,
    cards_of,
    log_in,
    my_vehicles,
    settled,
    shot,
    text,
    verify_phone,
)
from tests.e2e.test_h5_registration import Phone, prove_identity

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: The buyer's phone (its own: a phone gets one code per resend period).
BUYER_PHONE = "13800007311"


@pytest.fixture
def buyer(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    if not stack.route_exists("GET", "/h5"):
        pytest.skip("app.py does not serve the H5 client")
    if not stack.route_exists("POST", "/v1/me/registrations/r0/transfer", {}):
        pytest.skip("the API has no transfer route")
    return Phone(browser, stack, tmp_path, camera)


def registered_vin(stack: Stack) -> str:
    """A demo vehicle the seed registered to one of its people, accepted by the sandbox operator."""
    candidates = list(reversed(stack.seed.get("registered_vins") or []))
    assert candidates, f"the demo seed registered no vehicle ({stack.seed})"
    vin = str(candidates[0])
    deadline = time.monotonic() + 60
    while not all(c["state"] == "registered" for c in cards_of(stack, vin)):
        assert time.monotonic() < deadline, f"the seed's registration of {vin} was not accepted"
        time.sleep(0.5)
    return vin


#: Entries that record something asked of a registration, not a change of it: the sandbox operator samples
#: accepted registrations for a spot check (抽查, 第十条), which may land after the transfer's acceptance.
NOT_A_CHANGE = {"spot_check"}


def last_event(stack: Stack, iccid: str) -> dict[str, Any]:
    """The card's last history entry that changed its registration (a spot check asks, it changes nothing)."""
    status, history = stack.call("GET", f"/v1/cards/{iccid}/history", token=stack.admin_token)
    assert status == 200, history
    changes = [event for event in history["events"] if event["event"] not in NOT_A_CHANGE]
    return dict(changes[-1])


def transfer_smses(stack: Stack, vin: str) -> list[dict[str, Any]]:
    status, doc = stack.call("GET", "/v1/dev/sms-drop?limit=100", token=stack.admin_token)
    assert status == 200, doc
    return [m for m in doc["messages"] if "申请过户" in m["text"] and vin[-6:] in m["text"]]


def test_a_buyer_transfers_a_car_registered_to_someone_else_and_sees_it_accepted(
    buyer: Phone, stack: Stack
) -> None:
    vin = registered_vin(stack)
    log_in(buyer, BUYER_PHONE)
    # Given the buyer starts a registration of the car and shows they hold it (the head unit's code)
    buyer.tap("#home-register")
    buyer.wait_screen("vin")
    buyer.fill("#vin-input", vin)
    buyer.tap("#vin-submit")
    buyer.wait_screen("confirm_vehicle")
    buyer.tap("#vehicle-confirm")
    verify_phone(buyer, BUYER_PHONE)
    buyer.wait_screen("possession")
    code = buyer.head_unit_code(vin, lambda: buyer.tap("#head-unit-send"))
    buyer.fill("#head-unit-code", code)
    buyer.tap("#head-unit-submit")
    # Then the screen says the car is someone else's and offers the transfer
    buyer.wait_until("the transfer offered", lambda: buyer.element("#possession-transfer").is_displayed())
    assert "过户" in text(buyer, "#possession-transferable")
    shot(buyer, "1-transfer-offered")
    # When the buyer goes on as the transfer's buyer, is verified and submits
    buyer.tap("#possession-transfer")
    prove_identity(buyer, camera=False)
    agree_and_submit(buyer)
    # Then the seller is told by SMS, and the buyer sees the operator's acceptance
    buyer.wait_until("the seller's SMS", lambda: transfer_smses(stack, vin))
    assert settled(buyer, timeout=90) == "registered", buyer.messages()
    assert text(buyer, "#result-text") == "过户实名登记成功"
    shot(buyer, "2-transfer-accepted")
    for card in cards_of(stack, vin):
        assert card["state"] == "registered"
        assert last_event(stack, card["iccid"])["event"] == "transferred"
    # And the buyer's vehicles show the car registered to them
    listed = my_vehicles(buyer, showing="实名登记成功")
    assert vin[-6:] in listed
    shot(buyer, "3-my-vehicles")
