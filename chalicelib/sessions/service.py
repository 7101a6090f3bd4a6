"""Open, refresh (rotating) and revoke sessions; the refresh token is stored only as a keyed hash."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable, Iterable

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.sessions.domain import (
    IssuedSession,
    RevokeReason,
    SessionKind,
    SessionPolicy,
    StoredSession,
    hash_input,
    invalid_token,
    refresh_token,
    session_expired,
    session_of,
    session_revoked,
)
from chalicelib.sessions.ports import SessionStore

#: Re-reads when two refreshes of one session race.
_RACE_RETRIES = 3


class Sessions:
    def __init__(
        self,
        store: SessionStore,
        hasher: KeyedHasher,
        *,
        policy: SessionPolicy | None = None,
        clock: Clock = utc_now,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._policy = policy or SessionPolicy()
        self._clock = clock
        self._new_secret = new_secret

    @property
    def policy(self) -> SessionPolicy:
        return self._policy

    def _hash(self, token: str) -> str:
        return self._hasher.digest(hash_input(token))

    def open(self, kind: SessionKind, subject: str, roles: Iterable[str]) -> IssuedSession:
        """A new session of ``subject`` with ``roles`` (what each access token it mints carries)."""
        now = self._clock()
        session_id = uuid.uuid4().hex
        token = refresh_token(session_id, self._new_secret())
        session = StoredSession(
            session_id=session_id,
            kind=kind,
            subject=subject,
            roles=tuple(sorted(set(roles))),
            token_hash=self._hash(token),
            previous_hash=None,
            generation=1,
            created_at=now,
            rotated_at=now,
            idle_expires_at=now + self._policy.idle,
            expires_at=now + self._policy.max_age,
        )
        self._store.create(session)
        return IssuedSession(session, token, now)

    def refresh(self, token: str) -> IssuedSession:
        """A new refresh token for the session ``token`` is the current one of (or, within the grace,
        the one just retired); ``token`` is retired. A token retired earlier revokes the session."""
        session_id = session_of(token)
        if session_id is None:
            raise invalid_token()
        presented = self._hash(token)
        for _ in range(_RACE_RETRIES):
            session = self._store.get(session_id)
            if session is None:
                raise invalid_token()  # never was, or ended and purged
            now = self._clock()
            if session.revoked_at is not None:
                raise session_revoked(session.revoked_reason)
            if now >= session.ends_at():
                raise session_expired()
            current = hmac.compare_digest(presented, session.token_hash)
            just_retired = (
                session.previous_hash is not None
                and hmac.compare_digest(presented, session.previous_hash)
                and now - session.rotated_at <= self._policy.reuse_grace
            )
            if not (current or just_retired):
                # A retired token (or a forged secret for a real session): whoever holds the current
                # one may be an attacker or the owner; neither keeps the session.
                self._store.revoke(session_id, now, RevokeReason.REUSE)
                raise session_revoked(RevokeReason.REUSE)
            new_token = refresh_token(session_id, self._new_secret())
            idle_until = min(now + self._policy.idle, session.expires_at)
            if self._store.rotate(session, self._hash(new_token), now, idle_until):
                rotated = self._store.get(session_id)
                assert rotated is not None
                return IssuedSession(rotated, new_token, now)
        raise invalid_token()  # kept changing under us: the client signs in again

    def revoke(self, token: str) -> None:
        """Sign out: the session of ``token`` ends (a token not current revokes it as a reuse)."""
        session_id = session_of(token)
        if session_id is None:
            return
        session = self._store.get(session_id)
        if session is None or session.revoked_at is not None:
            return
        presented = self._hash(token)
        known = hmac.compare_digest(presented, session.token_hash) or (
            session.previous_hash is not None and hmac.compare_digest(presented, session.previous_hash)
        )
        self._store.revoke(session_id, self._clock(), RevokeReason.LOGOUT if known else RevokeReason.REUSE)

    def revoke_subject(self, subject: str) -> int:
        """End every session of ``subject`` (sign out everywhere, an account disabled): how many ended."""
        ended = 0
        now = self._clock()
        for session_id in self._store.of_subject(subject):
            session = self._store.get(session_id)
            if session is not None and session.revoked_at is None:
                self._store.revoke(session_id, now, RevokeReason.ADMIN)
                ended += 1
        return ended

    def get(self, session_id: str) -> StoredSession | None:
        return self._store.get(session_id)
