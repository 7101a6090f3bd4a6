"""The enterprise portal (企业门户) in headless Chromium against the whole local stack: accounts, real-name
authentication and agents, as seed 001 walks them.

One story. A legal person signs up (a password the platform refuses first, told under its field; the
SMS code read from the local SMS drop), signs in with login name + password + SMS code, and completes
法人 real-name authentication: the form of seed 001, a synthetic business licence and ID card uploaded
and read by the platform, the biometric consent, and the face check in front of the (fake) camera. A
second person signs up, completes 自然人 real-name the same way (their own face and card; no camera on
their computer: a burst of photos chosen instead) and applies to be the enterprise's agent (经办人).
The legal person, signed in again by the enterprise's USCC, approves the application, then signs out
on every device (登录设备: the refresh token is refused from then on). The agent signs in by ID number
and sees their enterprise, and only it: the legal person's page of agents is refused to them, and so
is another enterprise's log. Last, the agent changes their password (a too short one refused under its
field first) and signs in with the new one.
"""

from __future__ import annotations

import functools
import random
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import LIVE_PERSON, Phone, pass_face_check
from tests.face_photos import CARD_PORTRAIT, FACES
from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: Phones of this file only.
LEGAL_PHONE = "13500135001"
AGENT_PHONE = "13500135002"
PASSWORD = "Star#2026road"
NEW_PASSWORD = "Road#2027star"
#: The agent: another person, with their own card and face (two photos of the same man).
AGENT_NAME = "赵晓东"
AGENT_ADDRESS = "上海市黄浦区中山东一路12号"
AGENT_CARD = "biden_1.jpg"
AGENT_LIVE = "biden_2.jpg"
COMPANY_NAME = "北京云途车联科技有限公司"
#: The stage sends a phone one code per CHEKA_SMS_RESEND_SECONDS (10 s in tests/e2e/conftest.py).
RESEND_SECONDS = 11.0


def fresh_uscc(rng: random.Random) -> str:
    """A USCC no other test of the run claims, with its check character (GB 32100)."""
    from stdnum.cn import uscc

    # Digits, and a check character the licence's OCR reads without doubt: a digit that no other
    # character of the USCC alphabet resembles (not 0, 6 or 8, which D, G and B resemble; no letter).
    while True:
        body = "91110108" + "".join(rng.choice("0123456789") for _ in range(9))
        check = str(uscc.calc_check_digit(body))
        if check in "12345679":
            return body + check


@pytest.fixture
def portal(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    missing = [
        f"{method} {path}"
        for method, path, body in (
            ("POST", "/v1/accounts", {}),
            ("POST", "/v1/accounts/sms-codes", {}),
            ("POST", "/v1/accounts/login", {}),
            ("POST", "/v1/accounts/login/verify", {}),
            ("GET", "/v1/accounts/me/real-name", None),
            ("POST", "/v1/enterprise/agent-applications", {}),
            ("GET", "/v1/enterprise/agents", None),
            ("GET", "/v1/dev/sms-drop", None),
        )
        if not stack.route_exists(method, path, body)
    ]
    if missing:
        pytest.skip("the API the portal drives is not all there yet: " + ", ".join(missing))
    return Phone(browser, stack, tmp_path, camera)


class Codes:
    """When each phone was last sent a code: the next is asked for once the stage allows it."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}

    def read(self, me: Phone, phone: str, tap: str) -> str:
        wait = self.sent.get(phone, 0.0) + RESEND_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        code = me.sms_code(phone, lambda: me.tap(tap))
        self.sent[phone] = time.monotonic()
        return code


def go(me: Phone, hash_: str, screen: str) -> None:
    me.driver.get(me.stack.api + "/portal#/" + hash_)
    me.wait_screen(screen)


def ready(me: Phone, screen: str) -> None:
    """``screen`` shows, with what it loads from the API."""
    me.wait_screen(screen)
    me.wait_until(
        f"{screen} loaded",
        lambda: (
            me._js(
                "return document.querySelector(`section[data-screen=${arguments[0]}]`).dataset.ready", screen
            )
            == "yes"
        ),
    )


def field_error(me: Phone, css: str) -> str:
    """The refusal shown under the field ``css`` (empty when none)."""
    return str(
        me._js(
            "const box = document.querySelector(arguments[0]).closest('.field');"
            "const slot = box && box.querySelector('.field-error');"
            "return slot && !slot.hidden ? slot.textContent : ''",
            css,
        )
    )


def sign_up(me: Phone, codes: Codes, login_name: str, phone: str, *, weak_first: bool = False) -> None:
    go(me, "signup", "signup")
    me.fill("#signup-login-name", login_name)
    me.fill("#signup-email", f"{login_name}@example.com")
    me.fill("#signup-phone", phone)
    if weak_first:
        # A password of letters and digits only, with a space: refused under the field, nothing created
        me.fill("#signup-password", "abc 12345x")
        me.fill("#signup-password-confirm", "abc 12345x")
        me.fill("#signup-code", "000000")
        me.element("#signup-agree").click()
        me.tap("#signup-submit")
        refusal = me.wait_until("the password refused", lambda: field_error(me, "#signup-password"))
        assert "空格" in refusal, refusal
        assert "符号" in refusal, refusal
        assert me.screen() == "signup"
        me.shot("01-signup-weak-password")
    else:
        me.element("#signup-agree").click()
    me.fill("#signup-password", PASSWORD)
    me.fill("#signup-password-confirm", PASSWORD)
    me.fill("#signup-code", codes.read(me, phone, "#signup-send"))
    me.shot(f"02-signup-{login_name}")
    me.tap("#signup-submit")
    me.wait_screen("signed-up")
    text = me.element("#signed-up-text").text
    assert login_name in text, text
    assert phone[:3] + "****" + phone[-4:] in text, text
    assert phone not in me.driver.page_source  # the phone is shown masked only


def sign_in(
    me: Phone, codes: Codes, identifier: str, phone: str, shot: str | None = None, password: str = PASSWORD
) -> None:
    go(me, "login", "login")
    me.fill("#login-identifier", identifier)
    me.fill("#login-password", password)
    code = codes.read(me, phone, "#login-send")
    sent = me.wait_until("where the code went", lambda: me.element("#login-sent").text)
    assert phone[:3] + "****" + phone[-4:] in sent, sent
    me.fill("#login-code", code)
    if shot:
        me.shot(shot)
    me.tap("#login-submit")
    ready(me, "home")


def sign_out(me: Phone) -> None:
    me.tap("#sign-out")
    me.wait_screen("login")


def doc_state(me: Phone, kind: str) -> str | None:
    state = me._js(
        "const d = document.getElementById(arguments[0]); return d && d.dataset.state", f"doc-{kind}"
    )
    return str(state) if state in ("done", "failed") else None


def real_name(
    me: Phone,
    *,
    legal: dict[str, str] | None,
    name: str,
    id_number: str,
    address: str,
    photos: dict[str, Path],
    live: str,
    camera: bool,
    prefix: str,
) -> None:
    """实名认证 in the portal: the form, the photos (read and cross-checked), the face (in front of the
    camera, or a burst of photos chosen where the page cannot open one), submit."""
    me.tap("#home-realname")
    me.wait_screen("realname")
    if legal:
        me.element("#realname-kind-legal").click()
        me.driver.find_element("css selector", "#rn-enterprise-type option[value=enterprise]").click()
        me.fill("#rn-uscc", legal["uscc"])
        me.fill("#rn-company-name", legal["company_name"])
        me.driver.find_element(
            "css selector", "#rn-legal-person-type option[value=legal_representative]"
        ).click()
        assert me.element("#rn-name-label").text == "法定代表人姓名"
    me.fill("#rn-name", name)
    me.fill("#rn-id-number", id_number)
    # Submitted without the address: refused under the field before anything is sent
    me.tap("#realname-next")
    assert "联系地址" in me.wait_until("the address asked for", lambda: field_error(me, "#rn-address"))
    me.fill("#rn-address", address)
    me.shot(f"{prefix}-realname-form")
    me.tap("#realname-next")
    me.wait_screen("realname-docs")
    me.wait_until(
        "the documents screen",
        lambda: me._js("return document.querySelector('section[data-screen=realname-docs]').dataset.ready"),
    )
    # The biometric consent first, on its own: the ID card's portrait is face processing
    assert me.element("#docs-consent").is_displayed()
    assert not me.element("#docs-list").is_displayed()
    assert "人脸信息" in me.element("#docs-consent").text
    me.element("#docs-consent-check").click()
    me.tap("#docs-consent-submit")
    me.wait_until("the photos", lambda: me.element("#docs-list").is_displayed())
    for kind, path in photos.items():
        me.choose_files(f"#doc-{kind}-file", path)
        state = me.wait_until(f"the {kind} photo read", functools.partial(doc_state, me, kind), 60)
        assert state == "done", me.messages()
    assert "2015-06-01" in me.element("#docs-validity").text  # the validity, read from the back
    me.shot(f"{prefix}-realname-documents")
    me.tap("#docs-next")
    me.wait_screen("face")
    me.wait_until(
        "the challenge told",
        lambda: me._js("return document.querySelector('section[data-screen=face]').dataset.direction"),
    )
    me.shot(f"{prefix}-realname-face")
    pass_face_check(me, camera=camera, person=live)
    me.wait_screen("realname-submit")
    summary = me.element("#submit-rows").text
    assert name not in summary, summary  # masked
    assert id_number not in summary, summary
    me.shot(f"{prefix}-realname-submit")
    me.tap("#realname-submit")
    me.wait_screen("realname-done")
    assert me.element("#done-text").text == "实名认证已完成"
    me.shot(f"{prefix}-realname-done")


def test_an_enterprise_signs_up_proves_its_legal_person_and_approves_an_agent_who_sees_only_it(
    portal: Phone, stack: Stack
) -> None:
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.local.synthetic import make_resident_id
    from tests.synthetic_documents import business_licence, id_back, id_front, id_photo

    me = portal
    codes = Codes()
    rng = random.Random()
    suffix = f"{rng.randrange(10**6):06d}"
    legal_login, agent_login = f"yuntu{suffix}", f"zhaoxd{suffix}"
    uscc = fresh_uscc(rng)
    agent_id = make_resident_id(rng)
    born = date(int(agent_id[6:10]), int(agent_id[10:12]), int(agent_id[12:14]))
    agent_portrait = id_photo(LocalFaceEngine(), FACES / AGENT_CARD)  # an ID-style cut of the photo
    SandboxIdentityAuthority(stack.authority).register_citizen(AGENT_NAME, agent_id, portrait=agent_portrait)

    # A legal person signs up (a weak password refused first) and signs in: login name, password, code
    sign_up(me, codes, legal_login, LEGAL_PHONE, weak_first=True)
    me.shot("03-signed-up")
    sign_in(me, codes, legal_login, LEGAL_PHONE, shot="04-login")
    assert me.element("#home-realname-todo").is_displayed()
    assert legal_login in me.element("#home-account").text
    me.shot("05-home-unverified")

    # 法人实名认证: the enterprise's facts, the representative's ID card, the business licence, the face
    real_name(
        me,
        legal={"uscc": uscc, "company_name": COMPANY_NAME},
        name=PERSON_NAME,
        id_number=PERSON_ID_NUMBER,
        address=PERSON_ADDRESS,
        photos={
            "business_licence": me.write(
                "licence.jpg",
                business_licence(uscc=uscc, name=COMPANY_NAME, legal_representative=PERSON_NAME, fmt="JPEG"),
            ),
            "id_front": me.write("id_front.jpg", id_front(portrait=FACES / CARD_PORTRAIT, fmt="JPEG")),
            "id_back": me.write("id_back.jpg", id_back(fmt="JPEG")),
        },
        live=LIVE_PERSON,
        camera=True,
        prefix="06-legal",
    )
    assert COMPANY_NAME in me.element("#done-rows").text
    assert uscc in me.element("#done-rows").text
    me.tap("#done-home")
    ready(me, "home")
    assert me.element("#home-agents").is_displayed()
    assert me.element("#home-enterprise").is_displayed()
    assert "法人" in me.element("#home-account").text
    me.shot("07-legal-home")
    sign_out(me)

    # A second person signs up, completes 自然人 real-name and applies to be the enterprise's agent
    sign_up(me, codes, agent_login, AGENT_PHONE)
    sign_in(me, codes, agent_login, AGENT_PHONE)
    assert not me.element("#home-apply").is_displayed()  # only after real-name
    sex = "男" if int(agent_id[16]) % 2 else "女"
    real_name(
        me,
        legal=None,
        name=AGENT_NAME,
        id_number=agent_id,
        address=AGENT_ADDRESS,
        photos={
            "id_front": me.write(
                "agent_front.jpg",
                id_front(
                    name=AGENT_NAME,
                    sex=sex,
                    birth_date=born,
                    address=AGENT_ADDRESS,
                    id_number=agent_id,
                    portrait=agent_portrait,
                    fmt="JPEG",
                ),
            ),
            "id_back": me.write("agent_back.jpg", id_back(fmt="JPEG")),
        },
        live=AGENT_LIVE,
        # A computer without a camera: a burst of photos (the page says how to take them). From here on
        # the browser has no camera: this is the story's last face check.
        camera=False,
        prefix="08-agent",
    )
    me.tap("#done-home")
    ready(me, "home")
    me.tap("#home-apply")
    ready(me, "apply")
    me.fill("#apply-company-name", COMPANY_NAME)
    me.fill("#apply-uscc", uscc)
    me.tap("#apply-submit")
    applied = me.wait_until("the application listed", lambda: "待审核" in me.element("#apply-list").text)
    assert applied
    assert COMPANY_NAME in me.element("#apply-list").text
    me.shot("09-agent-applied")
    sign_out(me)

    # The legal person, signed in by the enterprise's USCC, approves the application
    sign_in(me, codes, uscc, LEGAL_PHONE)
    me.tap("#home-agents")
    ready(me, "agents")
    card = ".agent[data-status=pending]"
    me.wait_until("the pending application", lambda: me.driver.find_elements("css selector", card))
    assert AGENT_NAME not in me.element("#agents-list").text  # the applicant's name is masked
    assert agent_login in me.element("#agents-list").text
    me.shot("10-legal-agents-pending")
    me.tap(card + " .agent-actions button:first-child")  # 同意
    me.wait_until(
        "the application approved",
        lambda: me.driver.find_elements("css selector", ".agent[data-status=approved]"),
    )
    assert "已授权" in me.element("#agents-list").text
    me.shot("11-legal-agent-approved")
    # 登录设备: this sign-in listed; 退出全部设备 ends every session, this one too
    refresh_token = me._js("return localStorage.getItem('cheka.portal.refresh')")
    go(me, "sessions", "sessions")
    ready(me, "sessions")
    assert me.driver.find_elements("css selector", ".session[data-current=yes]")
    me.shot("12-legal-sessions")
    me.tap("#sessions-all")
    me.wait_screen("login")
    assert "退出全部" in me.wait_until("the sign-out told", lambda: me.element("#notice").text)
    status, refused = stack.call("POST", "/v1/accounts/refresh", {"refresh_token": refresh_token})
    assert status == 401, refused

    # The agent signs in by ID number: their enterprise, and only it
    sign_in(me, codes, agent_id, AGENT_PHONE)
    assert uscc in me.element("#home-account").text  # 经办企业
    assert not me.element("#home-agents").is_displayed()
    me.tap("#home-enterprise")
    ready(me, "enterprise")
    shown = me.wait_until("the enterprise", lambda: me.element("#enterprise-rows").text)
    assert COMPANY_NAME in shown, shown
    assert uscc in shown, shown
    assert "经办人" in shown, shown
    me.wait_until(
        "the agent's own actions", lambda: "申请成为经办人" in me.element("#enterprise-actions").text
    )
    me.shot("13-agent-enterprise")
    # The legal person's page of agents is the legal person's: refused, said on the page
    go(me, "agents", "agents")
    ready(me, "agents")
    refusal = me.wait_until("the refusal", me.errors)
    assert refusal, me.messages()
    assert not me.driver.find_elements("css selector", ".agent")
    me.shot("14-agent-refused-agents")
    # The server says the same to the agent's own token: their enterprise only, another's log refused
    token = me._js("return sessionStorage.getItem('cheka.portal.token')")
    status, mine = stack.call("GET", "/v1/enterprise", token=token)
    assert (status, mine["uscc"], mine["my_role"]) == (200, uscc, "enterprise_agent")
    other = fresh_uscc(rng)
    status, refused = stack.call("GET", f"/v1/admin/enterprises/{other}/actions", token=token)
    assert status == 403, refused
    status, refused = stack.call("GET", "/v1/enterprise/agents", token=token)
    assert status == 403, refused

    # 修改密码: a new password too short is refused under its field; then changed, and it signs in
    go(me, "password", "password")
    me.fill("#password-current", PASSWORD)
    me.fill("#password-new", "Ab#1")
    me.fill("#password-confirm", "Ab#1")
    me.tap("#password-submit")
    assert "9-16" in me.wait_until("the new password refused", lambda: field_error(me, "#password-new"))
    me.shot("15-agent-password-refused")
    me.fill("#password-new", NEW_PASSWORD)
    me.fill("#password-confirm", NEW_PASSWORD)
    me.tap("#password-submit")
    ready(me, "home")
    assert "密码已修改" in me.wait_until("the change told", lambda: me.element("#notice").text)
    sign_out(me)
    sign_in(me, codes, agent_login, AGENT_PHONE, password=NEW_PASSWORD)
    # No script error along the way (the refusals above are answers, logged by the browser as such)
    errors = [e for e in me.console_errors() if "Failed to load resource" not in e]
    assert not errors, errors
