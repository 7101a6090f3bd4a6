"""Ports of the verification flows' state: flows, attempt counters, liveness sessions, review cases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime

from chalicelib.domain.flows import AttemptsLeft, Flow, LivenessSession, ReviewCase, ReviewStatus


class FlowRepository(ABC):
    @abstractmethod
    def create(self, flow: Flow) -> None: ...

    @abstractmethod
    def get(self, flow_id: str) -> Flow | None: ...

    @abstractmethod
    def save(self, flow: Flow) -> Flow:
        """Store ``flow`` (its ``version`` one above the stored one) or raise Conflict ``flow.changed``."""

    @abstractmethod
    def expired(self, now: datetime, limit: int) -> list[Flow]:
        """Up to ``limit`` flows whose ``expires_at`` has passed (abandoned: never kept by a submission)."""

    @abstractmethod
    def delete_expired(self, flow: Flow, now: datetime) -> bool:
        """Delete ``flow`` if it is still expired at ``now`` (False when it was kept meanwhile)."""


class AttemptCounters(ABC):
    @abstractmethod
    def consume(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int, expires_at: datetime
    ) -> AttemptsLeft:
        """Count one attempt against both quotas at once, or neither (``face.attempts_exhausted``)."""

    @abstractmethod
    def left(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int
    ) -> AttemptsLeft: ...


class LivenessSessions(ABC):
    @abstractmethod
    def create(self, session: LivenessSession) -> None: ...

    @abstractmethod
    def get(self, session_id: str) -> LivenessSession | None: ...

    @abstractmethod
    def claim(self, session_id: str, now: datetime) -> bool:
        """Mark the session used if it is unused and unexpired; False when someone else got there first."""


class ReviewCases(ABC):
    @abstractmethod
    def open(self, case: ReviewCase) -> ReviewCase:
        """Create the case, or return the one already open under the same id."""

    @abstractmethod
    def get(self, case_id: str) -> ReviewCase | None: ...

    @abstractmethod
    def page(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        """Cases of ``status``, oldest first, a page at a time."""

    @abstractmethod
    def decide(
        self, case_id: str, status: ReviewStatus, by: str, note: str | None, at: datetime
    ) -> ReviewCase:
        """Decide an open case once; a decided case raises Conflict ``review.already_decided``."""
