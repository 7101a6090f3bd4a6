"""Sessions as stored (never a token in clear), their policy, and the refusals a refresh may meet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.kernel.errors import Unauthenticated


class SessionKind(StrEnum):
    """Who signed in: an owner (SMS code), an enterprise's account, OEM staff (issue 15)."""

    OWNER = "owner"
    ENTERPRISE = "enterprise"
    STAFF = "staff"


class RevokeReason(StrEnum):
    LOGOUT = "logout"  # the person signed out
    REUSE = "reuse"  # a retired refresh token was presented again
    ADMIN = "admin"  # every session of the subject ended (account disabled, "sign out everywhere")


@dataclass(frozen=True)
class SessionPolicy:
    #: A session unused this long ends (each refresh extends it, never past ``max_age``).
    idle: timedelta = timedelta(days=14)
    #: A session ends this long after sign-in, however often it is refreshed.
    max_age: timedelta = timedelta(days=30)
    #: The refresh token retired by the last rotation is still accepted this long after it (the answer
    #: to a refresh may be lost on a weak network, or two tabs refresh at once): it rotates again.
    reuse_grace: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class StoredSession:
    """One session: the keyed hashes of its current refresh token and of the one it replaced."""

    session_id: str
    kind: SessionKind
    subject: str
    roles: tuple[str, ...]
    token_hash: str
    previous_hash: str | None
    generation: int
    created_at: datetime
    rotated_at: datetime
    idle_expires_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: RevokeReason | None = None

    def ends_at(self) -> datetime:
        return min(self.idle_expires_at, self.expires_at)


@dataclass(frozen=True)
class IssuedSession:
    """A session and its refresh token in clear: handed to the client once, never stored."""

    session: StoredSession
    refresh_token: str
    issued_at: datetime

    @property
    def refresh_expires_at(self) -> datetime:
        return self.session.ends_at()

    @property
    def refresh_expires_in(self) -> int:
        """Seconds from the issue until the session ends unless refreshed."""
        return max(0, int((self.session.ends_at() - self.issued_at).total_seconds()))


_TOKEN = re.compile(r"^(?P<sid>[0-9a-f]{32})\.(?P<secret>[A-Za-z0-9_-]{32,128})$")


def refresh_token(session_id: str, secret: str) -> str:
    return f"{session_id}.{secret}"


def session_of(token: str) -> str | None:
    """The session a refresh token names, or None when it is no refresh token at all."""
    found = _TOKEN.match(token.strip())
    return found.group("sid") if found else None


def hash_input(token: str) -> str:
    """What the keyed hash of a refresh token is taken of (a purpose prefix: no other hash collides)."""
    return "refresh-token:" + token.strip()


def _refused(code: str, zh: str, en: str) -> Unauthenticated:
    return Unauthenticated(code, zh, en, field="refresh_token")


def invalid_token() -> Unauthenticated:
    return _refused("auth.refresh_invalid", "登录已失效，请重新登录", "The refresh token is not valid")


def session_expired() -> Unauthenticated:
    return _refused("auth.session_expired", "登录已过期，请重新登录", "The session has ended")


def session_revoked(reason: RevokeReason | None) -> Unauthenticated:
    if reason is RevokeReason.REUSE:
        return _refused(
            "auth.session_reused",
            "为保护您的账号安全，已退出登录，请重新登录",
            "A refresh token was used twice: the session is revoked",
        )
    return _refused("auth.session_revoked", "您已退出登录，请重新登录", "The session was signed out")
