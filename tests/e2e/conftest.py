"""The whole local stack as ``make run`` starts it, on free ports, and a headless Chromium to drive it.

``stack`` runs ``python -m chalicelib.local.run`` (moto server, resources, demo seed, chalice local, the
worker and the sandbox operator) with ``CHEKA_MOTO_PORT`` / ``CHEKA_API_PORT`` / ``CHEKA_SANDBOX_PORT``
set to free ports, so it never meets a developer's ``make run`` on the default ports. It waits for
``/health``, reads the demo inventory from ``cheka seed`` (idempotent), and at the end sends the runner
SIGTERM (it stops its children, each in its own process group) and then makes sure each of them is gone.

``browser`` is Debian's chromium driven through Debian's chromedriver (Selenium), phone-sized, with a
fake camera that plays the MJPEG file ``camera`` names (written by a test before the page opens it).
Both skip, with the reason, where what they need is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.local.serving import ONE_LOOPBACK_CLIENT, STACK_SERVERS, free_ports, local_stack_env
from tests.face_photos import CARD_PORTRAIT, FACES
from tests.synthetic_documents import PERSON_ID_NUMBER, PERSON_NAME, cjk_font_path

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=zh-CN",
)
#: The phone the client is designed for (375 px wide).
PHONE = {"width": 375, "height": 812, "pixelRatio": 2.0}
STARTUP_SECONDS = 120.0
STOP_SECONDS = 40.0


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a process from a later one that reused its id)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below ``pid`` with its start time, found through /proc."""
    out: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            started = _start_time(child)
            if started is not None:
                out.append((child, started))
                todo.append(child)
    return out


@dataclass
class Stack:
    """The running local stack: where the API is, the demo inventory, an admin token."""

    api: str
    moto: str
    seed: dict[str, Any]
    admin_token: str
    log: Path
    #: The stage's sandbox identity authority (a test registers the citizens it needs there).
    authority: str = ""
    #: The sandbox operator (its loopback ``/_sandbox/faults`` endpoint injects faults).
    sandbox: str = ""
    #: The stack's environment, for the ``cheka`` CLI run against it.
    env: dict[str, str] = field(default_factory=dict)
    #: The last 30 s TOTP step a test of this stack signed each staff member in with.
    totp_steps: dict[str, int] = field(default_factory=dict)

    def totp_code(self, username: str, secret: str) -> str:
        """A TOTP code of ``username`` that the stack's identity provider takes: it accepts each 30 s
        step once per user (replays are refused), and the tests of one stack sign the same demo staff
        in, so a step an earlier test used is waited out, as a person whose code was just used would
        wait for the next. A step about to end is waited out too."""
        import pyotp

        totp = pyotp.TOTP(secret)
        while True:
            now = time.time()
            step, left = int(now // totp.interval), totp.interval - now % totp.interval
            if step > self.totp_steps.get(username, -1) and left >= 3:
                self.totp_steps[username] = step
                return totp.at(now)
            time.sleep(left + 0.1)

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 30.0
    ) -> tuple[int, Any]:
        """One API call over HTTP: (status, parsed JSON body or None)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.api + path, data=data, method=method, headers=headers)
        for attempt in range(4):
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback stack
                    status, raw = response.status, response.read()
                break
            except urllib.error.HTTPError as err:
                status, raw = err.code, err.read()
                break
            except OSError:
                # chalice local restarts its server when a source file changes under it.
                if attempt == 3:
                    raise
                time.sleep(1.0)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def route_exists(self, method: str, path: str, body: Any = None) -> bool:
        """Whether the app declares ``method path`` (asked without credentials, so nothing happens).

        An unknown path is 403 "Missing Authentication Token" (as API Gateway answers), an unknown method
        405; the app's own refusals (401 without a token, 400/422 for an empty body) carry a ``code``.
        """
        status, doc = self.call(method, path, body)
        if status in (404, 405):
            return False
        return not (status == 403 and isinstance(doc, dict) and "code" not in doc)

    def cheka(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """``cheka *args`` against this stack (``extra_env``: settings of that one run); its stdout."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "cheka"), *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cheka {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def sandbox_faults(self, **faults: Any) -> dict[str, Any]:
        """Set the sandbox operator's injected faults (the others stay as they are); all of them now."""
        data = json.dumps(faults).encode()
        request = urllib.request.Request(
            self.sandbox + "/_sandbox/faults",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback stack
            doc: dict[str, Any] = json.loads(response.read())
        return doc

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


#: What the browser tests change of the local stage's settings (each limit is proved in its own test).
E2E_SETTINGS = {
    # The owner's phone gets a registration code and, minutes later, a de-registration code;
    # the 60 s resend rule itself is proved in tests/integration/test_sms_codes.py.
    "CHEKA_SMS_RESEND_SECONDS": "10",
    # One synthetic person registers (and de-registers) many cars in one run; the five face
    # attempts a day a person has are proved in tests/integration/test_verification_limits.py.
    "CHEKA_FACE_ATTEMPTS_PER_PERSON_DAY": "100",
    # Every browser of a run is one loopback client asking for many codes.
    **ONE_LOOPBACK_CLIENT,
    # A push unanswered for a minute is the reconciliation's (and the owner is told the platform
    # is checking with the operator): the lost-callback test waits one minute, not thirty.
    "CHEKA_PUSH_STALE_MINUTES": "1",
}


def _wait_healthy(proc: subprocess.Popen[bytes], api: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the local stack exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(api + "/health", timeout=5) as response:  # loopback stack
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except OSError as err:
            last = type(err).__name__
        time.sleep(0.5)
    raise RuntimeError(f"/health did not answer 200 within {STARTUP_SECONDS:.0f}s ({last})")


def _stop(proc: subprocess.Popen[bytes], below: list[tuple[int, str]]) -> None:
    """SIGTERM the runner (it stops its children); then any child still there, by its group."""
    below = below + [d for d in _descendants(proc.pid) if d not in below]
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid, started in below:
        if _start_time(pid) == started:  # still the process we started, not a later one with its id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _blank_video(path: Path) -> None:
    """One second of a plain wall as MJPEG (the fake camera needs a readable file when it starts)."""
    from tests.liveness_frames import blank

    path.write_bytes(blank() * 30)


@pytest.fixture(scope="session")
def browser_prerequisites() -> None:
    """Skip, saying what is missing, when the browser tests cannot run here."""
    pytest.importorskip("selenium", reason="selenium is not installed (requirements-dev.txt)")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.skip(f"{path} not found (apt-get install {package}, or `make system-deps`)")
    if not FACES.is_dir():
        pytest.skip(f"face photos not found at {FACES}")
    if cjk_font_path() is None:
        pytest.skip("CJK font not installed (apt-get install fonts-wqy-microhei): cannot draw the ID cards")


@pytest.fixture(scope="session")
def stack(browser_prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = dict(zip(STACK_SERVERS, free_ports(len(STACK_SERVERS)), strict=True))
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    # Its state file (what `cheka` finds it by) beside its log, not the developer's .local/stack.json;
    # the test stage's settings (tests/conftest.py) do not leak into it.
    env = local_stack_env(ports, log.with_name("stack.json"), E2E_SETTINGS)
    bin_dir = Path(sys.executable).parent
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    below: list[tuple[int, str]] = []
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{ports['api']}", log)
        below = _descendants(proc.pid)

        def cheka(*args: str) -> str:
            done = subprocess.run(
                [str(bin_dir / "cheka"), *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"cheka {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}"
                )
            return done.stdout

        seed = json.loads(cheka("seed"))
        # The synthetic person of the H5 tests is a citizen of the stage's (sandbox) identity authority,
        # with the face their card carries; any other identity is refused.
        cheka(
            "authority",
            "register",
            "--name",
            PERSON_NAME,
            "--id-number",
            PERSON_ID_NUMBER,
            "--portrait",
            str(FACES / CARD_PORTRAIT),
        )
        token = cheka("token", "issue", "--subject", "e2e-admin", "--role", "admin", "--ttl", "3600").strip()
        yield Stack(
            api=f"http://127.0.0.1:{ports['api']}",
            moto=f"http://127.0.0.1:{ports['moto']}",
            seed=seed,
            admin_token=token,
            log=log,
            authority=f"http://127.0.0.1:{ports['authority']}",
            sandbox=f"http://127.0.0.1:{ports['sandbox']}",
            env=env,
        )
    finally:
        _stop(proc, below)


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """The file Chromium's fake camera plays (MJPEG); a test writes the video before the camera opens."""
    return tmp_path / "camera.mjpeg"


@pytest.fixture
def browser(browser_prerequisites: None, camera: Path) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    # A camera that plays a file (granted without asking), read when a page opens the camera.
    _blank_video(camera)
    options.add_argument("--use-fake-ui-for-media-stream")
    options.add_argument("--use-fake-device-for-media-stream")
    options.add_argument(f"--use-file-for-fake-video-capture={camera}")
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
