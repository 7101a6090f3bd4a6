"""Ports of backfill campaigns: the index of targets, the campaigns, their schedules, what each wave did
per card, the send rate, the opt-outs and the call list. Adapters: ``chalicelib.adapters.dynamo.campaigns``
(and ``.backfill`` for the targets), ``chalicelib.adapters.scheduler``; fakes in ``tests/fakes/campaigns.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.campaigns.domain import (
    CallEntry,
    CallOutcome,
    Campaign,
    InServiceFacts,
    OptOut,
    SendRecord,
    SendStatus,
    SkipReason,
    Target,
    WaveProgress,
)
from chalicelib.cards.domain.inventory import Card, CardEvent


class BackfillTargets(ABC):
    """The sparse index of cards in service and not registered (``cards`` index ``by-backfill``)."""

    @abstractmethod
    def page(self, shard: str, cursor: str | None, limit: int) -> tuple[list[Target], str | None]:
        """Up to ``limit`` targets of ``shard`` after ``cursor`` (opaque), and the next cursor (None: the
        shard is done). One index item read per target; never a Scan."""

    @abstractmethod
    def current(self, iccids: Iterable[str]) -> dict[str, Target | None]:
        """The cards as they are now (batch reads): a card no longer a target (registered, pending, out of
        service) is returned with its state; an unknown ICCID maps to None."""

    @abstractmethod
    def of_owner(self, subject: str) -> list[Target]:
        """The targets whose sales record's contact phone is the signed-in owner's: the card's
        ``contact_subject`` is ``sms.domain.subject_for(contact phone hash)``, the owner's token subject
        (index ``by-contact``). The owner's in-app notice."""

    def count(self, shard: str) -> int:
        """The targets of ``shard`` now (the plan's estimate). This default pages through the shard; an
        index that can count without reading items (a ``Select=COUNT`` query) says so by overriding it."""
        total, cursor = 0, None
        while True:
            found, cursor = self.page(shard, cursor, 1000)
            total += len(found)
            if cursor is None:
                return total


class CampaignStore(ABC):
    @abstractmethod
    def create(self, campaign: Campaign) -> None: ...

    @abstractmethod
    def get(self, campaign_id: str) -> Campaign | None: ...

    @abstractmethod
    def list(self, cursor: str | None = None, limit: int = 50) -> tuple[list[Campaign], str | None]:
        """Newest first."""

    @abstractmethod
    def save(self, campaign: Campaign) -> Campaign:
        """Write ``campaign`` if the stored one is still at ``campaign.version``; the saved copy has
        ``version + 1``. Raises ``Conflict`` (``campaign.changed``) otherwise."""


class WaveScheduler(ABC):
    """One schedule per wave (EventBridge Scheduler, one-time ``at()``; the local worker fires them)."""

    @abstractmethod
    def schedule(self, campaign_id: str, wave: int, at: datetime) -> str:
        """Create (or replace) the wave's schedule; its target sends the wave's start message to the
        campaign waves queue at ``at``. Returns the schedule's name."""

    @abstractmethod
    def cancel(self, campaign_id: str, wave: int) -> None:
        """Delete the wave's schedule (nothing if there is none)."""


class SendLedger(ABC):
    """Per card and wave: what was done (conditional writes), and the wave's counters and plan cursors."""

    @abstractmethod
    def claim(self, campaign_id: str, wave: int, iccid: str, at: datetime) -> SendRecord | None:
        """Take the card's send in this wave: a new ``claimed`` record, or None when a record exists
        already (whatever its status: the card was handled by this wave)."""

    @abstractmethod
    def finish(
        self,
        record: SendRecord,
        status: SendStatus,
        at: datetime,
        *,
        reason: SkipReason | None = None,
        message_id: str | None = None,
        attempts: int = 0,
    ) -> SendRecord:
        """Record the outcome of a claimed send (only a ``claimed`` record moves)."""

    @abstractmethod
    def skip(self, campaign_id: str, wave: int, iccid: str, reason: SkipReason, at: datetime) -> bool:
        """Record a skip without a claim; False when the card already has a record in this wave."""

    @abstractmethod
    def records_of(self, iccid: str) -> list[SendRecord]:
        """Every record of one card (all campaigns and waves): the attribution of its registration."""

    @abstractmethod
    def mark_registered(self, record: SendRecord, at: datetime) -> bool:
        """Attribute the card's registration to this sent record once (False if attributed already)."""

    @abstractmethod
    def count(self, campaign_id: str, wave: int, **counts: int) -> None:
        """Add to the wave's counters: ``targeted``, ``sent``, ``failed``, ``called``, ``registered``,
        ``deferred``, and ``skipped_<reason>``."""

    @abstractmethod
    def progress(self, campaign_id: str, wave: int) -> WaveProgress: ...

    @abstractmethod
    def plan_cursor(self, campaign_id: str, wave: int, shard: str) -> tuple[str | None, bool]:
        """The shard's saved cursor and whether the shard is planned."""

    @abstractmethod
    def save_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, cursor: str | None, done: bool
    ) -> None: ...

    @abstractmethod
    def advance_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, after: str | None, cursor: str | None, done: bool
    ) -> bool:
        """Move the shard's cursor from ``after`` (the cursor the planner continued from; None: the shard
        never planned) to ``cursor``, only if it is still there: False when another planner of the shard
        (a plan message delivered twice, a resume while a plan ran) moved it first."""


class RateLimiter(ABC):
    """A token bucket shared by every sender of a campaign."""

    @abstractmethod
    def acquire(self, key: str, tokens: int, rate_per_second: float, now: float) -> float:
        """Take ``tokens`` if the bucket holds them (refilled at ``rate_per_second``, holding at most one
        second's worth) and return 0.0; otherwise take nothing and return the seconds to wait."""


class OptOutChange(StrEnum):
    """What recording an opt-out did."""

    RECORDED = "recorded"  # the phone is opted out from now on
    ALREADY = "already"  # it was opted out already: the opt-out in force is kept as it was
    SUPERSEDED = "superseded"  # the phone opted in after the time it yields to: nothing changed


#: The lines an opt-out record's history keeps, the newest (an older line is dropped by the write that
#: passes the bound, or the next one): a phone toggled without end never fills its item.
HISTORY_KEEP = 50


class OptOuts(ABC):
    """One record per phone (keyed hash): the opt-out in force, the latest opt-in, and the newest
    ``HISTORY_KEEP`` changes in the record's history (an opt-in no longer forgets the phone: a reply
    older than it must not opt the phone out again). Beside them, the reply callbacks handled lately
    (``claim_reply``), so that one delivered twice acts once."""

    @abstractmethod
    def opt_out(self, record: OptOut, *, yields_to: datetime | None = None) -> OptOutChange:
        """Opt the phone out unless it is already (the opt-out in force kept). ``yields_to``: nothing
        changes when the phone's latest opt-in is later than it (a reply sent well before the owner's
        later choice; the owner's own link yields to nothing)."""

    @abstractmethod
    def opted_out(self, phone_hashes: Iterable[str]) -> set[str]:
        """Which of these phones are opted out now (batch reads)."""

    @abstractmethod
    def opt_in(self, phone_hash: str, at: datetime) -> bool:
        """End the phone's opt-out (the owner asked for messages again), keeping ``at`` as its latest
        opt-in and the opt-out in its history (False: it was not opted out)."""

    @abstractmethod
    def claim_reply(self, digest: str, at: datetime, until: datetime) -> bool:
        """Take the reply callback named by ``digest`` (a hash of what the provider signed) by a
        conditional write, kept until ``until``: False when it was taken already and has not expired
        (the same callback delivered again, or replayed: it must change nothing)."""

    @abstractmethod
    def release_reply(self, digest: str) -> None:
        """Give a claimed callback back (its handling failed: the provider's next delivery acts)."""


class CallList(ABC):
    @abstractmethod
    def add(self, entry: CallEntry) -> bool:
        """Add the entry once per campaign, wave and card (False if it is on the list already)."""

    @abstractmethod
    def page(
        self, campaign_id: str, *, wave: int | None, open_only: bool, cursor: str | None, limit: int
    ) -> tuple[list[CallEntry], str | None]: ...

    @abstractmethod
    def get(self, campaign_id: str, wave: int, iccid: str) -> CallEntry | None: ...

    @abstractmethod
    def record_outcome(
        self,
        entry: CallEntry,
        outcome: CallOutcome,
        by: str,
        at: datetime,
        note: str | None,
    ) -> tuple[CallEntry, bool]:
        """Record the call's outcome (a later outcome replaces an earlier one; each is kept in the
        entry's history) and whether it was the entry's first. The first outcome adds 1 to its wave's
        ``called`` counter (``SendLedger.count``) in the same atomic write: of two first outcomes at
        once one counts, and no crash leaves an outcome without its count."""


class CampaignQueue(ABC):
    """A queue of JSON messages (SQS): ``campaign-waves`` (wave starts, shard plans) and
    ``campaign-sends`` (targets to message). Adapter: ``chalicelib.adapters.campaign_queues``."""

    @abstractmethod
    def send(self, body: Mapping[str, Any], delay_seconds: int = 0) -> None:
        """Queue one message (delayed up to SQS's 15 minutes)."""

    @abstractmethod
    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """Queue many messages, ten to a request; raises if any of them was refused."""

    @abstractmethod
    def defer(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for ``seconds`` more (at most 12 hours): it comes back then."""


class InServiceCards(ABC):
    """The in-service facts carried on the card items (the feed's import writes them; the backfill
    index follows). Adapter: ``chalicelib.adapters.dynamo.backfill.DynamoInServiceCards``."""

    @abstractmethod
    def read(self, iccids: Iterable[str]) -> dict[str, tuple[Card, InServiceFacts | None]]:
        """The cards (batch reads) with the facts an earlier feed gave them; unknown ICCIDs are absent."""

    @abstractmethod
    def mark(self, card: Card, facts: InServiceFacts, event: CardEvent) -> Card:
        """Write ``facts`` on the card if it is still at ``card.version`` and state, append ``event``
        (``seq = version + 1``) to its history and set or remove its ``backfill_shard``, in one write.
        Raises ``Conflict`` (``card.changed``) when the card moved meanwhile."""
