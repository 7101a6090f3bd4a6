"""The operator push outbox (SPEC §6).

第八条(三)/第九条(三): the OEM sends the user, vehicle and card facts to the operator, which checks them
(一证多卡, 第十一条) and only then opens the card's minimal necessary functions (第十四条). A card is
``registered`` when the operator's answer says so, never before. Every push is an outbox record written
in the same transaction as the card change that caused it, so a crash never loses or duplicates one.

Pure domain: records, the retry policy and what one commit writes; no I/O. The card's own bookkeeping
(``CardLifecycle``) and the one-ID limit are the cards domain's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.cards.domain.inventory import Card, CardEvent, CardFunction, CardState, functions_for
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import OperatorCallback, PushMessage


class OutboxStatus(StrEnum):
    """Where one push stands."""

    PENDING = "pending"  # committed with its card change; to be pushed, or waiting for its retry
    SENT = "sent"  # the operator acknowledged receipt; its decision comes by callback
    ACCEPTED = "accepted"  # the operator accepted (final)
    REJECTED = "rejected"  # the operator refused, with a reason (final)
    DEAD = "dead"  # given up: retries exhausted or the request refused; waits for an admin retry
    SUPERSEDED = "superseded"  # a later change of the card made it moot before it was pushed (final)


#: Statuses an admin can list (the open ones); the others are final.
LISTABLE_STATUSES = (OutboxStatus.PENDING, OutboxStatus.SENT, OutboxStatus.DEAD)


FINAL_STATUSES = frozenset({OutboxStatus.ACCEPTED, OutboxStatus.REJECTED, OutboxStatus.SUPERSEDED})


#: Final records are kept this long (they hold sealed personal data: no longer than useful).
FINAL_RECORD_RETENTION_DAYS = 180


#: Callback ids are remembered this long; later duplicates still change nothing (the message is decided).
CALLBACK_MEMORY_DAYS = 30


class OutboxSummary(BaseModel):
    """An outbox record without its message (no personal data): what lists and admins see."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    kind: PushKind
    iccid: str
    operator: Operator
    status: OutboxStatus
    attempts: int = 0
    next_attempt_at: datetime
    #: While pending: when the sweeper should look at it if nobody pushed it by then.
    sweep_at: datetime | None = None
    claim_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None
    operator_ref: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class OutboxRecord(OutboxSummary):
    """One push to the operator; ``record_id`` is the message's idempotency key end to end."""

    message: PushMessage


@dataclass(frozen=True)
class Claim:
    """A record taken by one dispatcher for one attempt; ``token`` proves it when marking the result."""

    record: OutboxRecord
    token: str


class OutboxPage(BaseModel):
    items: list[OutboxSummary]
    cursor: str | None = None


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter: the n-th retry waits uniformly in [0, min(cap, base·2ⁿ⁻¹)].

    Full jitter spreads the retries of many records failing together (an operator outage) instead of
    sending them back in waves. ``cap_seconds`` is at most SQS's longest message delay (15 minutes).
    """

    model_config = ConfigDict(frozen=True)

    base_seconds: float = Field(default=2.0, gt=0)
    cap_seconds: float = Field(default=900.0, gt=0, le=900)
    #: Push attempts before a record is dead.
    max_attempts: int = Field(default=8, ge=1)
    #: How long a claimed record is reserved for its dispatcher (longer than a push can take).
    lease_seconds: float = Field(default=120.0, gt=0)
    #: How late a pending record may be before the sweeper enqueues it again.
    sweep_grace_seconds: float = Field(default=30.0, gt=0)
    #: A push to an operator the stage has not configured yet (no URL, no keys) waits this long before
    #: the sweeper tries it again (no attempt is spent while it waits).
    unconfigured_wait_seconds: float = Field(default=60.0, gt=0)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait after the ``attempt``-th failed attempt (1-based)."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        return float(min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 60)))

    def next_delay(self, attempts_made: int, rng: random.Random) -> int | None:
        """Whole seconds to wait before the next attempt, or None when no attempt is left."""
        if attempts_made >= self.max_attempts:
            return None
        return math.ceil(rng.uniform(0, self.ceiling(attempts_made)))


def requested_functions(kind: PushKind) -> list[CardFunction]:
    """What a push asks the operator to open: the minimal necessary ones (第十四条)."""
    if kind is PushKind.DEREGISTER:
        return functions_for(CardState.UNREGISTERED)
    return functions_for(CardState.REGISTERED)


def opened_functions(
    requested: Iterable[CardFunction], reported: Iterable[CardFunction]
) -> list[CardFunction]:
    """What the card has once accepted: what the operator reports opening (all requested if it does
    not say), never more than requested, and always the emergency functions."""
    asked = list(requested)
    said = set(reported) or set(asked)
    kept = {CardFunction.EMERGENCY} | (said & set(asked))
    return [f for f in CardFunction if f in kept]


class CallbackNote(StrEnum):
    """What became of one operator callback."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same callback_id again
    STALE = "stale"  # answers an older message than the card's current one
    ALREADY_DECIDED = "already_decided"  # the message was answered before
    UNKNOWN = "unknown"  # no such message, or it names another card or operator
    RECORDED = "recorded"  # a spot check, written to the card's history


class DuplicateCallback(Exception):
    """The callback id was seen before (raised by the store when its commit finds it)."""


@dataclass(frozen=True)
class CardWrite:
    """Move ``before`` (as read: its version and state guard the write) to ``after`` with ``events``.

    ``after.version`` is ``before.version + len(events)``: each event's ``seq`` is the version it made.
    ``lifecycle`` replaces the card's bookkeeping when given (it is written under the same guard).
    ``ended_claims``: parties whose claim on the card ends with this write without their ever holding
    it (a transfer's buyer the operator refused): their service ends too (retention, 第十八条).
    """

    before: Card
    after: Card
    events: tuple[CardEvent, ...]
    lifecycle: CardLifecycle | None = None
    ended_claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class CounterMove:
    """Change the count of active cards of ``id_hash`` with ``operator``; with ``limit``, the increment is
    refused (the whole commit with it) when the count is already at the limit."""

    id_hash: str
    operator: Operator
    delta: int
    limit: int | None = None


@dataclass(frozen=True)
class SeenCallback:
    callback: OperatorCallback
    note: CallbackNote
    at: datetime


@dataclass(frozen=True)
class RecordDecision:
    """The operator's answer to one record (accepted or rejected)."""

    record_id: str
    status: OutboxStatus
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class OutboxCommit:
    """Everything one use case writes, in one transaction: all of it or none."""

    cards: tuple[CardWrite, ...] = ()
    records: tuple[OutboxRecord, ...] = ()
    counters: tuple[CounterMove, ...] = ()
    callback: SeenCallback | None = None
    decision: RecordDecision | None = None
