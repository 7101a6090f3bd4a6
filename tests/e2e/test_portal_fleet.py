"""单位车辆实名 in the enterprise portal (seed 000 §3), headless Chromium against the whole local stack: the
moto server executing the review state machine, the worker consuming its tasks, the sandbox operator.

One story of an approved agent (经办人) acting for their enterprise: a batch of 3 vehicles from a CSV file
with a bad row (told with its line, the good rows kept), the selling dealer, the responsible person's
phone and code, the business licence and authorization letter, the responsible person's identity, ID
photos (read by the platform) and face, the custody agreement, the IoV agreement, the company's full
name (one character off refused) → submitted. A reviewer, in the review console, asks for the
authorization letter again (补正): the portal names it and why, the agent replaces it and resubmits, the
reviewer approves the second round, the sandbox operator registers the cards and the portal shows the
batch completed, each card registered; then the enterprise's vehicles, and an actual user (实际使用人)
recorded for one card.

The accounts are set up through the API and the enterprise services (their pages are the accounts
test's, tests/e2e/test_portal_accounts.py); the agent's sign-in is handed to the page as the portal
keeps it.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_console_signin import _click, _field, _on_provider, _staff
from tests.e2e.test_h5_registration import LIVE_PERSON, Phone, pass_face_check
from tests.e2e.test_portal_accounts import fresh_uscc
from tests.face_photos import CARD_PORTRAIT, FACES
from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: Phones of this file only.
LEGAL_PHONE = "13500135011"
AGENT_PHONE = "13500135012"
RESPONSIBLE_PHONE = "13500135013"
PASSWORD = "Fleet#2026road"
COMPANY_NAME = "上海途远车队管理有限公司"
#: The stage sends a phone one code per CHEKA_SMS_RESEND_SECONDS (10 s in tests/e2e/conftest.py).
RESEND_SECONDS = 11.0

#: The legal person's and the agent's real names, recorded through the services (as the agents API test
#: does): the enterprise claimed by the legal-person account, the agent a natural person. Prints nothing.
_REAL_NAMES = """
import sys
from datetime import UTC, datetime

from chalicelib.accounts.domain import RealNameKind, RealNameRecord
from chalicelib.core import deps
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType

legal_id, agent_id, uscc, company = sys.argv[1:5]
hasher = deps.keyed_hasher()
legal_hash = hasher.digest("person:" + legal_id)
deps.enterprises().claim(
    uscc,
    company,
    legal_id,
    enterprise_type=EnterpriseType.ENTERPRISE,
    legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
    representative_name_masked="王*",
    representative_person_hash=legal_hash,
    address="上海市浦东新区示例路1号",
)
now = datetime.now(UTC)
deps.accounts().complete_real_name(
    legal_id,
    RealNameRecord(
        kind=RealNameKind.LEGAL, flow_id="f" + legal_id[-12:], verified_at=now, person_hash=legal_hash,
        display_name_masked="王*", uscc=uscc, company_name=company,
    ),
)
deps.accounts().complete_real_name(
    agent_id,
    RealNameRecord(
        kind=RealNameKind.NATURAL, flow_id="f" + agent_id[-12:], verified_at=now,
        person_hash=hasher.digest("person:" + agent_id), display_name_masked="赵*",
    ),
)
"""


class Codes:
    """SMS codes read from the stage's SMS drop, each phone asked no sooner than the stage allows."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sent: dict[str, float] = {}

    def _to(self, phone: str) -> list[dict[str, Any]]:
        masked = phone[:3] + "****" + phone[-4:]
        status, doc = self.stack.call("GET", "/v1/dev/sms-drop?limit=100", token=self.stack.admin_token)
        assert status == 200, doc
        return [m for m in doc["messages"] if m.get("phone") == masked]

    def wait(self, phone: str) -> None:
        left = self.sent.get(phone, 0.0) + RESEND_SECONDS - time.monotonic()
        if left > 0:
            time.sleep(left)

    def read(self, phone: str, send: Callable[[], Any]) -> str:
        """Send (``send()``) once the phone may be sent a code again, then the new code."""
        self.wait(phone)
        before = len(self._to(phone))
        send()
        self.sent[phone] = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            messages = self._to(phone)
            if len(messages) > before:
                latest = max(messages, key=lambda m: m.get("sent_at") or 0)
                found = re.search(r"验证码\s*(\d{4,8})", latest["text"])
                assert found, latest["text"]
                return found.group(1)
            time.sleep(0.3)
        raise AssertionError(f"no SMS to {phone} within 30 s")


class Enterprise:
    """An enterprise with its legal-person account and an approved agent, set up once for this file."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.codes = Codes(stack)
        rng = random.Random()
        suffix = f"{rng.randrange(10**6):06d}"
        self.uscc = fresh_uscc(rng)
        self.legal_login, self.agent_login = f"tuyuan{suffix}", f"zhaofl{suffix}"
        legal_id = self._sign_up(self.legal_login, LEGAL_PHONE)
        agent_id = self._sign_up(self.agent_login, AGENT_PHONE)
        done = subprocess.run(
            [sys.executable, "-c", _REAL_NAMES, legal_id, agent_id, self.uscc, COMPANY_NAME],
            cwd=ROOT,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        agent = self.sign_in(self.agent_login, AGENT_PHONE)
        status, applied = stack.call(
            "POST",
            "/v1/enterprise/agent-applications",
            {"company_name": COMPANY_NAME, "uscc": self.uscc},
            token=agent["token"],
        )
        assert status in (200, 201), applied
        legal = self.sign_in(self.legal_login, LEGAL_PHONE)
        status, approved = stack.call(
            "POST", f"/v1/enterprise/agents/{agent_id}/approve", {}, token=legal["token"]
        )
        assert status == 200, approved
        self.agent_id = agent_id
        #: The agent's sign-in not yet handed to a page (the first page takes it; later ones sign in).
        self.unused: dict[str, Any] | None = agent

    def _sign_up(self, login_name: str, phone: str) -> str:
        status, texts = self.stack.call("GET", "/v1/account-texts")
        assert status == 200, texts
        code = self.codes.read(
            phone, lambda: self.stack.call("POST", "/v1/accounts/sms-codes", {"phone": phone})
        )
        status, account = self.stack.call(
            "POST",
            "/v1/accounts",
            {
                "login_name": login_name,
                "password": PASSWORD,
                "password_confirm": PASSWORD,
                "email": f"{login_name}@example.com",
                "phone": phone,
                "code": code,
                "accepted": [
                    {"kind": d["kind"], "version": d["version"], "sha256": d["sha256"]}
                    for d in texts["documents"]
                ],
            },
        )
        assert status == 201, account
        return str(account["account_id"])

    def sign_in(self, identifier: str, phone: str) -> dict[str, Any]:
        """The two-step login through the API: ``{token, refresh_token, account}``."""
        challenge: dict[str, Any] = {}

        def start() -> None:
            status, doc = self.stack.call(
                "POST", "/v1/accounts/login", {"identifier": identifier, "password": PASSWORD}
            )
            assert status == 202, doc
            challenge.update(doc)

        code = self.codes.read(phone, start)
        status, signed = self.stack.call(
            "POST",
            "/v1/accounts/login/verify",
            {"challenge_id": challenge["challenge_id"], "code": code},
        )
        assert status == 200, signed
        return dict(signed)


@pytest.fixture(scope="module")
def enterprise(stack: Stack) -> Enterprise:
    missing = [
        f"{method} {path}"
        for method, path, body in (
            ("POST", "/v1/enterprise/fleet/batches", {}),
            ("GET", "/v1/enterprise/fleet/batches/fb_0", None),
            ("POST", "/v1/enterprise/fleet/batches/fb_0/vehicles/csv", {}),
            ("POST", "/v1/enterprise/fleet/batches/fb_0/submit", {}),
            ("POST", "/v1/enterprise/fleet/batches/fb_0/resubmit", {}),
            ("POST", "/v1/fleet-cases/fb_0/decision", {}),
            ("GET", "/v1/fleet-reasons", None),
        )
        if not stack.route_exists(method, path, body)
    ]
    if missing:
        pytest.skip("the fleet API the portal drives is not all there yet: " + ", ".join(missing))
    return Enterprise(stack)


@pytest.fixture
def portal(browser: WebDriver, stack: Stack, enterprise: Enterprise, tmp_path: Path, camera: Path) -> Phone:
    """The portal with the agent signed in (the refresh token kept where the portal keeps it)."""
    me = Phone(browser, stack, tmp_path, camera)
    signed = enterprise.unused or enterprise.sign_in(enterprise.agent_login, AGENT_PHONE)
    enterprise.unused = None
    me.driver.get(stack.api + "/portal#/login")
    me.wait_screen("login")
    me._js(
        "sessionStorage.setItem('cheka.portal.token', arguments[0]);"
        "sessionStorage.setItem('cheka.portal.subject', arguments[1]);"
        "localStorage.setItem('cheka.portal.refresh', arguments[2]);",
        signed["token"],
        enterprise.agent_id,
        signed["refresh_token"],
    )
    return me


# --- the portal's steps ------------------------------------------------------------------------------


def go(me: Phone, hash_: str, screen: str) -> None:
    me.driver.get(me.stack.api + "/portal#/" + hash_)
    me.wait_screen(screen)


def step(me: Phone) -> str:
    """The step the batch screen shows as the one to do (the server's ``step``)."""
    return str(me._js("return document.querySelector('section[data-screen=batch]').dataset.step || ''"))


def at_step(me: Phone, name: str, timeout: float = 30.0) -> None:
    """The batch shown anew with ``name`` the step to do, its panel open."""
    me.wait_until(
        f"the step {name}",
        lambda: (
            me._js("return document.querySelector('section[data-screen=batch]').dataset.ready") == "yes"
            and step(me) == name
            and me.driver.find_elements("css selector", f'.step[data-step="{name}"] .error')
        ),
        timeout,
    )


def batch_status(me: Phone) -> str:
    """The batch's status as the portal shows it (empty while the page loads)."""
    found = me.driver.find_elements("css selector", "#batch-status-text")
    return str(found[0].text) if found else ""


def doc_done(me: Phone, slot: str) -> str | None:
    state = me._js(
        "const d = document.getElementById(arguments[0]); return d && d.dataset.state", f"fleet-doc-{slot}"
    )
    return str(state) if state in ("done", "failed") else None


def upload(me: Phone, slot: str, path: Path) -> None:
    me.choose_files(f"#fleet-doc-{slot}-file", path)
    state = me.wait_until(f"the {slot} photo stored", lambda: doc_done(me, slot), 60)
    assert state == "done", me.messages()


def unregistered_vins(stack: Stack, count: int) -> list[str]:
    """``count`` demo vehicles whose cards are all unregistered (checked through the admin API)."""
    from chalicelib.local.synthetic import inventory_rows

    registered = set(stack.seed.get("registered_vins", []))
    found: list[str] = []
    for row in inventory_rows(50, seed=2026):
        vin = str(row["vin"])
        if vin in registered or vin in found:
            continue
        status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
        if status == 200 and vehicle["cards"] and all(c["state"] == "unregistered" for c in vehicle["cards"]):
            found.append(vin)
            if len(found) == count:
                return found
    raise AssertionError(f"not {count} unregistered vehicles in the demo inventory")


def build_and_submit(me: Phone, codes: Codes, uscc: str, vins: list[str], prefix: str) -> str:
    """批量实名登记 in the portal, step by step as the server asks: the batch id once submitted."""
    from tests.synthetic_documents import business_licence, id_back, id_front

    go(me, "home", "home")
    me.tap("#home-fleet")
    me.wait_screen("fleet")
    me.tap("#fleet-new-registration")
    me.wait_screen("batch")
    at_step(me, "vehicles")
    batch_id = str(me._js("return document.querySelector('section[data-screen=batch]').dataset.batch"))
    me.shot(f"{prefix}-01-vehicles")

    # A CSV file read in the browser: a header, the vehicles, and a VIN with a wrong check digit
    bad = vins[0][:8] + ("0" if vins[0][8] != "0" else "1") + vins[0][9:]
    csv = me.write(f"{prefix}-fleet.csv", ("vin\n" + "\n".join([*vins, bad]) + "\n").encode())
    me.choose_files("#fleet-csv", csv)
    report = me.wait_until(
        "the rows told", lambda: me.driver.find_elements("css selector", "#batch-rows-report")
    )
    assert report
    assert "已添加 3 辆车" in me.element("#batch-rows-added").text
    bad_rows = me.element("#batch-rows-bad").text
    assert "第 5 行" in bad_rows, bad_rows  # the header is line 1
    me.shot(f"{prefix}-02-csv-rows")
    assert sorted(me.element("#fleet-selected").text.replace("移除", "").split()) == sorted(vins)
    me.tap("#fleet-vehicles-done")

    # 勾选售车经销商
    at_step(me, "dealer")
    me.tap('input[name="fleet-dealer"]')
    me.shot(f"{prefix}-03-dealer")
    me.tap("#fleet-dealer-save")

    # 责任人手机号 and the code sent to it
    at_step(me, "responsible_phone")
    me.fill("#fleet-phone", RESPONSIBLE_PHONE)
    me.fill("#fleet-code", codes.read(RESPONSIBLE_PHONE, lambda: me.tap("#fleet-code-send")))
    me.shot(f"{prefix}-04-phone")
    me.tap("#fleet-phone-save")

    # 营业执照 (read against the enterprise the typed identity names: the responsible person's identity
    # first) and 授权书
    at_step(me, "documents")
    me.fill("#fleet-id-name", PERSON_NAME)
    me.fill("#fleet-id-number", PERSON_ID_NUMBER)
    me.fill("#fleet-id-address", PERSON_ADDRESS)
    me.tap("#fleet-identity-save")
    me.wait_until(
        "the licence asked", lambda: me.driver.find_elements("css selector", "#fleet-doc-business_licence")
    )
    licence = business_licence(uscc=uscc, name=COMPANY_NAME, legal_representative="王建国", fmt="JPEG")
    upload(me, "business_licence", me.write(f"{prefix}-licence.jpg", licence))
    upload(me, "authorization_letter", me.write(f"{prefix}-letter.jpg", letter_photo(uscc, vins)))
    me.shot(f"{prefix}-05-documents")
    me.tap("#fleet-docs-next-business_licence")

    # 责任人证件: as typed (kept), the separate biometric consent, both sides read
    at_step(me, "identity")
    assert "证件信息已保存" in me.element("#fleet-identity-saved").text
    assert PERSON_ID_NUMBER not in me.element("#fleet-identity-saved").text  # masked
    if me.driver.find_elements("css selector", "#fleet-bio-check"):
        me.element("#fleet-bio-check").click()
        me.tap("#fleet-bio-submit")
    me.wait_until(
        "the ID photos", lambda: me.driver.find_elements("css selector", "#fleet-doc-responsible_id_front")
    )
    front = id_front(portrait=FACES / CARD_PORTRAIT, fmt="JPEG")
    upload(me, "responsible_id_front", me.write(f"{prefix}-id-front.jpg", front))
    upload(me, "responsible_id_back", me.write(f"{prefix}-id-back.jpg", id_back(fmt="JPEG")))
    me.shot(f"{prefix}-06-identity")
    me.tap("#fleet-identity-next")

    # 人脸识别 on the portal's face screen (the real-name page's), back to the batch once matched
    at_step(me, "face")
    me.tap("#fleet-face-start")
    pass_face_check(me, camera=True, person=LIVE_PERSON)
    me.wait_screen("batch")

    # 车卡分管协议
    at_step(me, "custody_agreement")
    upload(me, "custody_agreement", me.write(f"{prefix}-custody.jpg", custody_photo(vins)))
    me.tap("#fleet-docs-next-custody_agreement")

    # 车联网协议
    at_step(me, "consents")
    me.element("#fleet-consent-custody").click()
    me.element("#fleet-consent-iov").click()
    me.shot(f"{prefix}-07-consents")
    me.tap("#fleet-consents-save")

    # 公司全称: the vehicles listed once more (not the bad row's); one character off is refused under
    # the field; the full name submits
    at_step(me, "submit")
    listed = me.element('.step[data-step="submit"] .vin-list').text
    assert sorted(listed.split()) == sorted(vins), listed
    me.fill("#fleet-company-name", COMPANY_NAME[:-1] + "局")
    me.tap("#fleet-submit")
    refused = me.wait_until("the name refused", me.errors)
    assert refused, me.messages()
    me.shot(f"{prefix}-08-name-refused")
    me.fill("#fleet-company-name", COMPANY_NAME)
    me.tap("#fleet-submit")
    me.wait_until(
        "submitted",
        lambda: (
            me._js("return document.querySelector('section[data-screen=batch]').dataset.status") != "draft"
        ),
    )
    assert batch_status(me) == "审核中"
    me.shot(f"{prefix}-09-submitted")
    return batch_id


def letter_photo(uscc: str, vins: list[str]) -> bytes:
    """授权书: the enterprise authorizes the responsible person for the batch's vehicles (synthetic)."""
    from tests.synthetic_documents import fleet_authorization_letter

    return fleet_authorization_letter(company=COMPANY_NAME, uscc=uscc, vins=vins, fmt="JPEG")


def custody_photo(vins: list[str]) -> bytes:
    """车卡分管协议, filled in, signed and sealed (a synthetic one)."""
    from tests.synthetic_documents import custody_agreement

    return custody_agreement(company=COMPANY_NAME, responsible=PERSON_NAME, vins=vins, fmt="JPEG")


def console_decides(
    me: Phone, batch_id: str, decision: str, *, reason: str | None = None, documents: tuple[str, ...] = ()
) -> None:
    """The reviewer decides the batch's case in the review console (signed in with password and TOTP
    the first time), once the workflow waits for a decision; then back to the portal's batch page."""
    from selenium.webdriver.common.by import By

    stack = me.stack
    me.driver.get(stack.api + "/console#/fleet/" + batch_id)
    me.wait_until("the console", lambda: me.screen() in ("login", "home", "case"))
    if me.screen() == "login":
        console_sign_in(me)
        me.driver.get(stack.api + "/console#/fleet/" + batch_id)
    form = "#decision-form"
    deadline = time.monotonic() + 60
    while not me.driver.find_elements(By.CSS_SELECTOR, form):
        # The automatic checks run in the worker: the case waits for a reviewer once they are done
        assert time.monotonic() < deadline, f"no decision form for {batch_id}: {me.messages()}"
        time.sleep(1.0)
        if not me.driver.find_elements(By.CSS_SELECTOR, form):
            me.driver.refresh()
            me.wait_until("the case page", lambda: me.screen() == "case")
            time.sleep(1.0)
    me.tap(f'{form} input[name="decision"][value="{decision}"]')
    if reason:
        me.tap(f'{form} input[name="reason_codes"][value="{reason}"]')
    for slot in documents:
        box = me.element(f'{form} input[name="documents"][value="{slot}"]')
        if not box.is_selected():
            box.click()
    me.shot(f"console-{decision}")
    me.tap("#decide")
    me.wait_until(
        "the decision taken",
        lambda: not me.driver.find_elements(By.CSS_SELECTOR, form) or me.errors(),
    )
    assert not me.errors(), me.errors()
    me.driver.get(stack.api + "/portal#/batch/" + batch_id)
    me.wait_screen("batch")


def console_sign_in(me: Phone) -> None:
    """The demo reviewer signs in to the console: the provider's password page, then a TOTP code."""

    issuer, staff = _staff(me.stack)
    reviewer = staff["reviewer"]
    me.wait_screen("login")
    _click(me, "#sign-in")
    me.wait_until("the provider's password page", lambda: _on_provider(me, issuer, "password"))
    _field(me, "#username", "reviewer")
    _field(me, "#password", str(reviewer["password"]))
    _click(me, "#next")
    me.wait_until("the provider's TOTP page", lambda: _on_provider(me, issuer, "otp"))
    _field(me, "#otp", me.stack.totp_code("reviewer", str(reviewer["totp_secret"])))
    _click(me, "#verify")
    me.wait_until("the console's home", lambda: me.screen() == "home", timeout=30)


def shows_completed(me: Phone, count: int) -> None:
    me.wait_until(
        "the batch completed and its cards registered",
        lambda: batch_status(me) == "已完成",
        timeout=90,
    )
    cards = me.driver.find_elements("css selector", "#batch-vehicles li[data-iccid]")
    assert len(me.driver.find_elements("css selector", "#batch-vehicles .vehicle")) == count
    assert cards, me.element("#batch-vehicles").text
    assert all("登记" in c.text for c in cards), [c.text for c in cards]


def test_an_agent_registers_three_vehicles_from_a_csv_replaces_the_letter_asked_for_and_sees_them_registered(
    portal: Phone, stack: Stack, enterprise: Enterprise
) -> None:
    from chalicelib.local.synthetic import make_resident_id

    me = portal
    vins = unregistered_vins(stack, 3)
    batch_id = build_and_submit(me, enterprise.codes, enterprise.uscc, vins, "a")

    # The reviewer, in the console, asks for the authorization letter again, with a reason the
    # enterprise may answer
    status, catalogue = stack.call("GET", "/v1/fleet-reasons", token=stack.admin_token)
    assert status == 200, catalogue
    reasons = catalogue if isinstance(catalogue, list) else catalogue.get("items") or catalogue["reasons"]
    asked = [r for r in reasons if r.get("decision") == "resubmit" and r.get("resubmittable")]
    reason = next((r for r in asked if "letter" in r["code"] or "authoriz" in r["code"]), asked[0])
    console_decides(me, batch_id, "resubmit", reason=reason["code"], documents=("authorization_letter",))

    # 补正: the portal names what to replace and why; resubmitting before replacing it is refused on
    # the page; the letter replaced, the batch goes back to review
    me.wait_until("the resubmission asked", lambda: batch_status(me) == "待补正", timeout=60)
    assert reason["zh"] in me.element("#batch-reasons").text
    assert me.driver.find_elements("css selector", "#batch-resubmit #fleet-doc-authorization_letter")
    assert not me.driver.find_elements("css selector", "#batch-resubmit #fleet-doc-business_licence")
    me.shot("a-10-resubmission-asked")
    me.tap("#batch-resubmit-send")
    assert "授权书" in " ".join(me.wait_until("the letter asked for first", me.errors))
    # A new photo of the letter (the VINs listed the other way round: another photo, not the same one)
    upload(me, "authorization_letter", me.write("a-letter-2.jpg", letter_photo(enterprise.uscc, vins[::-1])))
    me.shot("a-11-letter-replaced")
    me.tap("#batch-resubmit-send")
    me.wait_until("resubmitted", lambda: batch_status(me) == "审核中", timeout=30)
    me.shot("a-12-resubmitted")

    # The second round is approved in the console: the sandbox operator registers the cards, the
    # portal shows them
    console_decides(me, batch_id, "approve")
    shows_completed(me, 3)
    assert "补正次数" in me.element("#batch-status").text
    me.shot("a-13-completed")
    go(me, "fleet", "fleet")
    me.wait_until(
        "the batch listed",
        lambda: me.driver.find_elements("css selector", f'.batch[data-batch="{batch_id}"]'),
    )
    assert "已完成" in me.element(f'.batch[data-batch="{batch_id}"]').text
    me.shot("a-14-batches")

    # 实际使用人: the enterprise's vehicles, and the actual user of one card recorded (shown masked)
    go(me, "vehicles", "vehicles")
    vehicle = f'#vehicles-list .vehicle[data-vin="{vins[0]}"]'
    me.wait_until("the registered vehicle", lambda: me.driver.find_elements("css selector", vehicle))
    assert "已登记" in me.element(vehicle).text
    me.shot("a-15-vehicles")
    me.tap(vehicle + " .card-users")
    me.wait_screen("card-users")
    me.fill("#au-name", "钱多多")
    me.fill("#au-id-number", make_resident_id(random.Random()))
    me.fill("#au-phone", "13500135014")
    me.tap("#au-submit")
    me.wait_until(
        "the actual user recorded",
        lambda: me.driver.find_elements("css selector", '.actual-user[data-current="yes"]'),
    )
    shown = me.element("#card-users-history").text
    assert "钱" in shown, shown
    assert "钱多多" not in shown, shown  # masked
    me.shot("a-16-actual-user")

    # 企业注销实名 begins the same way: a registered vehicle typed in, then the licence and letter asked
    go(me, "fleet", "fleet")
    me.tap("#fleet-new-deregistration")
    me.wait_screen("batch")
    at_step(me, "vehicles")
    me.fill("#fleet-vins", vins[0].lower())
    me.tap("#fleet-vins-add")
    added = me.wait_until(
        "the vehicle added", lambda: me.driver.find_elements("css selector", "#batch-rows-added")
    )
    assert "已添加 1 辆车" in added[0].text
    me.tap("#fleet-vehicles-done")
    at_step(me, "documents")
    assert "原实名认证责任人" in me.element('.step[data-step="documents"]').text
    me.shot("a-17-deregistration")
    errors = [e for e in me.console_errors() if "Failed to load resource" not in e]
    assert not errors, errors
