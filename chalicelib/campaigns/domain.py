"""The backfill campaign's words (补登记, 第二十二条): a campaign with a deadline, its waves of reminders,
the cards it targets, what happened to each card in each wave, and the call list for the cards a message
could not reach.

A card is a target (``Target``) while it is in service, not registered (nor pending) and its phone has not
opted out. A wave messages each target at most once (``SendRecord``, written conditionally per card and
wave); quiet hours (21:00–08:00 China time) defer a send, never drop it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum

CAMPAIGN_ID_PREFIX = "cp_"

#: The placeholders of a message template: the link is required (the owner must be able to act on the
#: message), the VIN's tail is required (the owner must know which car), the deadline is optional.
LINK_PLACEHOLDER = "{link}"
VIN_TAIL_PLACEHOLDER = "{vin_tail}"
DEADLINE_PLACEHOLDER = "{deadline}"
#: Characters of the VIN shown in a message: its last six (the rest stays out of an SMS).
VIN_TAIL_LENGTH = 6
#: Appended to every campaign SMS: how to stop them (a reply keyword, ``OPT_OUT_KEYWORDS``).
OPT_OUT_SUFFIX = " 回TD退订"
#: Replies that unsubscribe a phone from campaign messages (compared upper-cased, spaces removed).
OPT_OUT_KEYWORDS = frozenset({"TD", "T", "N", "退订", "取消", "STOP", "UNSUBSCRIBE"})


class CampaignStatus(StrEnum):
    ACTIVE = "active"  # its waves run at their times
    PAUSED = "paused"  # nothing is planned or sent until resumed; nothing is lost
    STOPPED = "stopped"  # final: schedules deleted, queued sends skipped
    COMPLETED = "completed"  # every wave ran


class WaveStatus(StrEnum):
    SCHEDULED = "scheduled"  # its schedule waits for its time
    RUNNING = "running"  # started: its shards are being planned and its messages sent
    PLANNED = "planned"  # every shard planned: every target's message is queued or recorded
    MISSED = "missed"  # its time had passed when the campaign was created: never run
    CANCELLED = "cancelled"  # the campaign was stopped before it ran


class Channel(StrEnum):
    SMS = "sms"  # through the SmsSender port
    CALL = "call"  # the call list: failed sends and cards with no phone go to a call centre


class SendStatus(StrEnum):
    CLAIMED = "claimed"  # the card's send in this wave is taken; the SMS is being sent
    SENT = "sent"
    SKIPPED = "skipped"  # see SkipReason
    FAILED = "failed"  # the provider refused every try: on the call list
    UNCONFIRMED = "unconfirmed"  # a sender stopped between taking the send and recording it: on the
    # call list rather than sent twice


class SkipReason(StrEnum):
    REGISTERED = "registered"  # registered (or pending) since the wave was planned
    NOT_IN_SERVICE = "not_in_service"
    OPTED_OUT = "opted_out"
    NO_PHONE = "no_phone"  # no contact phone: on the call list
    SUPERSEDED = "superseded"  # a later wave of the campaign started before this send
    STOPPED = "stopped"  # the campaign was stopped
    MESSAGED_TODAY = "messaged_today"  # an earlier wave messaged the card this China day (waves overlap)


class CallReason(StrEnum):
    SEND_FAILED = "send_failed"
    NO_PHONE = "no_phone"
    UNCONFIRMED = "unconfirmed"


class CallOutcome(StrEnum):
    REACHED = "reached"  # spoke to the user, who will register
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"
    DECLINED = "declined"  # the user refuses (recorded; the card stays a target)
    REGISTERED = "registered"  # the card was registered by the time of the call


@dataclass(frozen=True)
class QuietHours:
    """No campaign message between ``start`` and ``end`` China time (the span crosses midnight)."""

    start: time = time(21, 0)
    end: time = time(8, 0)


@dataclass(frozen=True)
class Wave:
    index: int  # 1-based, in time order
    days_before: int  # days before the deadline
    scheduled_at: datetime  # UTC, aware; moved to the end of quiet hours when it fell inside them
    status: WaveStatus = WaveStatus.SCHEDULED
    deferred: bool = False  # its time fell in quiet hours and was moved
    started_at: datetime | None = None
    planned_at: datetime | None = None


@dataclass(frozen=True)
class Campaign:
    campaign_id: str  # cp_<24 hex>
    name: str
    deadline: date  # China date by which the cards must be registered
    waves: tuple[Wave, ...]
    template: str
    channels: tuple[Channel, ...]
    rate_per_second: int
    quiet_hours: QuietHours
    send_time: time  # China time of day a wave starts
    attribution_days: int  # a registration within this many days of a message counts for its wave
    status: CampaignStatus
    created_by: str  # staff subject
    created_at: datetime
    updated_at: datetime
    current_wave: int = 0  # the latest wave started (0: none yet)
    version: int = 1

    def wave(self, index: int) -> Wave:
        return next(w for w in self.waves if w.index == index)


@dataclass(frozen=True)
class Target:
    """A card in service and not registered, as the backfill index (or the card itself) holds it."""

    iccid: str
    vin: str
    state: str  # the card's CardState value
    in_service_since: date | None
    contact_phone_hash: str | None  # keyed hash of the sales record's contact phone
    contact_phone_sealed: str | None  # the contact phone, sealed (deps.sealer()); None: no phone
    #: Whether the card is in the backfill index now: a retired card (scrapped, swapped out) is
    #: unregistered and in service by its facts, but out of the index and no target.
    indexed: bool = True


@dataclass(frozen=True)
class SendRecord:
    """What one wave did with one card (one record per card and wave, created conditionally)."""

    iccid: str
    campaign_id: str
    wave: int
    status: SendStatus
    at: datetime
    reason: SkipReason | None = None
    message_id: str | None = None
    attempts: int = 0
    registered_at: datetime | None = None  # the card's registration attributed to this message


@dataclass(frozen=True)
class WaveProgress:
    campaign_id: str
    wave: int
    targeted: int = 0  # targets the plan queued
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # SkipReason value → count
    failed: int = 0
    called: int = 0  # call list entries with an outcome recorded
    registered: int = 0  # registrations attributed to this wave's messages
    deferred: int = 0  # sends put off by quiet hours (a send may be deferred more than once)


@dataclass(frozen=True)
class CallEntry:
    campaign_id: str
    wave: int
    iccid: str
    vin: str
    reason: CallReason
    created_at: datetime
    contact_phone_sealed: str | None
    outcome: CallOutcome | None = None
    outcome_at: datetime | None = None
    outcome_by: str | None = None  # staff subject
    note: str | None = None


@dataclass(frozen=True)
class OptOut:
    phone_hash: str
    at: datetime
    via: str  # "reply" (a keyword answered to a campaign SMS) or "link" (the owner's page)
    campaign_id: str | None = None


@dataclass(frozen=True)
class InServiceFacts:
    """What the OEM's in-service feed says of one card: since when its vehicle is in use, and the sales
    record's contact phone (keyed hash and sealed text; None when the feed gave none)."""

    in_service_since: date
    contact_phone_hash: str | None = None
    contact_phone_sealed: str | None = None
