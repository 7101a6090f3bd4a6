"""Uploads for weak networks and a manual review that is not a dead end, in the browser.

A phone on a slow network photographs the 行驶证: the photo (a large phone photo, taken sideways with
its EXIF orientation) is scaled and compressed in the page before it goes up, a progress bar counts the
percentage, the upload can be cancelled; the network drops mid-upload and the page says so and goes on
by itself when it is back. A passport holder's case goes to a reviewer: the screen shows the case number,
the expected time and the SMS promise, refreshes, and moves on by itself when the reviewer has decided,
and the SMS reaches the phone.

Screenshots: ``<tmp dir>/screenshots/*.png`` (pytest keeps the last runs under
``/tmp/pytest-of-$USER/pytest-current/``).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_lifecycle import log_in, take_vehicle, text, verify_phone
from tests.e2e.test_h5_registration import CARD_PORTRAIT, Phone, consent_before_the_photos
from tests.face_photos import FACES
from tests.synthetic_documents import PERSON_ADDRESS, vehicle_licence

#: What the throttled phone's network can send and receive (bytes per second).
SLOW = {"offline": False, "latency": 150, "downloadThroughput": 400 * 1024, "uploadThroughput": 60 * 1024}
OFFLINE = {**SLOW, "offline": True}
CASE_NUMBER = re.compile(r"SH\d{8}-[0-9A-HJKMNP-TV-Z]{8}")


@pytest.fixture
def me(browser: Any, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    if not stack.route_exists("GET", "/h5"):
        pytest.skip("app.py does not serve the H5 client")
    return Phone(browser, stack, tmp_path, camera)


def network(me: Phone, conditions: dict[str, Any] | None) -> None:
    """The phone's network as Chrome emulates it (None: as fast as the machine)."""
    me.driver.execute_cdp_cmd("Network.enable", {})
    fast = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    me.driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions or fast)


def phone_photo_of(document: bytes) -> bytes:
    """The document as a phone's camera hands it over: 3200×2400 with the desk around it, the pixels
    stored sideways with EXIF orientation 6 (rotate to display), a high-quality JPEG of some MB."""
    from PIL import Image

    card = Image.open(io.BytesIO(document)).convert("RGB")
    desk = Image.merge(
        "RGB", [Image.effect_noise((3200, 2400), 40).point(lambda v, c=c: v // 2 + c) for c in (90, 70, 50)]
    )
    scaled = card.resize((card.width * 5 // 2, card.height * 5 // 2), Image.Resampling.LANCZOS)
    desk.paste(scaled, ((3200 - scaled.width) // 2, (2400 - scaled.height) // 2))
    sideways = desk.rotate(90, expand=True)  # what the sensor stored when the phone was held upright
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def percent(me: Phone) -> int | None:
    """The percentage the upload sheet shows, while it is shown."""
    if not me.element("#upload").is_displayed():
        return None
    found = re.fullmatch(r"(\d+)%", me.element("#upload-percent").text.strip())
    return int(found.group(1)) if found else None


def stored_licences(stack: Stack) -> list[dict[str, Any]]:
    """The 行驶证 photos the server stored (the embedded S3), newest first."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.moto,
        region_name="cn-north-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="cheka-local-documents", Prefix="documents/"
    ):
        found += [o for o in page.get("Contents", []) if "/vehicle_licence/" in o["Key"]]
    return sorted(found, key=lambda o: o["LastModified"], reverse=True)


def stored_size(stack: Stack, key: str) -> tuple[int, int]:
    import boto3
    from PIL import Image

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.moto,
        region_name="cn-north-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    body = s3.get_object(Bucket="cheka-local-documents", Key=key)["Body"].read()
    with Image.open(io.BytesIO(body)) as image:
        return image.size


def test_a_photo_goes_up_compressed_on_a_slow_network_with_progress_cancel_and_resume(
    me: Phone, stack: Stack
) -> None:
    vin = take_vehicle(stack, from_end=True)
    photo = me.write("licence-phone.jpg", phone_photo_of(vehicle_licence(vin=vin)))
    before = {o["Key"] for o in stored_licences(stack)}
    log_in(me, "13600136071")
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    verify_phone(me, "13500135071")
    me.wait_screen("possession")
    try:
        # Given a slow network, when the owner chooses a large phone photo of the 行驶证
        network(me, SLOW)
        me.choose_files("#licence-album", photo)
        # Then a progress bar counts the percentage as the photo goes up
        shown = me.wait_until(
            "the upload's progress", lambda: (p := percent(me)) is not None and 0 < p < 100 and p, 60
        )
        assert "行驶证" in text(me, "#upload-label")
        kb = int(re.search(r"(\d+) KB", text(me, "#upload-label")).group(1))  # type: ignore[union-attr]
        # (what goes up is the compressed photo, not the file chosen)
        assert kb * 1024 < photo.stat().st_size / 2, (kb, photo.stat().st_size)
        me.shot("upload-progress")
        # When they cancel it
        me.tap("#upload-cancel")
        # Then the sheet goes, the photo is not stored, and they may choose it again
        me.wait_until("the sheet to go", lambda: not me.element("#upload").is_displayed())
        assert "已取消上传" in text(me, "#doc-vehicle_licence .doc-status")
        assert me.screen() == "possession"
        me.shot("upload-cancelled")
        assert {o["Key"] for o in stored_licences(stack)} == before
        assert shown

        # When they choose it again and the network drops mid-upload
        me.choose_files("#licence-album", photo)
        me.wait_until("the upload to start", lambda: (p := percent(me)) is not None and p > 0, 60)
        network(me, OFFLINE)
        # Then the page says it will go on by itself when the network is back
        me.wait_until("the dropped connection to be told", lambda: "网络中断" in text(me, "#upload-note"), 30)
        assert "恢复后将自动继续上传" in text(me, "#upload-note")
        me.shot("upload-offline")
        time.sleep(2)
        assert me.element("#upload").is_displayed()
        # When the network is back, the upload goes on and the photo is read without a tap
        network(me, SLOW)
        me.wait_until("the possession shown", lambda: me.screen() != "possession", 120)
    finally:
        network(me, None)
    me.shot("upload-done")
    # And the server stored a photo smaller than the one chosen, upright, at most 1600 px long
    new = [o for o in stored_licences(stack) if o["Key"] not in before]
    assert len(new) == 1, new
    assert new[0]["Size"] < photo.stat().st_size / 2, (new[0]["Size"], photo.stat().st_size)
    width, height = stored_size(stack, new[0]["Key"])
    assert max(width, height) <= 1600, (width, height)
    assert width > height, "the EXIF orientation was honoured: the 行驶证 lies landscape"


def test_a_review_case_shows_its_number_time_and_sms_promise_refreshes_and_moves_on_when_decided(
    me: Phone, stack: Stack
) -> None:
    from selenium.webdriver.support.ui import Select

    from tests.integration.test_identity_documents import PASSPORT_NAME, PASSPORT_NUMBER, passport_page

    owner_phone = "13500135072"
    masked = owner_phone[:3] + "****" + owner_phone[-4:]
    reviewer = stack.cheka(
        "token", "issue", "--subject", "e2e-reviewer-d", "--role", "reviewer", "--ttl", "3600"
    )
    vin = take_vehicle(stack, from_end=True)
    log_in(me, "13600136072")
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    verify_phone(me, owner_phone)
    me.wait_screen("possession")
    me.choose_files("#licence-album", me.write("licence.png", vehicle_licence(vin=vin)))
    # Given a passport holder, whose passport a reviewer reads (OCR reads the resident ID card only)
    if me.wait_screen("identity", "documents", timeout=90) == "documents":
        me.wait_until(
            "the documents screen",
            lambda: me._js("return document.querySelector('section[data-screen=documents]').dataset.ready"),
        )
        me.tap("#documents-other-id")
        me.wait_screen("identity")
    Select(me.element("#id-type")).select_by_visible_text("护照")
    me.fill("#id-number", PASSPORT_NUMBER)
    me.fill("#id-name", PASSPORT_NAME)
    me.fill("#id-address", PERSON_ADDRESS)
    me.tap("#identity-submit")
    me.wait_screen("documents")
    consent_before_the_photos(me)
    me.choose_files("#doc-id_front-album", me.write("passport.jpg", passport_page(FACES / CARD_PORTRAIT)))
    # Then the review screen shows the case number, the expected time and the SMS promise
    me.wait_screen("review", timeout=60)
    me.wait_until("the case number", lambda: CASE_NUMBER.fullmatch(text(me, "#review-number")))
    number = text(me, "#review-number")
    assert text(me, "#review-expected") == "1 个工作日内"
    assert text(me, "#review-status") == "审核中"
    assert "护照" in text(me, "#review-reason")
    assert "短信" in text(me, "#review-sms")
    assert masked in text(me, "#review-sms")
    first = me.wait_until("the time of the last look", lambda: text(me, "#review-updated"))
    assert re.fullmatch(r"最后更新 \d{1,2}:\d{2}:\d{2}", first), first
    me.shot("review-case")
    # When the owner taps 刷新 a second later, the status is read again and the time says so
    time.sleep(1.2)
    me.tap("#review-refresh")
    me.wait_until("a refreshed time", lambda: text(me, "#review-updated") not in ("", first))
    assert "已刷新" in text(me, "#review-updated")
    me.shot("review-refreshed")

    # When the reviewer approves the passport (the reviewers' API)
    status, queue = stack.call("GET", "/v1/review-cases?status=open&limit=100", token=reviewer.strip())
    assert status == 200, queue
    (case,) = [c for c in queue["cases"] if c["case_number"] == number]
    status, decided = stack.call(
        "POST", f"/v1/review-cases/{case['case_id']}/decision", {"decision": "approve"}, reviewer.strip()
    )
    assert (status, decided["status"]) == (200, "approved"), decided
    # Then the owner's phone gets the SMS with the case number and what to do next
    status, drop = stack.call("GET", "/v1/dev/sms-drop?limit=20", token=stack.admin_token)
    assert status == 200, drop
    texts = [m["text"] for m in drop["messages"] if m["phone"] == masked and number in m["text"]]
    assert texts, drop["messages"][:3]
    assert "已通过人工审核" in texts[0]
    assert "人脸检测" in texts[0]
    # And the screen moves on by itself to the face check, saying the review passed
    me.wait_screen("face", timeout=45)
    assert "人工审核已通过" in text(me, "#notice")
    me.shot("review-approved")
