"""The local OIDC provider's staff directory: demo staff, their passwords (scrypt) and TOTP (pyotp).

``make run`` invents one staff member per staff role (reviewer, admin, auditor, operations, review lead,
call centre) with a new password and a new TOTP secret each time it starts, keeps only the password's
scrypt hash in the provider, and records the clear password and the secret in its state file
(``.local/stack.json``, readable by its owner only) for the developer: ``cheka staff users`` lists them,
``cheka staff totp <user>`` prints the current code for a developer without an authenticator app. Nothing
here logs a password, a secret or a code.

Sign-in checks: a wrong password or a wrong TOTP code counts as a failure; ``MAX_FAILURES`` failures in a
row lock the user for ``lock_seconds`` (a correct password then is refused too). A TOTP code is accepted
once: a code of a time step already used (or older) is refused, so a code seen over a shoulder cannot be
replayed within its 30 s.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: The staff roles the demo directory has one member of each (the groups claim carries these names).
DEMO_GROUPS: tuple[str, ...] = ("reviewer", "admin", "auditor", "operations", "review-leads", "call-centre")
DEMO_NAMES: Mapping[str, str] = {
    "reviewer": "审核员（演示）",
    "review-leads": "审核组长（演示）",
    "admin": "管理员（演示）",
    "auditor": "审计员（演示）",
    "operations": "运营（演示）",
    "call-centre": "外呼坐席（演示）",
}
#: Failures (wrong password or TOTP code) in a row that lock a user.
MAX_FAILURES = 5
TOTP_STEP_SECONDS = 30

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>`` of ``password``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = encoded.split("$")
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class StaffUser:
    """A staff member of the local provider (the password only as its hash)."""

    username: str
    subject: str
    name: str
    groups: tuple[str, ...]
    password_hash: str
    totp_secret: str = field(repr=False)


@dataclass(frozen=True)
class DemoStaff:
    """A demo staff member as the developer sees them (state file): the clear password and secret."""

    username: str
    subject: str
    name: str
    groups: tuple[str, ...]
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)

    def user(self) -> StaffUser:
        return StaffUser(
            username=self.username,
            subject=self.subject,
            name=self.name,
            groups=self.groups,
            password_hash=hash_password(self.password),
            totp_secret=self.totp_secret,
        )

    def state(self) -> dict[str, Any]:
        """What the state file records of them."""
        return {
            "username": self.username,
            "subject": self.subject,
            "name": self.name,
            "groups": list(self.groups),
            "password": self.password,
            "totp_secret": self.totp_secret,
        }

    @classmethod
    def from_state(cls, doc: Mapping[str, Any]) -> DemoStaff:
        return cls(
            username=str(doc["username"]),
            subject=str(doc.get("subject", "")),
            name=str(doc.get("name", "")),
            groups=tuple(str(g) for g in doc.get("groups", [])),
            password=str(doc["password"]),
            totp_secret=str(doc["totp_secret"]),
        )


def invent_demo_staff(groups: Iterable[str] = DEMO_GROUPS) -> list[DemoStaff]:
    """One staff member per group, named after it, with a new password and TOTP secret."""
    import pyotp

    return [
        DemoStaff(
            username=group,
            subject=str(uuid.uuid4()),
            name=DEMO_NAMES.get(group, group),
            groups=(group,),
            # Letters, digits and a symbol: what a corporate password rule asks for.
            password=f"{secrets.token_urlsafe(12)}-{secrets.randbelow(90) + 10}",
            totp_secret=pyotp.random_base32(),
        )
        for group in groups
    ]


def totp_now(secret: str, at: float | None = None) -> str:
    """The TOTP code of ``secret`` now (or at ``at``)."""
    import pyotp

    return pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS).at(at if at is not None else time.time())


def provisioning_uri(user: DemoStaff, issuer_name: str = "cheka local") -> str:
    """The ``otpauth://`` URI an authenticator app enrols from (a QR code of it, or typed in)."""
    import pyotp

    return pyotp.TOTP(user.totp_secret, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=user.username, issuer_name=issuer_name
    )


class Outcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # wrong password or code (counted)
    LOCKED = "locked"  # too many failures: nothing is checked until the lock ends


@dataclass(frozen=True)
class Check:
    outcome: Outcome
    user: StaffUser | None = None
    #: Failures left before the lock (WRONG), or seconds until the lock ends (LOCKED).
    remaining: int = 0


@dataclass
class _Guard:
    failures: int = 0
    locked_until: float = 0.0
    last_step: int = -1


class StaffDirectory:
    """The provider's users, with the failure count, the lock and the last TOTP step of each."""

    def __init__(
        self,
        users: Iterable[StaffUser],
        *,
        lock_seconds: int = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._users = {u.username: u for u in users}
        self._guards = {name: _Guard() for name in self._users}
        self._lock = threading.Lock()
        self.lock_seconds = lock_seconds
        self.clock = clock

    def get(self, username: str) -> StaffUser | None:
        return self._users.get(username)

    def by_subject(self, subject: str) -> StaffUser | None:
        return next((u for u in self._users.values() if u.subject == subject), None)

    def _locked(self, guard: _Guard, now: float) -> Check | None:
        if guard.locked_until > now:
            return Check(Outcome.LOCKED, remaining=math.ceil(guard.locked_until - now))
        if guard.locked_until:
            guard.locked_until, guard.failures = 0.0, 0
        return None

    def _fail(self, guard: _Guard, now: float) -> Check:
        guard.failures += 1
        if guard.failures >= MAX_FAILURES:
            guard.locked_until = now + self.lock_seconds
            return Check(Outcome.LOCKED, remaining=self.lock_seconds)
        return Check(Outcome.WRONG, remaining=MAX_FAILURES - guard.failures)

    def check_password(self, username: str, password: str) -> Check:
        """The first factor. An unknown user name answers as a wrong password (and takes as long)."""
        user = self._users.get(username)
        if user is None:
            check_password(password, hash_password("-"))
            return Check(Outcome.WRONG, remaining=MAX_FAILURES)
        now = self.clock()
        with self._lock:
            if (locked := self._locked(self._guards[username], now)) is not None:
                return locked
        ok = check_password(password, user.password_hash)
        with self._lock:
            guard = self._guards[username]
            if (locked := self._locked(guard, now)) is not None:
                return locked
            if not ok:
                return self._fail(guard, now)
            return Check(Outcome.OK, user=user)

    def check_totp(self, username: str, code: str) -> Check:
        """The second factor: the code of this 30 s step or the one before, never a step used already.
        Success clears the failure count."""
        import pyotp

        user = self._users.get(username)
        if user is None:
            return Check(Outcome.WRONG)
        now = self.clock()
        totp = pyotp.TOTP(user.totp_secret, interval=TOTP_STEP_SECONDS)
        code = code.strip().replace(" ", "")
        with self._lock:
            guard = self._guards[username]
            if (locked := self._locked(guard, now)) is not None:
                return locked
            step = totp.timecode(now)
            matched = None
            if code.isdigit() and len(code) == totp.digits:
                for candidate in (step, step - 1):
                    if candidate > guard.last_step and hmac.compare_digest(
                        totp.generate_otp(candidate), code
                    ):
                        matched = candidate
                        break
            if matched is None:
                return self._fail(guard, now)
            guard.last_step, guard.failures = matched, 0
            return Check(Outcome.OK, user=user)
