"""The console's staff sign-in in the browser, against the stack ``make run`` starts: the console sends a
reviewer to the local OpenID Connect provider (authorization code + PKCE), the provider asks for the
password and then a TOTP code (a wrong code is refused on its page), the console gets the tokens back,
shows the reviewer's roles and review queue, and signing out ends the token at the API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


def _staff(stack: Stack) -> tuple[str, dict[str, dict[str, Any]]]:
    """The stack's provider and demo staff, from its state file (as `cheka staff` reads them)."""
    doc = json.loads(Path(stack.env["CHEKA_LOCAL_STATE_FILE"]).read_text(encoding="utf-8"))
    return str(doc["oidc"]), {str(m["username"]): m for m in doc["staff"]}


@pytest.fixture
def console(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    return Phone(browser, stack, tmp_path, camera)


#: Opens a review case on the stack's store, as a flow whose identity authority could not answer does
#: (a case for the reviewer's queue); prints its id.
_OPEN_CASE = """
from chalicelib.core import deps
from chalicelib.verification.domain.flows import FlowPurpose, ReviewReason

service = deps.verification_service()
flow = service.open_flow("e2e-console-owner", FlowPurpose.REGISTRATION)
print(service.open_case(flow.flow_id, "e2e-console-owner", ReviewReason.AUTHORITY_UNAVAILABLE).case_id)
"""


def _open_case(stack: Stack) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_CASE],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def _field(page: Phone, selector: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    element = page.driver.find_element(By.CSS_SELECTOR, selector)
    element.clear()
    element.send_keys(text)


def _click(page: Phone, selector: str) -> None:
    from selenium.webdriver.common.by import By

    page.driver.find_element(By.CSS_SELECTOR, selector).click()


def _on_provider(page: Phone, issuer: str, field: str) -> bool:
    return bool(
        page.driver.current_url.startswith(issuer)
        and page.driver.execute_script(f"return !!document.getElementById('{field}')")
    )


def _provider_error(page: Phone) -> str:
    return str(
        page.driver.execute_script(
            "const e = document.getElementById('error'); return e ? e.textContent : ''"
        )
    )


def test_a_reviewer_signs_in_with_password_and_totp_sees_the_queue_and_signs_out(
    console: Phone, stack: Stack
) -> None:
    import pyotp

    issuer, staff = _staff(stack)
    reviewer = staff["reviewer"]
    case_id = _open_case(stack)

    console.driver.get(stack.api + "/console")
    console.wait_until("the sign-in screen", lambda: console.screen() == "login")
    console.shot("01-console-login")

    _click(console, "#sign-in")
    console.wait_until("the provider's password page", lambda: _on_provider(console, issuer, "password"))
    assert "员工登录" in console.driver.page_source
    _field(console, "#username", "reviewer")
    _field(console, "#password", str(reviewer["password"]))
    console.shot("02-provider-password")
    _click(console, "#next")
    console.wait_until("the provider's TOTP page", lambda: _on_provider(console, issuer, "otp"))

    # A wrong code first: refused on the page, and nothing goes back to the console.
    totp = pyotp.TOTP(str(reviewer["totp_secret"]))
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    _field(console, "#otp", wrong)
    _click(console, "#verify")
    console.wait_until("the refusal of the wrong code", lambda: _provider_error(console))
    assert _provider_error(console) == "动态验证码错误或已使用过，还可以再试 4 次。"
    assert console.driver.current_url.startswith(issuer)
    console.shot("03-provider-wrong-totp")

    _field(console, "#otp", stack.totp_code("reviewer", str(reviewer["totp_secret"])))
    _click(console, "#verify")
    console.wait_until("the console's home", lambda: console.screen() == "home", timeout=30)
    assert console.driver.current_url == stack.api + "/console", "the code and state are gone from the URL"
    text = console.driver.find_element("css selector", 'section[data-screen="home"]').text
    assert "审核员" in text
    assert "密码 + 动态验证码" in text
    assert "审核员（演示）" in text

    token = str(console.driver.execute_script("return sessionStorage.getItem('cheka.console.token')"))
    status, me = stack.call("GET", "/v1/staff/me", token=token)
    assert status == 200, me
    assert me["roles"] == ["reviewer"]
    assert me["mfa"] == "amr:otp"
    assert me["from_identity_provider"] is True
    # The queue the console shows is the API's.
    status, queue = stack.call("GET", "/v1/review-cases?status=open&limit=20", token=token)
    assert status == 200, queue
    console.wait_until(
        "the review queue",
        lambda: console.driver.execute_script("return document.getElementById('queue-count').textContent"),
    )
    shown = console.driver.execute_script(
        "return Array.from(document.querySelectorAll('#queue-list li')).map(li => li.dataset.case)"
    )
    assert shown == [case["case_id"] for case in queue["cases"]]
    assert case_id in shown, "the case just opened is in the queue"
    item = console.driver.find_element("css selector", f'#queue-list li[data-case="{case_id}"]')
    assert "身份核验服务暂不可用" in item.text
    assert "实名登记" in item.text
    assert not console.driver.find_element("css selector", "#queue-empty").is_displayed()
    console.shot("04-console-reviewer-home")

    # The access token about to expire: the page opened again renews it with the refresh token, quietly.
    console.driver.execute_script(
        "const k = 'cheka.console.idp', held = JSON.parse(sessionStorage.getItem(k));"
        "held.expires_at = Math.floor(Date.now() / 1000); sessionStorage.setItem(k, JSON.stringify(held));"
    )
    console.driver.refresh()
    console.wait_until("the console's home again", lambda: console.screen() == "home")

    def renewed() -> str:
        return str(
            console.driver.execute_script("return sessionStorage.getItem('cheka.console.token') || ''")
        )

    console.wait_until("a renewed access token", lambda: renewed() not in ("", token))
    fresh = renewed()
    status, me = stack.call("GET", "/v1/staff/me", token=fresh)
    assert status == 200, me
    assert me["roles"] == ["reviewer"]

    _click(console, "#sign-out")
    console.wait_until("the console after signing out", lambda: console.screen() == "login", timeout=30)
    notice = console.driver.execute_script(
        "const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent"
    )
    assert notice == "已退出登录"
    assert console.driver.current_url == stack.api + "/console"
    assert not console.driver.execute_script("return sessionStorage.getItem('cheka.console.token')")
    console.shot("05-console-signed-out")

    # The tokens of that sign-in, the first and the renewed one, are refused from now on (staff logout
    # revokes its session).
    for ended in (token, fresh):
        status, refused = stack.call("GET", "/v1/staff/me", token=ended)
        assert status == 401, refused
    assert console.console_errors() == []


def staff_sign_in(console: Phone, stack: Stack, user: str) -> None:
    """Sign the demo staff member ``user`` in at the local provider: password, then the current TOTP code
    (the caller waits for the screen it expects)."""
    issuer, staff = _staff(stack)
    member = staff[user]
    console.driver.get(stack.api + "/console")
    console.wait_until("the sign-in screen", lambda: console.screen() == "login")
    _click(console, "#sign-in")
    console.wait_until("the provider's password page", lambda: _on_provider(console, issuer, "password"))
    _field(console, "#username", user)
    _field(console, "#password", str(member["password"]))
    _click(console, "#next")
    console.wait_until("the provider's TOTP page", lambda: _on_provider(console, issuer, "otp"))
    _field(console, "#otp", stack.totp_code(user, str(member["totp_secret"])))
    _click(console, "#verify")
