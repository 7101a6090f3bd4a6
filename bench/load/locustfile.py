"""The local stack under load (``make load`` runs it through ``bench/load/run_load.py``): owners, each
with a phone and a car of their own, driving the API as the H5 client does.

- :class:`Starter` (most owners): login code → the code read from the dev SMS drop → login → start a
  registration → confirm the vehicle → its status. The registration is left open, as a person who
  stops there leaves it.
- :class:`Registrant`: the same, then the whole registration: the phone by its code (the car's sales
  record names it: possession), the identity, the biometric consent, both ID card sides uploaded
  (presigned POST to the store) and read by OCR (checked with the sandbox authority), the head-turn
  check with real face frames, the agreements, submit, and the status once more.

Each simulated owner takes the next row of the pool the runner wrote (``LOAD_POOL``: a phone, a VIN
whose sales record names that phone, and the synthetic identity a registrant registers with, shared by
at most as many owners as one ID may hold cards: ``scenario.identity_of``; the photos and frames
precomputed). Only a loopback host is accepted. When the run ends, counts of 503 answers (retryable, in
the error model), other 5xx answers, connection resets and other connection errors, and of the rounds
and registrations done, are written to ``LOAD_SUMMARY``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario import loopback_only, masked

REG = "/v1/me/registrations"
CODE = re.compile(r"验证码\s*(\d{4,8})")
#: A step's answer later than this is a failure (the local stack is slow, never this slow).
TIMEOUT = 120.0
#: How many of the drop's newest messages each read asks for: each is one object the API reads from the
#: store, so the reads stay small (the owner's code is among the newest right after the send; at 60
#: owners at a time a read of 100 took longer than the API's deadline on a loaded machine).
DROP_READS = (10, 20, 20, 20, 20)
#: The request name of those reads (the harness's, not an owner's step).
DROP = "(dev) SMS drop"
#: Head turns tried per registration (the local engine cannot always judge one turn; a person turns again).
FACE_TRIES = 3

_POOL: dict[str, Any] = (
    json.loads(Path(os.environ["LOAD_POOL"]).read_text()) if "LOAD_POOL" in os.environ else {}
)
_OWNERS = iter(_POOL.get("owners", []))
_COUNTS: Counter[str] = Counter()
_ASSETS: dict[str, Any] = {}


def _asset(name: str) -> Any:
    """A precomputed photo (bytes) or burst (base64 frames by direction), read once."""
    if name not in _ASSETS:
        path = Path(_POOL["assets"]) / name
        _ASSETS[name] = json.loads(path.read_text()) if path.suffix == ".json" else path.read_bytes()
    return _ASSETS[name]


def _loopback(environment: Any, **_: Any) -> None:
    loopback_only(environment.host or "")


def _count(name: str, response: Any, exception: BaseException | None, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    if status == 503:  # a retryable refusal in the error model (Retry-After): counted apart from errors
        _COUNTS["unavailable"] += 1
        if name == DROP:  # the harness reading codes, not an owner's step
            _COUNTS["drop_unavailable"] += 1
    elif status >= 500:
        _COUNTS["server_errors"] += 1
    elif exception is not None and not status:
        text = f"{type(exception).__name__}: {exception}"
        if "reset" in text.lower() or "RemoteDisconnected" in text or "aborted" in text.lower():
            _COUNTS["resets"] += 1
        else:
            _COUNTS["connection_errors"] += 1


def _summary(**_: Any) -> None:
    target = os.environ.get("LOAD_SUMMARY")
    if target:
        Path(target).write_text(json.dumps(dict(_COUNTS)))


def _reset(**_: Any) -> None:
    # The ramp's requests are not the level's: counted from the moment every user is running.
    _COUNTS.clear()


# Registered by call: locust's hooks are untyped (its decorator would make these functions untyped).
_HOOKS: Any = events
for _hook, _listener in (
    (_HOOKS.test_start, _loopback),
    (_HOOKS.request, _count),
    (_HOOKS.quitting, _summary),
    (_HOOKS.spawning_complete, _reset),
):
    _hook.add_listener(_listener)


class Owner(HttpUser):  # type: ignore[misc,unused-ignore]  # locust is typed only where installed
    """One simulated person at a time: a new owner (phone, car) for every round."""

    abstract = True
    wait_time = between(0.5, 1.0)

    def on_start(self) -> None:
        self.seen: set[str] = set()
        self.texts: list[dict[str, str]] | None = None
        self.device = uuid.uuid4().hex  # the H5 client's X-Device-Id (kept in its localStorage)
        self.owner: dict[str, Any] = {}

    def next_owner(self) -> tuple[str, str]:
        row = next(_OWNERS, None)
        if row is None:  # the pool is used up: this user stops (the runner sizes the pool to the level)
            raise StopUser
        self.owner = row  # the identity this owner registers with, and its ID card photo
        self.device = uuid.uuid4().hex  # each owner's own phone, its own device id
        return str(row["phone"]), str(row["vin"])

    def call(
        self, method: str, path: str, name: str, expect: int, *, body: Any = None, token: str | None = None
    ) -> Any:
        """One API call as the H5 client makes it; its JSON, or None when it failed (recorded so)."""
        headers = {"Accept": "application/json", "X-Device-Id": self.device}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        with self.client.request(
            method, path, name=name, json=body, headers=headers, timeout=TIMEOUT, catch_response=True
        ) as response:
            if response.status_code != expect:
                response.failure(f"{response.status_code} (expected {expect}): {response.text[:200]}")
                return None
            try:
                return response.json()
            except ValueError:
                response.failure("not JSON")
                return None

    def sms_code(self, phone: str, purpose: str, token: str | None = None) -> str | None:
        """Ask for a code for ``phone`` and read it from the dev SMS drop (newest first)."""
        name = "login code" if purpose == "login" else "phone code"
        if (
            self.call(
                "POST",
                "/v1/auth/sms-codes",
                name,
                202,
                body={"phone": phone, "purpose": purpose},
                token=token,
            )
            is None
        ):
            return None
        shown = masked(phone)
        for limit in DROP_READS:
            drop = self.call("GET", f"/v1/dev/sms-drop?limit={limit}", DROP, 200)
            for message in (drop or {}).get("messages", []):
                if message.get("phone") == shown and message.get("message_id") not in self.seen:
                    self.seen.add(message["message_id"])
                    found = CODE.search(message.get("text", ""))
                    if found:
                        return found.group(1)
            time.sleep(0.2)
        return None

    def sign_in_and_start(self) -> tuple[str, str, str, dict[str, Any]] | None:
        """Login and the registration's first steps; (token, phone, registration id, registration)."""
        phone, vin = self.next_owner()
        if self.texts is None:
            texts = self.call("GET", "/v1/account-texts", "account texts", 200)
            if texts is None:
                return None
            self.texts = [{k: d[k] for k in ("kind", "version", "sha256")} for d in texts["documents"]]
        code = self.sms_code(phone, "login")
        if code is None:
            return None
        session = self.call(
            "POST",
            "/v1/auth/login",
            "login",
            200,
            body={"phone": phone, "code": code, "accepted": self.texts},
        )
        if session is None:
            return None
        token = str(session["token"])
        reg = self.call("POST", REG, "start", 201, body={"vin": vin}, token=token)
        if reg is None:
            return None
        reg_id = str(reg["registration_id"])
        if (
            self.call("POST", f"{REG}/{reg_id}/confirm-vehicle", "confirm vehicle", 200, body={}, token=token)
            is None
        ):
            return None
        reg = self.call("GET", f"{REG}/{reg_id}", "status", 200, token=token)
        if reg is None:
            return None
        _COUNTS["starts"] += 1
        return token, phone, reg_id, reg


class Starter(Owner):
    """SMS code → login → start → confirm vehicle → status."""

    weight = 4

    def round(self) -> None:
        self.sign_in_and_start()

    tasks = [round]  # noqa: RUF012 - locust reads the class attribute


class Registrant(Owner):
    """A whole registration, from the login code to submit."""

    weight = 1

    def round(self) -> None:
        started = self.sign_in_and_start()
        if started is None:
            return
        token, phone, reg_id, _ = started
        code = self.sms_code(phone, "owner_phone", token)
        if code is None:
            return
        reg = self.call(
            "POST", f"{REG}/{reg_id}/phone", "phone", 200, body={"phone": phone, "code": code}, token=token
        )
        if reg is None:
            return
        flow = f"/v1/flows/{reg['flow_id']}"
        identity = {"id_type": "resident_id", **self.owner["person"]}
        if self.call("PUT", f"{flow}/identity", "identity", 200, body=identity, token=token) is None:
            return
        texts = self.call("GET", "/v1/consents", "consent texts", 200, token=token)
        if texts is None:
            return
        doc = next(d for d in texts["documents"] if d["kind"] == "biometric_consent")
        consent = {"version": doc["version"], "sha256": doc["sha256"], "client": {"ua": "cheka-load"}}
        if (
            self.call(
                "POST", f"{flow}/biometric-consent", "biometric consent", 200, body=consent, token=token
            )
            is None
        ):
            return
        for kind, photo in (("id_front", str(self.owner["front"])), ("id_back", "id_back.jpg")):
            if not self.upload(flow, kind, photo, token):
                return
            if self.call("POST", f"{flow}/ocr/{kind}", "OCR", 200, token=token) is None:
                return
        if not self.face(flow, token):
            return
        accepted = [{k: d[k] for k in ("kind", "version", "sha256")} for d in texts["documents"]]
        body = {"accepted": accepted, "client": {"ua": "cheka-load"}}
        if self.call("POST", f"{REG}/{reg_id}/consents", "consents", 200, body=body, token=token) is None:
            return
        if self.call("POST", f"{REG}/{reg_id}/submit", "submit", 200, token=token) is None:
            return
        if self.call("GET", f"{REG}/{reg_id}", "status", 200, token=token) is not None:
            _COUNTS["registrations"] += 1

    tasks = [round]  # noqa: RUF012 - locust reads the class attribute

    def upload(self, flow: str, kind: str, photo: str, token: str) -> bool:
        """Presign, POST the photo (an asset's name) to the store as the browser does, complete."""
        post = self.call(
            "POST",
            f"{flow}/uploads",
            "upload: presign",
            201,
            body={"kind": kind, "content_type": "image/jpeg"},
            token=token,
        )
        if post is None:
            return False
        with self.client.post(
            loopback_only(post["url"]),
            name="upload: S3 POST",
            data=post["fields"],
            files={"file": (f"{kind}.jpg", _asset(photo), "image/jpeg")},
            timeout=TIMEOUT,
            catch_response=True,
        ) as response:
            if response.status_code >= 300:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return False
        done = self.call(
            "POST",
            f"{flow}/documents",
            "upload: complete",
            201,
            body={"kind": kind, "key": post["key"]},
            token=token,
        )
        return done is not None

    def face(self, flow: str, token: str) -> bool:
        """The head-turn check: the frames of the turn the session asks for (again if not judged)."""
        for _ in range(FACE_TRIES):
            session = self.call("POST", f"{flow}/liveness-sessions", "liveness session", 201, token=token)
            if session is None:
                return False
            challenge = session["challenge"]
            frames: list[str] = _asset("bursts.json")[challenge["direction"]]
            times = [1_700_000_000_000 + 450 * i for i in range(len(frames))]
            body = {"frames": frames, "nonce": challenge.get("nonce"), "timestamps_ms": times}
            path = f"{flow}/liveness-sessions/{session['session_id']}/result"
            outcome = self.call("POST", path, "liveness result", 200, body=body, token=token)
            if outcome is None:
                return False
            if outcome.get("passed") is True:
                return True
            _COUNTS["face_retries"] += 1
        return False
