"""Ports of the operator push: the gateway to each operator, the outbox store, the push queue and the
source of the operators' keys."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from chalicelib.cards.domain.lifecycle import CardLifecycle
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import (
    OperatorCardRecord,
    OperatorUnavailable,
    PushMessage,
    PushReceipt,
    PushStatus,
)
from chalicelib.operators.domain.outbox import (
    Claim,
    OutboxCommit,
    OutboxPage,
    OutboxRecord,
    OutboxStatus,
    OutboxSummary,
)
from chalicelib.operators.keys import OperatorKeys


class OperatorGateway(ABC):
    """Sends messages to one or more operators (chosen from the card's ICCID/operator)."""

    @abstractmethod
    def push(self, message: PushMessage) -> PushReceipt:
        """Deliver ``message``; idempotent on ``message_id``.

        Raises ``OperatorUnavailable`` (retry later) or ``OperatorRefused`` (never retry).
        """

    def query_status(self, operator: Operator, message_id: str) -> PushStatus:
        """What ``operator`` knows of ``message_id``: never received, received, or decided (with the
        decision its callback carries). Asked for a push whose callback never came.

        Raises ``OperatorUnavailable`` or ``OperatorRefused`` like ``push``; a gateway that cannot ask
        raises ``OperatorUnavailable`` (the push stays as it is, reported as drift).
        """
        raise OperatorUnavailable(f"{operator.value}: this gateway has no status query")


class OperatorDirectory(ABC):
    """Reads what an operator holds per card, page by page (periodic reconciliation)."""

    @abstractmethod
    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        """One page of the operator's cards in ICCID order, and the cursor of the next (None at the end).

        Raises ``OperatorUnavailable`` or ``OperatorRefused`` like ``OperatorGateway.push``.
        """


class OutboxStore(ABC):
    """The outbox records, the cards' lifecycle bookkeeping and the cards-per-ID counts.

    ``commit`` writes card changes, their history, outbox records and counts in one transaction.
    """

    @abstractmethod
    def commit(self, change: OutboxCommit) -> None:
        """Write ``change`` atomically.

        Raises ``Conflict`` ``card.changed`` when a card moved since it was read,
        ``registration.cards_per_id_exceeded`` when a limited count is full, ``DuplicateCallback`` when
        the callback was seen before.
        """

    @abstractmethod
    def lifecycle(self, iccid: str) -> CardLifecycle:
        """The card's bookkeeping (empty when it never had any)."""

    @abstractmethod
    def lifecycles(self, iccids: Sequence[str]) -> dict[str, CardLifecycle]:
        """Batch read: every requested card, empty bookkeeping for those without any."""

    @abstractmethod
    def active_cards(
        self, operator: Operator, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """ICCIDs of the operator's cards that are pending or registered through the lifecycle, a page."""

    @abstractmethod
    def cards_per_id(self, id_hash: str, operator: Operator) -> int: ...

    @abstractmethod
    def callback_seen(self, callback_id: str) -> bool: ...

    @abstractmethod
    def get(self, record_id: str) -> OutboxRecord | None: ...

    @abstractmethod
    def claim(self, record_id: str, now: datetime, lease_until: datetime, sweep_at: datetime) -> Claim | None:
        """Take a pending, due, unclaimed record for one attempt (counted); None if it is not takeable."""

    @abstractmethod
    def settle(
        self,
        claim: Claim,
        status: OutboxStatus,
        now: datetime,
        *,
        note: str | None = None,
        operator_ref: str | None = None,
    ) -> bool:
        """End the attempt as sent, dead or superseded; False if the claim was lost or the record decided."""

    @abstractmethod
    def mark_retry(
        self, claim: Claim, next_attempt_at: datetime, sweep_at: datetime, error: str, now: datetime
    ) -> bool:
        """Back to pending, due at ``next_attempt_at``; False if the claim was lost."""

    @abstractmethod
    def mark_waiting(self, claim: Claim, until: datetime, reason: str, now: datetime) -> bool:
        """Back to pending without spending the claim's attempt (the operator is not configured): no
        message is queued, the sweeper takes it again at ``until``; False if the claim was lost."""

    @abstractmethod
    def due(self, now: datetime, limit: int) -> list[OutboxSummary]:
        """Pending records whose ``sweep_at`` has passed: nobody pushed them in time."""

    @abstractmethod
    def rearm(self, record_id: str, seen_sweep_at: datetime, sweep_at: datetime) -> bool:
        """Push a due record's ``sweep_at`` on (only if still pending at ``seen_sweep_at``)."""

    @abstractmethod
    def revive(self, record_id: str, now: datetime, sweep_at: datetime) -> OutboxSummary | None:
        """A dead record back to pending with a fresh attempt budget (admin retry); None if not dead."""

    def sent_before(self, before: datetime, limit: int, cursor: str | None) -> OutboxPage:
        """Sent records delivered at or before ``before`` (the open-status index's time), oldest first
        per shard: what the reconciliation asks the operator about, never the whole table."""
        raise NotImplementedError

    def reopen_sent(
        self,
        record_id: str,
        status: OutboxStatus,
        now: datetime,
        note: str,
        *,
        sweep_at: datetime | None = None,
    ) -> OutboxSummary | None:
        """A sent record the operator never received: back to ``pending`` (a fresh attempt budget, due
        now, swept at ``sweep_at``) or ``dead``, with ``note`` in ``last_error``; None if not sent."""
        raise NotImplementedError

    @abstractmethod
    def page(self, status: OutboxStatus, limit: int, cursor: str | None) -> OutboxPage: ...

    @abstractmethod
    def count(self, status: OutboxStatus) -> int: ...


class PushQueue(ABC):
    """The queue that wakes the dispatcher (SQS); messages carry record ids only, never personal data."""

    @abstractmethod
    def send_message(self, body: str, delay_seconds: int = 0) -> None: ...

    @abstractmethod
    def acknowledge(self, receipt_handles: Sequence[str]) -> None:
        """Delete handled messages (Lambda's event source does this itself; the local worker does not)."""


class OperatorKeySource(ABC):
    """Where the keys come from. Senders use ``current``; receivers ``find`` the version a request names."""

    @abstractmethod
    def current(self, operator: Operator) -> OperatorKeys:
        """The current keys; raises :class:`OperatorKeysUnavailable`."""

    def find(self, operator: Operator, key_id: str) -> OperatorKeys | None:
        """The version called ``key_id`` if it is still accepted, else None."""
        keys = self.current(operator)
        return keys if keys.key_id == key_id else None
