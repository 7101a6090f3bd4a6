"""The dealer's tablet (经销商现场协助登记, 第二十条) in the browser, against the whole local stack.

The OEM's admin creates a dealer account for the dealer code of a demo vehicle; the dealer sets its
password by reset-by-SMS and signs in (through the API, as the dealer's own page would); it hands the
vehicle's registration over to its owner: the tablet opens the H5 client at the hand-off link, the
owner signs in with their own phone and lands on their car, confirms it and reaches the phone step. At
结束 the owner is signed out, and the page keeps nothing: no storage, no caches, a neutral hand-back
screen. The dealer's next hand-off opens afresh in the same tab, and left untouched it ends by itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import Phone, unregistered_vin
from tests.e2e.test_h5_registration import phone as phone  # the browser fixture

#: Phones no other browser test uses (a phone gets one code every 10 s on the test stack).
DEALER_PHONE = "13500135000"
OWNER_PHONE = "13600136000"
DEALER_LOGIN = "dealerTablet"
DEALER_PASSWORD = "Tablet#2025a"


def _code_sent(stack: Stack, phone_number: str, send: Any) -> str:
    """Ask for a code through the API (``send``), then read it from the dev SMS drop."""
    masked = phone_number[:3] + "****" + phone_number[-4:]

    def to_phone() -> list[dict[str, Any]]:
        status, doc = stack.call("GET", "/v1/dev/sms-drop?limit=100", token=stack.admin_token)
        assert status == 200, (status, doc)
        return [m for m in doc["messages"] if m.get("phone") == masked]

    before = len(to_phone())
    send()
    for _ in range(100):
        now = to_phone()
        if len(now) > before:
            latest = max(now, key=lambda m: m.get("sent_at") or 0)
            found = re.search(r"验证码\s*(\d{4,8})", latest["text"])
            assert found, latest["text"]
            return found.group(1)
        import time

        time.sleep(0.2)
    raise AssertionError(f"no SMS to {masked}")


def dealer_signed_in(stack: Stack, dealer_code: str) -> str:
    """The dealer account of ``dealer_code`` (made by the admin, password set by reset), its token."""
    status, created = stack.call(
        "POST",
        f"/v1/admin/dealers/{dealer_code}/accounts",
        {"login_name": DEALER_LOGIN, "phone": DEALER_PHONE},
        token=stack.admin_token,
    )
    assert status == 201, created
    code = _code_sent(
        stack,
        DEALER_PHONE,
        lambda: stack.call("POST", "/v1/accounts/password-reset", {"identifier": DEALER_LOGIN}),
    )
    status, done = stack.call(
        "POST",
        "/v1/accounts/password-reset/confirm",
        {"identifier": DEALER_LOGIN, "code": code, "new": DEALER_PASSWORD},
    )
    assert status == 200, done
    challenge: dict[str, Any] = {}

    def start_login() -> None:
        status, doc = stack.call(
            "POST", "/v1/accounts/login", {"identifier": DEALER_LOGIN, "password": DEALER_PASSWORD}
        )
        assert status == 202, doc
        challenge.update(doc)

    import time

    time.sleep(10)  # the stack sends one phone a code every 10 s
    code = _code_sent(stack, DEALER_PHONE, start_login)
    status, signed = stack.call(
        "POST", "/v1/accounts/login/verify", {"challenge_id": challenge["challenge_id"], "code": code}
    )
    assert status == 200, signed
    return str(signed["token"])


def storage_and_caches(me: Phone) -> dict[str, Any]:
    return dict(
        me.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const keys = window.caches ? caches.keys() : Promise.resolve([]);"
            "keys.then(k => done({session: sessionStorage.length, local: localStorage.length,"
            " caches: k.length, hash: location.hash}));"
        )
    )


def test_an_owner_registers_on_the_dealers_tablet_and_the_tablet_keeps_nothing(
    phone: Phone, stack: Stack
) -> None:
    me = phone
    vin = unregistered_vin(stack)
    status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
    assert status == 200, vehicle
    dealer_code = vehicle["dealer_code"]
    assert dealer_code, vehicle
    dealer = dealer_signed_in(stack, dealer_code)

    # The dealer hands the car's registration over: a single-use link for its tablet
    status, handoff = stack.call("POST", "/v1/dealer/assisted-registrations", {"vin": vin}, token=dealer)
    assert status == 201, handoff
    assert handoff["handoff_url"].startswith("/h5/#handoff=")

    # The tablet opens it: the owner is asked to sign in with their own phone; the code left the address
    me.driver.get(stack.api + handoff["handoff_url"])
    me.wait_screen("login")
    assert me.element("#tablet-note").is_displayed()
    assert "经销商协助登记" in me.element("#tablet-note").text
    assert handoff["code"] not in me.driver.current_url
    me.shot("01-tablet-login")
    me.fill("#login-phone", OWNER_PHONE)
    code = me.sms_code(OWNER_PHONE, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-agree")
    me.tap("#login-submit")

    # Signed in, they land on the car the dealer handed over (no VIN to type), masked
    me.wait_screen("confirm_vehicle")
    shown = me.element("#vehicle-card").text
    assert vin[-6:] in shown
    assert vin not in shown
    assert me.element("#sign-out").text == "结束"
    me.shot("02-tablet-vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    me.shot("03-tablet-phone-step")
    refresh_token = me.driver.execute_script("return localStorage.getItem('cheka.h5.refresh')")
    assert refresh_token

    # 结束: signed out on the server, nothing left on the page
    me.tap("#sign-out")
    me.wait_screen("handback")
    assert "交还" in me.element('section[data-screen="handback"]').text
    left = storage_and_caches(me)
    assert (left["session"], left["local"], left["caches"]) == (0, 0, 0), left
    assert not me.element("#sign-out").is_displayed()
    me.shot("04-tablet-handback")
    status, refused = stack.call("POST", "/v1/auth/refresh", {"refresh_token": refresh_token})
    assert status == 401, refused

    # The dealer's next hand-off opens in the same tab: the tablet starts afresh, asking for a sign-in;
    # left untouched (5 minutes: this browser's clock runs the page's long timers in 4 seconds), it
    # ends by itself and keeps nothing either
    me.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "const wait = window.setTimeout; window.setTimeout = (f, ms, ...a) =>"
            " wait(f, ms >= 300000 ? 4000 : ms, ...a);"
        },
    )
    status, second = stack.call("POST", "/v1/dealer/assisted-registrations", {"vin": vin}, token=dealer)
    assert status == 201, second
    me.driver.get(stack.api + second["handoff_url"])
    me.wait_until("the tablet's sign-in", lambda: me.screen() == "login" and me.element("#tablet-note"))
    assert me.element("#tablet-note").is_displayed()
    me.wait_screen("handback", timeout=20)
    assert "长时间未操作" in me.element("#handback-text").text
    left = storage_and_caches(me)
    assert (left["session"], left["local"], left["caches"]) == (0, 0, 0), left
    me.shot("05-tablet-idle-handback")

    # And nothing the dealer's API answers names the owner or their phone
    status, listed = stack.call("GET", "/v1/dealer/vehicles?limit=100", token=dealer)
    assert status == 200, listed
    assert vin in {v["vin"] for v in listed["items"]}
    status, own = stack.call("GET", f"/v1/vehicles/{vin}", token=dealer)
    assert status == 200, own
    text = json.dumps([handoff, listed, own], ensure_ascii=False)
    assert OWNER_PHONE not in text
    assert OWNER_PHONE[-4:] not in text
    assert all(card["holder"] is None for card in own["cards"])
