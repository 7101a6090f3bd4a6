"""A card's life around the owner's registration, seen in the H5 client (headless Chromium, the whole
local stack): what the owner reads on the screen after a part swap, a lost operator callback, a
de-registration the operator refuses and then accepts, an expired ID card, a passport, and the
biometric consent asked before any ID photo.

Each test logs in with its own phones (a phone gets one code per resend period) and takes its own
vehicle from the demo inventory; the flows a test leaves open take vehicles from the end of the list.
Screenshots of what the owner saw are kept in the test's tmp dir and in /tmp/h5-lifecycle.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import (
    Phone,
    consent_before_the_photos,
    prove_identity,
    show_possession,
)
from tests.face_photos import CARD_PORTRAIT, FACES
from tests.synthetic_documents import PERSON_ADDRESS

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: Vehicles a test of this module took (another test never takes them again).
_TAKEN: set[str] = set()


@pytest.fixture
def owner(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    if not stack.route_exists("GET", "/h5"):
        pytest.skip("app.py does not serve the H5 client")
    if not stack.sandbox:
        pytest.skip("the stack does not say where its sandbox operator is")
    return Phone(browser, stack, tmp_path, camera)


@pytest.fixture
def operator(stack: Stack) -> Iterator[Stack]:
    """The stack whose sandbox operator a test gives faults to; they are cleared after the test."""
    yield stack
    stack.sandbox_faults(drop_callbacks=False, latency_seconds=0, refuse_deregistrations="")


# --- what the tests share -------------------------------------------------------------------------


def mask_iccid(iccid: str) -> str:
    """The ICCID as the owner's screens show it."""
    return iccid[:6] + "*" * (len(iccid) - 10) + iccid[-4:]


def cards_of(stack: Stack, vin: str) -> list[dict[str, Any]]:
    status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
    assert status == 200, vehicle
    return list(vehicle["cards"])


def take_vehicle(stack: Stack, *, from_end: bool = False) -> str:
    """A demo vehicle whose cards are all unregistered, taken by no other test of this module."""
    candidates = list(stack.seed.get("unregistered_vins") or [])
    if not candidates:
        from chalicelib.local.synthetic import inventory_rows

        registered = set(stack.seed.get("registered_vins", []))
        candidates = [row["vin"] for row in inventory_rows(50, seed=2026) if row["vin"] not in registered]
    for vin in reversed(candidates) if from_end else candidates:
        if vin in _TAKEN:
            continue
        cards = cards_of(stack, vin)
        if cards and all(c["state"] == "unregistered" for c in cards):
            _TAKEN.add(vin)
            return str(vin)
    raise AssertionError(f"no unregistered vehicle left in the demo inventory ({stack.seed})")


def last_json(out: str) -> dict[str, Any]:
    """The last JSON document a command printed (the metrics it emits come first, one a line)."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while (at := out.find("{", at)) >= 0:
        doc, end = decoder.raw_decode(out, at)
        docs.append(doc)
        at = end
    assert docs, out
    assert isinstance(docs[-1], dict), out
    return dict(docs[-1])


#: Where the screenshots of the last run are also kept (the test's tmp dir is rotated away).
SCREENSHOTS = Path("/tmp/h5-lifecycle")


def shot(me: Phone, name: str) -> None:
    """What the owner sees now, as ``name``.png in the test's tmp dir and in SCREENSHOTS."""
    me.driver.save_screenshot(str(me.files / f"{name}.png"))
    SCREENSHOTS.mkdir(exist_ok=True)
    me.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def text(me: Phone, css: str) -> str:
    return str(me.element(css).text)


def log_in(me: Phone, phone: str) -> None:
    me.open()
    me.wait_screen("login")
    me.fill("#login-phone", phone)
    code = me.sms_code(phone, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-agree")  # 已阅读并同意《用户协议》《隐私政策》
    me.tap("#login-submit")
    me.wait_screen("home")


def verify_phone(me: Phone, phone: str) -> None:
    me.wait_screen("verify_phone")
    me.fill("#owner-phone", phone)
    code = me.sms_code(phone, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")


def start_registration(me: Phone, vin: str, phone: str) -> None:
    """From home to the identity step: VIN, vehicle confirmed, phone verified, possession shown."""
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    verify_phone(me, phone)
    show_possession(me, vin)


def agree_and_submit(me: Phone) -> None:
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


def result(me: Phone) -> str:
    return str(me._js("return document.querySelector('section[data-screen=result]').dataset.result || ''"))


def settled(me: Phone, timeout: float = 60.0) -> str:
    """The result screen's outcome once the operator's answer is in."""
    return str(
        me.wait_until("the operator's answer", lambda: (r := result(me)) and r != "pending" and r, timeout)
    )


def register_car(me: Phone, vin: str, phone: str) -> None:
    """The owner's whole registration in the client, up to the result screen (answered or not)."""
    start_registration(me, vin, phone)
    prove_identity(me, camera=False)
    agree_and_submit(me)


def my_vehicles(me: Phone, *, showing: str) -> str:
    """我的车辆 (from the home screen), once it shows ``showing``; its text."""
    if me.screen() != "vehicles":
        me.tap("#result-vehicles" if me.screen() == "result" else "#home-vehicles")
    me.wait_screen("vehicles")

    def shown() -> str | None:
        listed = text(me, "#vehicle-list")
        return listed if showing in listed else None

    return str(me.wait_until(f"my vehicles to show {showing}", shown))


def deregister(me: Phone, vin: str, phone: str) -> None:
    """From 我的车辆: 注销实名 of the (only) vehicle, the phone given at registration, the same person."""
    me.tap("#vehicle-list .deregister")
    me.wait_screen("deregister_vehicle")  # the car picked is confirmed, its VIN never typed
    assert vin[-6:] in text(me, "#deregister-card")
    me.tap("#deregister-start")
    verify_phone(me, phone)
    prove_identity(me, camera=False)
    me.wait_screen("submit")
    assert "确认注销" in text(me, "#submit-button")
    me.tap("#submit-button")
    me.wait_screen("result")


def up_to_the_id_photos(me: Phone, phone_login: str, phone_owner: str) -> str:
    """A registration left open by the test: logged in, at the identity step of a vehicle of its own."""
    vin = take_vehicle(me.stack, from_end=True)
    log_in(me, phone_login)
    start_registration(me, vin, phone_owner)
    me.wait_screen("documents")  # the ID card is photographed first, then its reading confirmed
    return vin


# --- 1. part swap ---------------------------------------------------------------------------------


def test_after_a_swap_the_owners_result_and_my_vehicles_name_the_fitted_card_never_the_retired_one(
    owner: Phone, stack: Stack
) -> None:
    me = owner
    vin = take_vehicle(stack)
    donor = take_vehicle(stack, from_end=True)
    old = cards_of(stack, vin)[0]["iccid"]
    new = cards_of(stack, donor)[0]["iccid"]
    assert old[-4:] != new[-4:]
    # Given the part holding the vehicle's card was replaced by the OEM (更换零部件)
    status, swapped = stack.call(
        "POST", f"/v1/admin/vehicles/{vin}/swap", {"old_iccid": old, "new_iccid": new}, stack.admin_token
    )
    assert status == 200, swapped
    assert swapped["old"]["retired"] == "swapped_out"

    # When the owner registers the vehicle in the client
    log_in(me, "13600136041")
    register_car(me, vin, "13500135041")

    # Then the result names the fitted card, registered, and never the retired one
    assert settled(me) == "registered", me.messages()
    assert "实名登记成功" in text(me, "#result-text")
    shown = text(me, "#result-card")
    assert mask_iccid(new) in shown
    assert old[-4:] not in shown
    shot(me, "swap-result")
    # And 我的车辆 shows the fitted card registered, the retired one nowhere
    vehicles = my_vehicles(me, showing="已登记")
    assert mask_iccid(new) in vehicles
    assert old[-4:] not in vehicles
    assert "实名登记成功" in vehicles
    shot(me, "swap-vehicles")
    # (and the OEM's view agrees: the retired card stays on the VIN unregistered)
    states = {c["iccid"]: c["state"] for c in cards_of(stack, vin)}
    assert (states.get(old), states[new]) in (("unregistered", "registered"), (None, "registered"))


# --- 4. a lost callback ----------------------------------------------------------------------------


def test_a_lost_callback_tells_the_owner_what_happens_next_and_the_reconciliation_registers_the_card(
    owner: Phone, operator: Stack
) -> None:
    me = owner
    vin = take_vehicle(operator)
    log_in(me, "13600136004")
    start_registration(me, vin, "13500135004")
    prove_identity(me, camera=False)
    # Given an operator that decides but whose callback never reaches the platform
    operator.sandbox_faults(drop_callbacks=True)
    agree_and_submit(me)
    submitted = time.monotonic()

    # Then the owner is told the registration waits for the operator, and what comes next
    me.wait_until("the waiting result", lambda: result(me) == "pending")
    assert "等待电信企业确认" in text(me, "#result-text")
    # (the view's ``next``: waiting_operator, the answer comes within minutes and by SMS)
    assert "结果通常在几分钟内返回" in text(me, "#result-reason")
    assert "短信通知" in text(me, "#result-reason")
    shot(me, "lost-callback-waiting")
    # And nothing moves while the answer is lost: the page keeps asking and keeps waiting
    stale_after = 61.0  # the reconciliation below asks about pushes older than a minute
    me.wait_until(
        "the push to be a minute old", lambda: time.monotonic() - submitted > stale_after, stale_after + 15
    )
    assert result(me) == "pending", me.messages()
    assert "等待电信企业确认" in text(me, "#result-text")
    # (now late: the view's ``next`` is checking_with_operator, and the owner has nothing to redo)
    me.wait_until(
        "the checking-with-the-operator wording",
        lambda: "平台正在向电信企业查询办理结果" in text(me, "#result-reason"),
    )
    assert "无需重新办理" in text(me, "#result-reason")
    shot(me, "lost-callback-checking")

    # When the scheduled reconciliation runs (as the hourly job does), asking the operator the status
    out = operator.cheka("outbox", "reconcile", extra_env={"CHEKA_PUSH_STALE_MINUTES": "1"})
    report = last_json(out)
    assert report["applied"] >= 1, report

    # Then the page, still asking, shows the registration done
    assert settled(me) == "registered", me.messages()
    assert "实名登记成功" in text(me, "#result-text")
    shot(me, "lost-callback-settled")
    # And so does a fresh load (the finished registration is no longer resumed): 我的车辆
    me.driver.refresh()
    me.wait_until("the page after the reload", lambda: me.screen() in ("home", "result"))
    vehicles = my_vehicles(me, showing="实名登记成功")
    assert "已登记" in vehicles
    assert "办理中" not in vehicles
    shot(me, "lost-callback-vehicles")
    assert all(c["state"] == "registered" for c in cards_of(operator, vin))


# --- 5. de-registration ----------------------------------------------------------------------------


def test_a_deregistration_waits_for_the_operator_shows_its_refusal_then_its_acceptance(
    owner: Phone, operator: Stack
) -> None:
    me = owner
    vin = take_vehicle(operator)
    login, phone = "13600136005", "13500135005"
    log_in(me, login)
    register_car(me, vin, phone)
    assert settled(me) == "registered", me.messages()
    my_vehicles(me, showing="实名登记成功")

    # Given an operator that refuses the de-registration (and answers a few seconds late)
    operator.sandbox_faults(refuse_deregistrations="outstanding_balance", latency_seconds=4)
    # When the owner de-registers the car
    deregister(me, vin, phone)
    # Then the screen waits for the operator
    assert "等待电信企业确认" in text(me, "#result-text")
    assert "实名注销成功" not in text(me, "#result-text")
    shot(me, "deregistration-waiting")
    # And shows the refusal with the operator's reason
    assert settled(me) == "rejected", me.messages()
    assert "实名注销未通过" in text(me, "#result-text")
    assert "该卡存在未结清费用" in text(me, "#result-reason")
    shot(me, "deregistration-refused")
    # And 我的车辆 says the registration still holds, the card registered
    vehicles = my_vehicles(me, showing="实名注销未通过")
    assert "该卡存在未结清费用" in vehicles
    assert "实名登记仍然有效" in vehicles
    assert "已登记" in vehicles

    # When the owner de-registers again and the operator accepts
    operator.sandbox_faults(refuse_deregistrations="", latency_seconds=4)
    deregister(me, vin, phone)
    assert "等待电信企业确认" in text(me, "#result-text")
    assert settled(me) == "deregistered", me.messages()
    assert "实名注销成功" in text(me, "#result-text")
    shot(me, "deregistration-accepted")
    # Then 我的车辆 shows the card's true state: unregistered, not the old 实名登记成功
    vehicles = my_vehicles(me, showing="未登记")
    assert "实名登记成功" not in vehicles
    assert "已注销实名" in vehicles
    assert "实名注销未通过" not in vehicles
    assert not me.driver.find_elements("css selector", "#vehicle-list .deregister")
    shot(me, "deregistration-vehicles")


# --- 6. ID validity and every ID type -------------------------------------------------------------


def test_an_expired_id_card_is_refused_under_the_back_photo_with_the_expired_message(owner: Phone) -> None:
    from tests.synthetic_documents import id_back, id_front

    me = owner
    up_to_the_id_photos(me, "13600136061", "13500135061")
    consent_before_the_photos(me)
    front = me.write("id_front.jpg", id_front(portrait=FACES / CARD_PORTRAIT, fmt="JPEG"))
    me.choose_files("#doc-id_front-camera", front)
    state = me.wait_until("the front to be read", functools.partial(me.photo_read, "id_front"), 45)
    assert state == "done", me.messages()

    # When the back's validity ended in 2020
    expired = me.write(
        "id_back_expired.jpg", id_back(valid_from=date(2000, 1, 1), valid_until=date(2020, 1, 1), fmt="JPEG")
    )
    me.choose_files("#doc-id_back-camera", expired)
    state = me.wait_until("the back to be read", functools.partial(me.photo_read, "id_back"), 45)
    # Then the back's photo is refused with the expired message, under that photo: use a valid card
    assert state == "failed", me.messages()
    assert "已过有效期" in text(me, "#doc-id_back .doc-status")
    assert "有效期内的身份证" in text(me, "#doc-id_back .doc-status")
    assert "重新拍摄" not in text(me, "#doc-id_back .doc-status")
    assert "已过有效期" not in text(me, "#doc-id_front .doc-status")
    # And the person cannot go on: there is nothing to confirm yet
    assert not me.element("#confirm-form").is_displayed()
    shot(me, "id-expired")

    # When a card in its validity is photographed, the step lets them on
    me.choose_files("#doc-id_back-camera", me.write("id_back.jpg", id_back(fmt="JPEG")))
    state = me.wait_until("the valid back to be read", functools.partial(me.photo_read, "id_back"), 45)
    assert state == "done", me.messages()
    me.wait_until("the form to confirm", lambda: me.element("#confirm-form").is_displayed())


def test_a_passport_holder_chooses_the_passport_and_is_told_a_reviewer_reads_it(
    owner: Phone, stack: Stack
) -> None:
    from selenium.webdriver.support.ui import Select

    from tests.integration.test_identity_documents import PASSPORT_NAME, PASSPORT_NUMBER, passport_page

    me = owner
    reviewer = stack.cheka(
        "token", "issue", "--subject", "e2e-reviewer", "--role", "reviewer", "--ttl", "3600"
    )
    reviewer = reviewer.strip()

    def open_cases() -> set[str]:
        status, queue = stack.call("GET", "/v1/review-cases?status=open&limit=100", token=reviewer)
        assert status == 200, queue
        return {str(c["case_id"]) for c in queue["cases"]}

    before = open_cases()
    up_to_the_id_photos(me, "13600136062", "13500135062")
    # When the holder has no resident ID card, the typed form is there for other documents
    me.tap("#documents-other-id")
    me.wait_screen("identity")
    # When the holder chooses 护照 among the ID types offered
    offered = [o.text for o in Select(me.element("#id-type")).options]
    assert {"居民身份证", "护照", "外国人永久居留身份证"} <= set(offered), offered
    Select(me.element("#id-type")).select_by_visible_text("护照")
    # Then they are told a reviewer checks these documents
    me.wait_until("the review hint", lambda: me.element("#id-type-review").is_displayed())
    assert "人工审核" in text(me, "#id-type-review")
    me.fill("#id-number", PASSPORT_NUMBER)
    me.fill("#id-name", PASSPORT_NAME)
    me.fill("#id-address", PERSON_ADDRESS)
    me.tap("#identity-submit")
    me.wait_screen("documents")
    consent_before_the_photos(me)

    # When the passport's data page is photographed
    me.choose_files("#doc-id_front-album", me.write("passport.jpg", passport_page(FACES / CARD_PORTRAIT)))
    # Then the registration shows the manual review, saying why
    me.wait_screen("review", timeout=60)
    shown = text(me, 'section[data-screen="review"]')
    assert "人工审核" in shown
    assert "护照" in shown
    shot(me, "passport-review")
    # And a review case of a document OCR does not read is open for the reviewer
    opened = open_cases() - before
    assert len(opened) == 1, opened
    status, case = stack.call(
        "GET", f"/v1/review-cases/{opened.pop()}?reason=review-passport", token=reviewer
    )
    assert status == 200, case
    assert case["case"]["reason"] == "document_not_machine_readable"
    assert (case["flow"]["identity"]["id_type"], case["flow"]["identity"]["id_number"]) == (
        "passport",
        PASSPORT_NUMBER,
    )


# --- 10. the biometric consent before the ID photos -----------------------------------------------


def test_the_biometric_consent_names_the_face_provider_before_the_id_photos_and_refusing_keeps_them_shut(
    owner: Phone,
) -> None:
    me = owner
    up_to_the_id_photos(me, "13600136010", "13500135010")
    me.wait_until(
        "the documents screen",
        lambda: me._js("return document.querySelector('section[data-screen=documents]').dataset.ready"),
    )

    # Then before any ID photo, the biometric consent is asked on its own, the photos closed
    assert me.element("#docs-consent").is_displayed()
    assert not me.element("#docs-photos").is_displayed()
    consent = text(me, "#docs-consent")
    # And it names who runs the face engine and the comparison with the ID's portrait
    assert "人脸识别服务的提供方：dlib 开源人脸识别算法" in consent, consent
    assert "身份核验服务的提供方" in consent
    assert "证件人像" in consent
    assert "比对" in consent
    assert "您可以拒绝本同意" in consent
    shot(me, "biometric-consent")

    # When the person does not agree (ticks, then unticks), the photos stay closed
    assert not me.element("#docs-consent-submit").is_enabled()
    me.element("#docs-consent-check").click()
    assert me.element("#docs-consent-submit").is_enabled()
    me.element("#docs-consent-check").click()
    assert not me.element("#docs-consent-submit").is_enabled()
    assert not me.element("#docs-photos").is_displayed()
    # And coming back later, the consent is asked again: nothing was recorded
    me.driver.refresh()
    me.wait_screen("documents")
    me.wait_until(
        "the documents screen again",
        lambda: me._js("return document.querySelector('section[data-screen=documents]').dataset.ready"),
    )
    assert me.element("#docs-consent").is_displayed()
    assert not me.element("#docs-photos").is_displayed()
    shot(me, "biometric-consent-refused")

    # When they agree, the ID photos open
    me.element("#docs-consent-check").click()
    me.tap("#docs-consent-submit")
    me.wait_until("the photos", lambda: me.element("#docs-photos").is_displayed())
    assert not me.element("#docs-consent").is_displayed()
