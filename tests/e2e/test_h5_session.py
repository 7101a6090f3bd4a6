"""The H5 client survives the phone: the back gesture, a closed app, a reload on the result, sign-out.

Two stories in headless Chromium against the whole local stack. In the first a person signs in (the
code's ask answered first with a captcha, which the page shows and sends back), opens
我的车辆 and goes back, starts a registration and goes back out of it: home tells "继续办理" with the
car's VIN tail and the step due. They close the app (the tab goes, and with it the tab's access token)
and open it again: still signed in (the refresh token), the same card; an access token the server
refuses is renewed quietly; 继续办理 lands on the step. Signing out ends the session on the server: its
refresh token is refused from then on. In the second a person carries a registration to the end: a
reload on the result shows the result, and when the app was closed while the operator answered,
opening the result again shows the answer.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import (
    Phone,
    prove_identity,
    show_possession,
    unregistered_vin,
)
from tests.e2e.test_h5_registration import phone as phone  # the fixture

#: Phones of this file only: a phone gets one code a minute.
LOGIN_PHONE = "13600136001"
RESULT_PHONE = "13600136003"
OWNER_PHONE = "13600136002"


def other_unregistered_vin(stack: Stack, taken: str) -> str:
    """A demo vehicle with every card unregistered other than ``taken`` (the last such: the other
    browser tests take the first)."""
    candidates = list(stack.seed.get("unregistered_vins") or stack.seed.get("open_vins") or [])
    for vin in reversed(candidates):
        status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
        if vin != taken and status == 200 and all(c["state"] == "unregistered" for c in vehicle["cards"]):
            return str(vin)
    return taken


def sign_in(me: Phone, number: str) -> None:
    me.wait_screen("login")
    me.fill("#login-phone", number)
    code = me.sms_code(number, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    agree = me.driver.find_elements("css selector", "#login-agree")
    if agree and agree[0].is_displayed() and not agree[0].is_selected():
        agree[0].click()
    me.tap("#login-submit")
    me.wait_screen("home")


#: The page's fetch, wrapped: the first ask for an SMS code is answered as the server answers a client
#: past its asks before a captcha (428 with a challenge: the stack's own, from POST /v1/captcha, passed
#: as arguments[0]); every ask's body and X-Device-Id are kept in window.__asks.
CAPTCHA_ONCE = """
const challenge = arguments[0];
const real = window.fetch.bind(window);
let refused = false;
window.__asks = [];
window.fetch = (url, init) => {
  if (String(url).endsWith("/v1/auth/sms-codes")) {
    window.__asks.push({ body: JSON.parse(init.body), device: init.headers["X-Device-Id"] || null });
    if (!refused) {
      refused = true;
      const refusal = { code: "captcha.required", message_zh: "请输入图片中的字符后再获取验证码",
        message_en: "Type the characters", field: "captcha_answer", details: { challenge } };
      return Promise.resolve(new Response(JSON.stringify(refusal),
        { status: 428, headers: { "Content-Type": "application/json" } }));
    }
  }
  return real(url, init);
};
"""


def sign_in_through_a_captcha(me: Phone, stack: Stack, number: str) -> None:
    """Sign in when the code's ask first needs a captcha: the picture shows, the answer goes with the
    ask made again (the stack's limits are high: it sends the code whatever the answer)."""
    me.wait_screen("login")
    status, challenge = stack.call("POST", "/v1/captcha")
    assert status == 201, challenge
    me._js(CAPTCHA_ONCE, challenge)
    me.fill("#login-phone", number)

    def ask() -> None:
        me.tap("#login-send")
        me.wait_until(
            "the captcha picture",
            lambda: me._js(
                "const i = document.getElementById('captcha-image'); return i && i.complete && i.naturalWidth"
            ),
        )
        me.fill("#captcha-answer", "hk7pe")
        me.tap("#captcha-ok")

    code = me.sms_code(number, ask)
    asks = me._js("return window.__asks")
    assert asks[0]["body"] == {"phone": number, "purpose": "login"}
    assert asks[1]["body"] == {
        "phone": number,
        "purpose": "login",
        "captcha_id": challenge["challenge_id"],
        "captcha_answer": "hk7pe",
    }
    assert asks[0]["device"], "the page sends its device id with every ask"
    assert asks[1]["device"] == asks[0]["device"]
    assert not me.csp_violations(), "the captcha picture (a data: URL) is allowed by the page's CSP"
    me.fill("#login-code", code)
    agree = me.driver.find_elements("css selector", "#login-agree")
    if agree and agree[0].is_displayed() and not agree[0].is_selected():
        agree[0].click()
    me.tap("#login-submit")
    me.wait_screen("home")


def stored(me: Phone, where: str, key: str) -> str | None:
    value = me._js(f"return window.{where}.getItem(arguments[0])", key)
    return str(value) if value is not None else None


def resume_cards(me: Phone) -> list[str]:
    """The 继续办理 cards home shows (once the server answered)."""
    texts = me._js(
        "const box = document.getElementById('home-resume');"
        "return box.hidden ? [] : Array.from(box.querySelectorAll('.resume-item')).map(b => b.innerText)"
    )
    return [str(t) for t in texts]


def reopen_app(me: Phone, url: str) -> None:
    """Close the app's tab and open the app again in a new one (nothing of the tab's session storage
    survives: only what the page kept in local storage)."""
    driver = me.driver
    old = driver.current_window_handle
    driver.switch_to.new_window("tab")
    new = driver.current_window_handle
    driver.switch_to.window(old)
    driver.close()
    driver.switch_to.window(new)
    driver.get(url)


def result_of(me: Phone) -> str | None:
    found = me._js("return document.querySelector('section[data-screen=result]').dataset.result || null")
    return str(found) if found else None


def test_the_sign_in_and_an_unfinished_registration_survive_back_gestures_and_a_closed_app(
    phone: Phone, stack: Stack
) -> None:
    me = phone
    vin = other_unregistered_vin(stack, unregistered_vin(stack))
    me.open()
    sign_in_through_a_captcha(me, stack, LOGIN_PHONE)
    assert stored(me, "localStorage", "cheka.h5.refresh"), "the refresh token is kept for the next opening"
    assert me._js("return location.hash") == "#/home"
    me.shot("01-home")

    # Back on home stays in the app, on home
    me.driver.back()
    me.wait_screen("home")
    me.driver.back()
    me.wait_screen("home")
    assert me.driver.current_url.startswith(stack.api + "/h5")

    # One screen in, and back: one screen back
    me.tap("#home-vehicles")
    me.wait_screen("vehicles")
    assert me._js("return location.hash") == "#/vehicles"
    me.driver.back()
    me.wait_screen("home")

    # A registration started: each step is the registration's own address
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    registration = str(me._js("return location.hash")).split("/")
    assert registration[1] == "registration", registration
    assert registration[3] == "verify_phone", registration

    # Back from the step leaves the registration for home (the steps done are the server's), where
    # 继续办理 says which car (VIN tail only) and what is next
    me.driver.back()
    me.wait_screen("home")
    cards = me.wait_until("继续办理", lambda: resume_cards(me))
    assert len(cards) == 1, cards
    assert "尾号 " + vin[-6:] in cards[0]
    assert "下一步：验证手机号" in cards[0]
    assert vin not in cards[0]
    assert "继续办理" in cards[0]
    me.shot("02-home-continue")

    # The app is closed and opened again: still signed in, the same card
    refresh_before = stored(me, "localStorage", "cheka.h5.refresh")
    reopen_app(me, stack.api + "/h5")
    me.wait_screen("home")
    me.wait_until(
        "a new access token for the new tab", lambda: stored(me, "sessionStorage", "cheka.h5.token")
    )
    assert stored(me, "localStorage", "cheka.h5.refresh") != refresh_before, "rotated on use"
    cards = me.wait_until("继续办理 after reopening", lambda: resume_cards(me))
    assert "尾号 " + vin[-6:] in cards[0]
    me.shot("03-reopened-home")

    # An access token the server no longer takes is renewed without the person noticing
    me._js("sessionStorage.setItem('cheka.h5.token', 'expired.token.here')")
    me.tap("#home-resume .resume-item")
    me.wait_screen("verify_phone")
    assert stored(me, "sessionStorage", "cheka.h5.token") != "expired.token.here"
    assert not me.errors()
    me.shot("04-resumed-at-the-phone-step")

    # Signing out ends the session on the server: the refresh token it had is refused from then on
    kept = stored(me, "localStorage", "cheka.h5.refresh")
    assert kept
    me.tap("#sign-out")
    me.wait_screen("login")
    assert stored(me, "localStorage", "cheka.h5.refresh") is None
    status, doc = stack.call("POST", "/v1/auth/refresh", {"refresh_token": kept})
    assert status == 401, doc
    assert doc["code"] == "auth.session_revoked"
    me.shot("05-signed-out")
    # And back from the login screen shows nothing of what was behind it
    me.driver.back()
    me.wait_screen("login")
    assert not resume_cards(me)


def test_a_reload_on_the_result_and_an_app_reopened_after_the_answer_show_the_result(
    phone: Phone, stack: Stack
) -> None:
    me = phone
    vin = unregistered_vin(stack)
    me.open()
    sign_in(me, RESULT_PHONE)
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    me.fill("#owner-phone", OWNER_PHONE)
    code = me.sms_code(OWNER_PHONE, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")
    show_possession(me, vin)
    prove_identity(me, camera=True)
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
    result_url = me.driver.current_url
    assert result_url.endswith("/result"), result_url
    token = stored(me, "sessionStorage", "cheka.h5.token")

    # The app is closed while the operator answers; opened again on the result, it shows the answer
    reopen_app(me, "about:blank")
    registration_id = result_url.split("/")[-2]

    def answered() -> Any:
        status, doc = stack.call("GET", f"/v1/me/registrations/{registration_id}", token=token)
        assert status == 200, doc
        return doc["step"] if doc["step"] != "pending" else None

    assert me.wait_until("the operator's answer", answered, timeout=60) == "registered"
    me.driver.get(result_url)
    me.wait_screen("result")
    assert me.wait_until("the result shown", lambda: result_of(me), timeout=30) == "registered"
    assert "实名登记成功" in me.element("#result-text").text
    me.shot("01-result-after-reopening")

    # A reload on the result shows the result again, not home nor an error
    me.driver.refresh()
    me.wait_screen("result")
    assert me.wait_until("the result after a reload", lambda: result_of(me)) == "registered"
    assert not me.errors()
    me.shot("02-result-after-reload")

    # Back from the result leaves the finished registration: home, with nothing to carry on with
    me.driver.back()
    me.wait_screen("home")
    me.wait_until("home's answer", lambda: me._js("return document.getElementById('home-resume').hidden"))
    me.shot("03-home-after-the-result")
