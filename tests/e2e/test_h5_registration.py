"""The H5 client in headless Chromium against the whole local stack: a registration and a de-registration.

A person logs in with the code the dev SMS drop shows, enters a VIN from the demo inventory,
confirms the vehicle, verifies a phone, types the synthetic identity, photographs a synthetic ID card
carrying a real face (file inputs take the files as a phone's camera would hand them over), passes the
head-turn challenge in front of the camera (Chromium's fake camera plays a video warped from another
photo of the same man), agrees to the texts, submits, and sees the sandbox operator's answer on the
result page. Then they de-register the car, this time choosing the head-turn photos in the file picker.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import Stack
from tests.face_photos import FACES
from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME, vehicle_licence

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from chalicelib.verification.domain.liveness import LivenessDirection

H5_DIR = Path(__file__).resolve().parents[2] / "chalicelib" / "web" / "h5"
#: The card's portrait and the live person: two different photos of the same man.
CARD_PORTRAIT = "obama_video_1080p.jpg"
LIVE_PERSON = "obama_1.jpg"
#: Three phones: a phone gets one code a minute, and the run takes less than that.
LOGIN_PHONE = "13800138000"
OWNER_PHONE = "13900139000"
OTHER_PHONE = "13700137000"
RESULT_SCREENSHOT = Path("/tmp/h5-result.png")
VEHICLES_SCREENSHOT = Path("/tmp/h5-vehicles.png")


# --- the client's files, served by the blueprint ---------------------------------------------------


def test_the_client_is_served_under_h5(api: Any) -> None:
    # (app.py's own routes: a blueprint registers correctly in one Chalice app per process only)
    client = api
    # Given the client's page, script and style sheet
    page = client.http.get("/h5")
    script = client.http.get("/h5/app.js")
    style = client.http.get("/h5/style.css")
    # Then each is served with its type, and nothing else is
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "车联网卡实名登记" in page.body.decode()
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert style.status_code == 200
    assert style.headers["Content-Type"].startswith("text/css")
    # And the page's files resolve next to it, with or without the slash
    assert '<base href="/h5/">' in client.http.get("/h5/").body.decode()
    for name in ("..%2Fapi%2Fh5.py", "missing.js", "index.htm"):
        missing = client.http.get(f"/h5/{name}")
        assert missing.status_code == 404
        assert missing.json_body["code"] == "h5.not_found"


def test_the_page_finds_its_files_wherever_it_is_mounted() -> None:
    from chalicelib.api import h5

    # Given the page behind API Gateway's stage, then its base is that stage's /h5/
    assert '<base href="/api/h5/">' in str(h5.page("/api/h5").body)
    assert '<base href="/api/h5/">' in str(h5.page("/api/h5/").body)
    # And a path that is not a mount point changes nothing
    assert '<base href="/h5/">' in str(h5.page('/h5"><script>x</script>').body)
    assert '<base href="/h5/">' in str(h5.page(None).body)


def test_the_client_fetches_nothing_from_elsewhere() -> None:
    # Given every file of the client, then none names another site (no CDN, no fonts, no analytics)
    for path in sorted(H5_DIR.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name


# --- the browser -------------------------------------------------------------------------------------


class Phone:
    """The H5 client in the browser, used the way a person would: typing, tapping, choosing files."""

    def __init__(self, driver: WebDriver, stack: Stack, files: Path, camera: Path) -> None:
        self.driver = driver
        self.stack = stack
        self.files = files
        self.camera = camera

    def open(self) -> None:
        self.driver.get(self.stack.api + "/h5")

    def shot(self, name: str) -> Path:
        """A screenshot of the phone's screen, saved as ``<tmp dir>/screenshots/<name>.png`` for a person
        to look at (pytest keeps the last runs' tmp dirs: ``/tmp/pytest-of-$USER/pytest-current/``)."""
        folder = self.files / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def screen(self) -> str:
        return str(self.driver.execute_script("return document.body.dataset.screen || ''"))

    def _js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def messages(self) -> str:
        """What the page shows as errors and notices right now (for failure messages)."""
        shown = self._js(
            "return Array.from(document.querySelectorAll('.error, .field-error, .notice, .doc-status,"
            " .face-result, #face-instruction, #result-text, #result-reason'))"
            ".filter(e => e.offsetParent !== null && e.textContent.trim()).map(e => e.textContent.trim())"
        )
        return " | ".join(shown)

    def errors(self) -> list[str]:
        """The refusals shown on the current screen (under fields or for the whole step)."""
        shown = self._js(
            "return Array.from(document.querySelectorAll("
            "'section:not([hidden]) .error, section:not([hidden]) .field-error'))"
            ".filter(e => !e.hidden && e.textContent.trim()).map(e => e.textContent.trim())"
        )
        return [str(text) for text in shown]

    def console_errors(self) -> list[str]:
        try:
            entries = getattr(self.driver, "get_log")("browser")  # noqa: B009 - Chrome's driver only
        except Exception:  # not every driver keeps the console
            return []
        return [str(e.get("message")) for e in entries if e.get("level") == "SEVERE"]

    def csp_violations(self) -> list[str]:
        """What the page's Content-Security-Policy refused since the console was last read."""
        return [e for e in self.console_errors() if "Content Security Policy" in e]

    def wait_until(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            try:
                got = check()
            except StaleElementReferenceException:  # the page re-rendered between finding and reading
                got = None
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {timeout:.0f}s for {what}; screen {self.screen()!r} shows: {self.messages()}"
                    f"; console: {self.console_errors()}"
                )
            time.sleep(0.2)

    def wait_screen(self, *names: str, timeout: float = 30.0) -> str:
        return str(
            self.wait_until(
                f"screen {' or '.join(names)}",
                lambda: self.screen() if self.screen() in names else None,
                timeout,
            )
        )

    def element(self, css: str) -> WebElement:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def fill(self, css: str, text: str) -> None:
        field = self.element(css)
        field.clear()
        field.send_keys(text)

    def tap(self, css: str, timeout: float = 15.0) -> None:
        def ready() -> WebElement | None:
            el = self.element(css)
            return el if el.is_displayed() and el.is_enabled() else None

        self.wait_until(f"{css} to be tappable", ready, timeout).click()

    def choose_files(self, css: str, *paths: Path) -> None:
        """What the file input hands over after the camera or the album (several for ``multiple``)."""
        self.element(css).send_keys("\n".join(str(p) for p in paths))

    def photo_read(self, kind: str) -> str | None:
        """``done`` or ``failed`` once an ID card photo is through upload, checks and OCR."""
        state = self._js("return document.getElementById(arguments[0]).dataset.state", f"doc-{kind}")
        return str(state) if state in ("done", "failed") else None

    def head_unit_code(self, vin: str, send: Callable[[], None]) -> str:
        """Tap "发送到车机", then read the code the sandbox telematics showed on the car's head unit."""

        def newest() -> dict[str, Any] | None:
            status, doc = self.stack.call("GET", f"/v1/dev/head-unit/{vin}")
            assert status == 200, (status, doc)
            return doc["messages"][0] if doc["messages"] else None

        before = newest()
        send()
        shown = self.wait_until(
            "a code on the head unit", lambda: (m := newest()) is not None and m != before and m
        )
        return str(shown["code"])

    def write(self, name: str, data: bytes) -> Path:
        path = self.files / name
        path.write_bytes(data)
        return path

    def sms_code(self, phone: str, send: Callable[[], None]) -> str:
        """Tap "获取验证码", then read the code from the dev SMS drop, as a developer would."""
        masked = phone[:3] + "****" + phone[-4:]

        def to_phone() -> list[dict[str, Any]]:
            status, doc = self.stack.call("GET", "/v1/dev/sms-drop?limit=100")
            if status in (401, 403):
                status, doc = self.stack.call(
                    "GET", "/v1/dev/sms-drop?limit=100", token=self.stack.admin_token
                )
            assert status == 200, (status, doc)
            return [m for m in doc["messages"] if m.get("phone") == masked]

        def new_messages() -> list[dict[str, Any]] | None:
            now = to_phone()
            return now if len(now) > before else None

        before = len(to_phone())
        send()
        sent = self.wait_until(f"an SMS to {masked}", new_messages)
        latest = max(sent, key=lambda m: m.get("sent_at") or 0)
        found = re.search(r"验证码\s*(\d{4,8})", latest["text"])
        assert found, latest["text"]
        return found.group(1)


@pytest.fixture
def phone(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    missing = [
        f"{method} {path}"
        for method, path, body in (
            ("POST", "/v1/auth/sms-codes", {}),
            ("POST", "/v1/auth/login", {}),
            ("GET", "/v1/dev/sms-drop", None),
            ("POST", "/v1/me/registrations", {}),
            ("GET", "/v1/me/registrations/r0", None),
            ("POST", "/v1/me/registrations/r0/confirm-vehicle", {}),
            ("POST", "/v1/me/registrations/r0/phone", {}),
            ("POST", "/v1/me/registrations/r0/consents", {}),
            ("POST", "/v1/me/registrations/r0/submit", {}),
            ("GET", "/v1/consents", None),
            ("GET", "/v1/me/vehicles", None),
            ("POST", "/v1/me/deregistrations", {}),
            ("POST", "/v1/me/deregistrations/r0/phone", {}),
            ("POST", "/v1/me/deregistrations/r0/submit", {}),
        )
        if not stack.route_exists(method, path, body)
    ]
    if missing:
        pytest.skip("the API the client drives is not all there yet: " + ", ".join(missing))
    if not stack.route_exists("GET", "/h5"):
        pytest.skip("app.py does not serve the H5 client yet: register chalicelib.api.h5.bp")
    return Phone(browser, stack, tmp_path, camera)


def show_possession(me: Phone, vin: str, *, licence: bool = False) -> None:
    """The possession step: the code the car's head unit shows, or a photo of the 行驶证 read by OCR."""
    me.wait_screen("possession")
    if licence:
        me.choose_files("#licence-album", me.write("licence.png", vehicle_licence(vin=vin)))
    else:
        code = me.head_unit_code(vin, lambda: me.tap("#head-unit-send"))
        me.fill("#head-unit-code", code)
        me.tap("#head-unit-submit")
    me.wait_until("possession shown", lambda: me.screen() != "possession", timeout=90)


def unregistered_vin(stack: Stack) -> str:
    """A demo vehicle whose cards are all unregistered (checked through the admin API)."""
    candidates = list(stack.seed.get("unregistered_vins") or [])
    if not candidates:
        from chalicelib.local.synthetic import inventory_rows

        registered = set(stack.seed.get("registered_vins", []))
        candidates = [row["vin"] for row in inventory_rows(50, seed=2026) if row["vin"] not in registered]
    for vin in candidates:
        status, vehicle = stack.call("GET", f"/v1/vehicles/{vin}", token=stack.admin_token)
        if status == 200 and vehicle["cards"] and all(c["state"] == "unregistered" for c in vehicle["cards"]):
            return str(vin)
    raise AssertionError(f"no unregistered vehicle in the demo inventory (seed output: {stack.seed})")


#: What the person is asked, per challenge direction.
PROMPTS = {"left": "请向右转头", "right": "请向左转头", "up": "请抬头", "down": "请低头"}
#: The fake camera's video (Chromium plays an MJPEG file at 30 frames a second, over and over): the
#: person lined up in the face oval, facing the camera for FACING seconds, turning by TURN_DEGREES
#: over TURNING seconds, holding it for HOLD, turning back; again and again. The client starts the
#: challenge once the server sees the face in the oval, facing it and still, and judges the turn as
#: it happens, so whenever that is, a turn follows within one cycle.
VIDEO_FPS = 30
FACING, TURNING, HOLD, TURN_DEGREES = 3.0, 1.5, 1.0, 30.0


def head_turn_video(
    turn: LivenessDirection,
    *,
    wall_seconds: float = 0.0,
    turning: bool = True,
    seconds: float = 13.0,
    person: str = LIVE_PERSON,
) -> bytes:
    """MJPEG of the live person in the oval turning toward ``turn`` again and again (a cylinder warp
    for left and right, a head-model nod for up and down); after ``wall_seconds`` of the bare wall
    behind them (no face yet), and only facing the camera when not ``turning``."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from tests.liveness_frames import RADIUS, blank, centred, jpeg, nodded, photo, turned

    engine = LocalFaceEngine()
    im = centred(photo(person), engine)
    (face,) = engine.detect(jpeg(im))
    centre, radius = face.box.left + face.box.width / 2, face.box.width * RADIUS
    box = (face.box.left, face.box.top, face.box.width, face.box.height)
    wall = blank(*im.size)
    cycle = FACING + TURNING + HOLD + TURNING
    warped: dict[int, bytes] = {}
    frames = []
    for index in range(round(seconds * VIDEO_FPS)):
        at = index / VIDEO_FPS - wall_seconds
        if at < 0:
            frames.append(wall)
            continue
        angle = round(_turned_share(at % cycle) * TURN_DEGREES) if turning else 0
        if angle not in warped:
            degrees = turn.sign * angle
            frame = nodded(im, degrees, box) if turn.axis == "pitch" else turned(im, degrees, centre, radius)
            warped[angle] = jpeg(frame)
        frames.append(warped[angle])
    return b"".join(frames)


def _turned_share(at: float) -> float:
    """How far the head is turned (0–1) ``at`` seconds into a cycle of the camera's video."""
    if at < FACING:
        return 0.0
    if at < FACING + TURNING:
        return (at - FACING) / TURNING
    if at < FACING + TURNING + HOLD:
        return 1.0
    return max(0.0, 1.0 - (at - FACING - TURNING - HOLD) / TURNING)


#: Run before the page's own script: a phone without a camera (the client then offers the album).
NO_CAMERA = "Object.defineProperty(navigator, 'mediaDevices', {get: () => undefined});"


def type_identity(me: Phone, name: str) -> None:
    """识别后确认: the identity form, filled from the ID card's reading, confirmed with ``name`` (the
    number and address as read, checked to be the card's)."""
    me.wait_until("the form to confirm", lambda: me.element("#confirm-form").is_displayed())
    assert me.element("#confirm-id-number").get_attribute("value") == PERSON_ID_NUMBER
    assert me.element("#confirm-address").get_attribute("value") == PERSON_ADDRESS
    me.fill("#confirm-name", name)
    me.tap("#confirm-submit")


def consent_before_the_photos(me: Phone) -> None:
    """The biometric consent on its own, before the ID card photos (the front's portrait is face
    processing), when the flow does not hold it yet."""
    me.wait_screen("documents")
    me.wait_until(
        "the documents screen",
        lambda: me._js("return document.querySelector('section[data-screen=documents]').dataset.ready"),
    )
    if me.element("#docs-consent").is_displayed():
        assert "人脸信息" in me.element("#docs-consent").text
        assert not me.element("#docs-photos").is_displayed()
        assert not me.element("#docs-consent-submit").is_enabled()
        me.element("#docs-consent-check").click()
        me.tap("#docs-consent-submit")
        me.wait_until("the photos", lambda: me.element("#docs-photos").is_displayed())


def photograph_id_card(me: Phone, front: Path, back: Path) -> None:
    """Both sides of the ID card through the camera inputs, each read (OCR) once uploaded."""
    for kind, path in (("id_front", front), ("id_back", back)):
        me.choose_files(f"#doc-{kind}-camera", path)
        state = me.wait_until(f"the {kind} photo to be read", functools.partial(me.photo_read, kind), 45)
        assert state == "done", me.messages()


def prove_identity(me: Phone, *, camera: bool, typo: bool = False) -> None:
    """The ID card and face steps, as the server asks for them.

    A registration photographs the ID card first; its reading fills the identity form the person
    confirms (识别后确认). A de-registration's identity is the registered one: the photos are checked
    against it at once. The face is shown to the (fake) camera when ``camera``, else chosen as photos in
    the file picker. With ``typo`` the name is first confirmed wrong: the card disagrees, the person
    corrects the form (the good photos stay).
    """
    from tests.synthetic_documents import id_back, id_front

    front = me.write("id_front.jpg", id_front(portrait=FACES / CARD_PORTRAIT, fmt="JPEG"))
    back = me.write("id_back.jpg", id_back(fmt="JPEG"))
    consent_before_the_photos(me)
    photograph_id_card(me, front, back)
    if me._js("return !document.getElementById('confirm-form').hidden"):
        assert me.element("#confirm-name").get_attribute("value") == PERSON_NAME
        if typo:
            type_identity(me, "王小红")
            refusal = me.wait_until("the mismatch under the name", me.errors, 45)
            assert any("姓名" in r and "核对" in r for r in refusal), refusal
            assert "重新拍摄" not in " ".join(refusal)
            assert me.photo_read("id_front") == "done"  # the good photo stays
        type_identity(me, PERSON_NAME)
    else:
        me.tap("#documents-next")
    pass_face_check(me, camera=camera)


#: Captures the face walk takes again when the server could not judge the turn (a busy machine drops the
#: fake camera's frames: a turn of 'up' was missed four times running once, with other suites beside it).
FREE_RETRIES = 5


def pass_face_check(me: Phone, *, camera: bool, person: str = LIVE_PERSON) -> None:
    """The face step: the liveness challenge in front of the (fake) camera when ``camera``, else a burst
    of photos chosen in the file picker, and the match with the ID card's portrait."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.verification.domain.liveness import LivenessDirection
    from tests.liveness_frames import capture_times, handheld, nodding_burst, turning_frames

    me.wait_screen("face")
    # The biometric consent was given before the photos; a flow begun without it is asked here
    consent = me.wait_until(
        "the biometric consent or the challenge",
        lambda: (
            "consent"
            if me.element("#face-consent").is_displayed()
            else (
                "session"
                if me._js("return document.querySelector('section[data-screen=face]').dataset.direction")
                else None
            )
        ),
    )
    if consent == "consent":
        assert "人脸信息" in me.element("#face-consent").text
        assert not me.element("#face-consent-submit").is_enabled()
        me.element("#face-consent-check").click()
        me.tap("#face-consent-submit")

    if not camera:
        # A phone without a camera: the page offers to choose photos instead
        me.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NO_CAMERA})
        me.driver.refresh()
        me.wait_screen("face")

    def challenge() -> tuple[str, str] | None:
        found = me._js(
            "const s = document.querySelector('section[data-screen=face]');"
            "return s.dataset.direction ? [s.dataset.direction, s.dataset.session] : null"
        )
        return (str(found[0]), str(found[1])) if found else None

    # The challenge is random and cannot be drawn again: reloading the page resumes the step with the
    # same session and direction. Every direction has frames: one photo warped into a turn or a nod.
    direction, session_id = me.wait_until("a liveness challenge", challenge)
    me.driver.refresh()
    me.wait_screen("face")
    assert me.wait_until("the same challenge", challenge) == (direction, session_id)
    assert me.element("#face-files-label").is_displayed() is not camera
    if not camera:  # told what photos to take, in the owner's words
        assert "连拍" in me.element("#face-files-label").text
    turn = LivenessDirection(direction)
    # The frames go up unmirrored, so the person asked to turn the face toward the image's left turns
    # to their own right (the direction convention of liveness.port).
    assert me.element("#face-instruction").text == PROMPTS[direction]
    if camera:
        me.camera.write_bytes(head_turn_video(turn, person=person))
        me.tap("#face-camera")
    else:
        make = nodding_burst if turn.axis == "pitch" else turning_frames
        frames = handheld(make(LocalFaceEngine(), person, turn.sign))
        paths = [me.write(f"frame-{i}.jpg", frame) for i, frame in enumerate(frames)]
        # taken in one burst by the phone's camera app: the photos' times are those of the capture
        for path, taken in zip(paths, capture_times(len(paths), start=1_700_000_000_000), strict=True):
            os.utime(path, ns=(taken * 1_000_000, taken * 1_000_000))
        me.choose_files("#face-files", *paths)
    # The camera's capture starts by itself once the server sees the face in the oval, and ends when
    # the turn is seen. A burst the server could not judge (no face, no turn it could measure: the dlib
    # landmark pose of one frame can differ by a few degrees from the preview's) is asked again without
    # spending an attempt, as a person would be: the walk turns again, at most five times (that nothing
    # was counted is the face test's to check, tests/e2e/test_h5_face.py).
    for capture in range(FREE_RETRIES + 1):
        me.wait_until(
            "the face check",
            lambda: (
                me.screen() != "face"
                or me._js("return !document.getElementById('face-result').hidden")
                or me.errors()
            ),
            timeout=90,
        )
        if me.screen() != "face":
            return
        errors = me.errors()
        if camera and capture < FREE_RETRIES and errors and all("不计入核验次数" in e for e in errors):
            me.tap("#face-camera" if me.element("#face-camera").is_displayed() else "#face-retry")  # 再试一次
            continue
        outcome = me.element("#face-result").text
        assert "未通过" not in outcome, f"{direction}: {me.messages()}"
        assert not errors, f"{direction}: {me.messages()}"
        return


def test_a_person_registers_a_car_and_deregisters_it_in_the_browser(phone: Phone, stack: Stack) -> None:
    me = phone
    vin = unregistered_vin(stack)

    # Given the client on a phone-sized screen, when the person logs in with an SMS code
    me.open()
    me.wait_screen("login")
    me.fill("#login-phone", LOGIN_PHONE)
    code = me.sms_code(LOGIN_PHONE, lambda: me.tap("#login-send"))
    me.wait_until("the 60 s resend countdown", lambda: "秒后重发" in me.element("#login-send").text)
    # A wrong code is refused with the server's own Chinese message
    me.fill("#login-code", str((int(code[0]) + 1) % 10) + code[1:])
    me.tap("#login-agree")  # 已阅读并同意《用户协议》《隐私政策》
    me.tap("#login-submit")
    refusal = me.wait_until("the wrong code's refusal", me.errors)
    assert re.search(r"[\u4e00-\u9fff]", refusal[0]), refusal
    assert me.screen() == "login"
    me.fill("#login-code", code)
    me.tap("#login-submit")
    me.wait_screen("home")

    # When they enter a wrong VIN they are told why, in Chinese, under the field
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", "LSVAB2BOHOL0000")
    me.tap("#vin-submit")
    me.wait_until("the VIN error", lambda: me.element("#vin-input ~ .field-error").is_displayed())
    assert "17 位" in me.element("#vin-input ~ .field-error").text

    # When they enter their car's VIN, they see it masked and confirm it
    me.fill("#vin-input", vin)
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    shown = me.element("#vehicle-card").text
    assert vin[-6:] in shown
    assert vin not in shown  # the VIN is masked
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")

    # When the page is reloaded, the registration resumes at the step the server says is next
    me.driver.refresh()
    me.wait_screen("verify_phone")

    # And they verify the owner's phone with its code
    me.fill("#owner-phone", OWNER_PHONE)
    code = me.sms_code(OWNER_PHONE, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")

    # And show they hold the car: the code its head unit shows
    show_possession(me, vin)

    # And prove who they are: identity, ID card photos read by OCR, the face (camera) against the card
    prove_identity(me, camera=True, typo=True)

    # And agree to every text, the biometric consent on its own
    me.wait_screen("consents")
    boxes = me.wait_until(
        "the texts to agree to",
        lambda: me.driver.find_elements("css selector", "#consent-list input[type=checkbox]"),
    )
    assert {b.get_attribute("data-kind") for b in boxes} == {
        "registration_agreement",
        "responsibility_notice",
    }
    assert not me.element("#consents-submit").is_enabled()
    for box in boxes:
        box.click()
    me.tap("#consents-submit")

    # When they submit, the result page waits for the operator, then shows the registration
    me.wait_screen("submit")
    me.tap("#submit-button")
    me.wait_screen("result")
    me.wait_until(
        "the operator's answer",
        lambda: me._js(
            "const r = document.querySelector('section[data-screen=result]').dataset.result;"
            "return r && r !== 'pending' ? r : null"
        ),
        timeout=60,
    )
    result = me._js("return document.querySelector('section[data-screen=result]').dataset.result")
    assert result == "registered", me.messages()
    assert "实名登记成功" in me.element("#result-text").text
    me.driver.save_screenshot(str(RESULT_SCREENSHOT))

    # Then the car is among their vehicles, its card registered
    me.tap("#result-vehicles")
    me.wait_screen("vehicles")
    card = me.wait_until(
        "my vehicle",
        lambda: me.element("#vehicle-list").text if "已登记" in me.element("#vehicle-list").text else None,
    )
    assert vin[-6:] in card
    assert "实名登记成功" in card
    me.element("#vehicle-list details.history summary").click()
    assert "电信企业确认登记" in me.element("#vehicle-list details.history").text
    me.driver.save_screenshot(str(VEHICLES_SCREENSHOT))

    # When they de-register it: the car picked in 我的车辆 and confirmed (no VIN typed), phone code,
    # the same person's proof, confirmation
    me.tap("#vehicle-list .deregister")
    me.wait_screen("deregister_vehicle")
    me.tap("#deregister-start")
    me.wait_screen("verify_phone")
    # A phone other than the one given at registration is refused, in Chinese
    me.fill("#owner-phone", OTHER_PHONE)
    code = me.sms_code(OTHER_PHONE, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")
    refusal = me.wait_until("the other phone's refusal", me.errors)
    assert "登记时预留的手机号码" in refusal[0], refusal
    assert me.screen() == "verify_phone"
    me.fill("#owner-phone", OWNER_PHONE)
    code = me.sms_code(OWNER_PHONE, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")
    prove_identity(me, camera=False)  # this time the face photos come from the file picker
    me.wait_screen("submit")
    assert "确认注销" in me.element("#submit-button").text
    me.tap("#submit-button")
    me.wait_screen("result")
    me.wait_until(
        "the de-registration's answer",
        lambda: me._js(
            "const r = document.querySelector('section[data-screen=result]').dataset.result;"
            "return r && r !== 'pending' ? r : null"
        ),
        timeout=60,
    )
    assert me._js("return document.querySelector('section[data-screen=result]').dataset.result") == (
        "deregistered"
    ), me.messages()
    assert "实名注销成功" in me.element("#result-text").text
    assert me.csp_violations() == []


def test_a_trustee_gives_the_owner_and_the_authorization_letter_in_the_browser(
    phone: Phone, stack: Stack, tmp_path: Path
) -> None:
    import random

    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.local.synthetic import make_resident_id
    from tests.synthetic_documents import authorization_letter

    me = phone
    vin = unregistered_vin(stack)
    login, trustee = "13800138001", "13900139001"
    me.open()
    me.wait_screen("login")
    me.fill("#login-phone", login)
    code = me.sms_code(login, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-agree")
    me.tap("#login-submit")
    me.wait_screen("home")

    # When the trustee registers the owner's car, saying they act for the owner
    me.tap("#home-register")
    me.wait_screen("vin")
    me.fill("#vin-input", vin)
    me.element("#vin-delegated").click()
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    me.tap("#vehicle-confirm")
    me.wait_screen("verify_phone")
    me.fill("#owner-phone", trustee)
    code = me.sms_code(trustee, lambda: me.tap("#owner-send"))
    me.fill("#owner-code", code)
    me.tap("#phone-submit")
    # (the trustee shows possession for the owner, with the car's 行驶证)
    show_possession(me, vin, licence=True)

    # Then the delegation step asks for the owner and the letter, and refuses to go on without the letter
    me.wait_screen("delegation")
    assert "委托信息" in me.element("#progress-text").text
    owner_id = make_resident_id(random.Random(11))
    owner_mobile = "13700137001"
    # The owner is real, and the carrier holds the owner's phone in the owner's name
    SandboxIdentityAuthority(stack.authority).register_citizen("李四", owner_id, phone=owner_mobile)
    me.fill("#owner-id-number", owner_id)
    me.fill("#owner-name", "李四")
    me.fill("#owner-address", "上海市浦东新区世纪大道 100 号")
    me.fill("#owner-mobile", owner_mobile)
    me.tap("#delegation-submit")
    refusal = me.wait_until("the missing letter's refusal", me.errors)
    assert "授权委托书" in refusal[0], refusal
    # And the letter naming the owner, the trustee and the car is photographed
    letter = tmp_path / "letter.jpg"
    letter.write_bytes(
        authorization_letter(
            owner_name="李四",
            owner_id_number=owner_id,
            trustee_name=PERSON_NAME,
            trustee_id_number=PERSON_ID_NUMBER,
            vin=vin,
            fmt="JPEG",
        )
    )
    me.choose_files("#letter-album", letter)
    me.wait_until(
        "the letter to be stored",
        lambda: me._js("return document.getElementById('doc-authorization_letter').dataset.state") == "done",
        45,
    )
    # And the owner's ID card is asked for, read, and checked against what was typed
    me.tap("#delegation-submit")
    refusal = me.wait_until("the missing owner's ID card", me.errors)
    assert "车主身份证" in refusal[0], refusal
    from tests.synthetic_documents import id_front

    card = tmp_path / "owner-id.jpg"
    card.write_bytes(
        id_front(name="李四", id_number=owner_id, address="上海市浦东新区世纪大道 100 号", fmt="JPEG")
    )
    me.choose_files("#ownerid-album", card)
    me.wait_until(
        "the owner's ID card to be stored",
        lambda: me._js("return document.getElementById('doc-owner_id_front').dataset.state") == "done",
        45,
    )
    # (and its back, whose validity is registered with the owner, 第五条)
    from tests.synthetic_documents import id_back

    back = tmp_path / "owner-id-back.jpg"
    back.write_bytes(id_back(fmt="JPEG"))
    me.choose_files("#owneridback-album", back)
    me.wait_until(
        "the back of the owner's ID card to be stored",
        lambda: me._js("return document.getElementById('doc-owner_id_back').dataset.state") == "done",
        45,
    )
    me.tap("#delegation-submit")
    # Then the owner confirms the delegation with the code sent to the owner's phone
    me.wait_until(
        "the owner's confirmation to be asked", lambda: me.element("#delegation-confirm").is_displayed(), 90
    )
    assert "137****7001" in me.element("#delegation-confirm-hint").text
    code = me.sms_code(owner_mobile, lambda: me.tap("#delegation-send"))
    me.fill("#delegation-code", code)
    me.tap("#delegation-confirm-submit")
    # And the trustee goes on to their own ID card (read, then confirmed)
    consent_before_the_photos(me)
    assert "受托人" in me.element('section[data-screen="documents"] > .hint').text
