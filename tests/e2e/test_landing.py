"""The landing page (``/``) of a local stack on a phone: it links the H5 client, lists the demo vehicles of
the seed and shows the SMS drop, fits 375 px without a horizontal scroll, and every link works; and the
stack's state file lets ``cheka`` find it with nothing exported.
Screenshots: ``<tmp dir>/screenshots/landing-*.png``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


def _no_horizontal_scroll(phone: Phone) -> bool:
    return bool(phone._js("return document.documentElement.scrollWidth <= window.innerWidth + 1"))


def _texts(phone: Phone, selector: str) -> list[str]:
    found: list[Any] = phone._js(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(e => e.offsetParent !== null).map(e => e.textContent.trim())",
        selector,
    )
    return [str(t) for t in found]


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return int(response.status)


def test_the_landing_page_links_the_h5_the_demo_vehicles_and_the_sms_drop_on_a_phone(
    browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path
) -> None:
    phone = Phone(browser, stack, tmp_path, camera)
    # An owner asks for a login code: the SMS drop has a message to show
    status, _ = stack.call("POST", "/v1/auth/sms-codes", {"phone": "13900139090", "purpose": "login"})
    assert status == 202

    browser.get(stack.api + "/")
    phone.wait_until("the health check", lambda: "ok" in " ".join(_texts(phone, "#health .ok")))
    phone.wait_until("the SMS drop", lambda: any("139****9090" in t for t in _texts(phone, "#sms-list li")))
    phone.shot("landing-top")
    assert _no_horizontal_scroll(phone)

    # The entries a person starts from, each visible and pointing where it says
    entries = {
        str(e.get_attribute("id")): str(e.get_attribute("href"))
        for e in browser.find_elements("css selector", "a.entry")
        if e.is_displayed() and e.get_attribute("id")
    }
    assert entries["link-h5"] == stack.api + "/h5"
    assert entries["link-demo"].endswith("#demo")
    assert entries["link-sms"].endswith("#sms")

    # The demo vehicles: the seed's open ones (to register) and registered ones
    # (the stack is shared with the other browser tests of this worker: some seed VINs may be taken)
    open_vins = _texts(phone, "#open-vins .vin")
    assert len(open_vins) >= 3
    for vin in open_vins:  # each listed as open is open now
        status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
        assert status == 200
        assert all(c["state"] == "unregistered" for c in vehicle["cards"]), vehicle
    assert _texts(phone, "#registered-vins .vin")
    browser.find_element("id", "link-demo").click()
    phone.shot("landing-demo-vins")
    head_unit = browser.find_element("css selector", "#open-vins a[href*='/v1/dev/head-unit/']")
    assert _status(str(head_unit.get_attribute("href"))) == 200

    # The SMS drop: the newest message, masked, in China time
    browser.find_element("id", "link-sms").click()
    first = _texts(phone, "#sms-list li")[0]
    assert "139****9090" in first
    assert "13900139090" not in first
    assert "验证码" in first
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", first)  # China time, to the minute
    phone.shot("landing-sms-drop")
    assert _status(stack.api + "/v1/dev/sms-drop") == 200

    # Every route listed, still without a horizontal scroll
    browser.find_element("css selector", "details summary").click()
    phone.wait_until("the routes", lambda: len(_texts(phone, "#routes li")) > 20)
    browser.execute_script("document.querySelector('details').scrollIntoView()")
    assert _no_horizontal_scroll(phone)
    phone.shot("landing-routes")

    assert phone.console_errors() == []

    # The operator's command line finds this stack with nothing exported, by the state file it wrote
    state = stack.log.with_name("stack.json")
    assert json.loads(state.read_text(encoding="utf-8"))["api"] == stack.api
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("CHEKA_", "AWS_", "POWERTOOLS_"))}
    bare["CHEKA_LOCAL_STATE_FILE"] = str(state)

    def accepted() -> Any:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "cheka"), "outbox", "status"],
            env=bare,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)["by_kind"]["register"]["accepted"] >= 3  # the seed's three

    phone.wait_until("the seed's registrations accepted, as the CLI counts them", accepted, timeout=60)

    # The H5 client opens from its entry
    browser.execute_script("window.scrollTo(0, 0)")
    browser.find_element("id", "link-h5").click()
    phone.wait_until("the H5 client", lambda: "/h5" in browser.current_url and phone.screen())
    phone.shot("landing-then-h5")
