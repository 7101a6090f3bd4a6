"""Where sessions are kept: every change conditional on the session as read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from chalicelib.sessions.domain import RevokeReason, StoredSession


class SessionStore(ABC):
    @abstractmethod
    def create(self, session: StoredSession) -> None: ...

    @abstractmethod
    def get(self, session_id: str) -> StoredSession | None:
        """The session (read consistently), or None once it ended and was purged, or never was."""

    @abstractmethod
    def rotate(
        self, session: StoredSession, token_hash: str, now: datetime, idle_expires_at: datetime
    ) -> bool:
        """Make ``token_hash`` the current token and the current one the previous, if ``session`` is
        still as read (same generation, not revoked); False when it changed meanwhile."""

    @abstractmethod
    def revoke(self, session_id: str, now: datetime, reason: RevokeReason) -> None:
        """End the session (a session already revoked keeps its first reason)."""

    @abstractmethod
    def of_subject(self, subject: str) -> list[str]:
        """The ids of the subject's sessions still kept (revoked or not)."""
