"""Port of the operator push (数据推送): what the platform sends, what comes back.

A registration only counts once the card's operator has accepted it and opened the card's functions
(SPEC §6). The platform pushes one ``PushMessage`` per outbox record; the operator acknowledges
receipt at once (``PushReceipt``) and answers later through the callback endpoint
(``OperatorCallback``). ``message_id`` is the outbox record's id and the idempotency key end to end:
pushing the same message twice is accepted once, and the second receipt says ``duplicate``.

The wire format (field names, signing, encryption of personal fields) lives in one module,
``wire``; these models are the platform's side of it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.spot_check_codes import SpotCheckVerdict


class PushHolder(BaseModel):
    """The user facts of SPEC §2 (personal: encrypted on the wire and at rest in the outbox)."""

    model_config = ConfigDict(frozen=True)

    kind: HolderKind
    name: str  # person's or company's name
    id_type: str  # chalicelib.domain.validators kinds: resident_id, uscc, ...
    id_number: str
    address: str | None = None
    phone: str | None = None
    id_valid_until: str | None = None  # ISO date, None when permanent (长期)
    #: For an enterprise: the responsible person (车辆负责人) the cards are registered under.
    responsible_name: str | None = None
    responsible_id_type: str | None = None
    responsible_id_number: str | None = None


class PushVehicle(BaseModel):
    model_config = ConfigDict(frozen=True)

    vin: str
    engine_no: str
    brand: str
    model: str
    colour: str


class PushCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    iccid: str
    msisdn: str
    operator: Operator


class SpotCheckAnswer(BaseModel):
    """What a ``spot_check_answer`` push tells the operator: which spot check (its ``callback_id``),
    the verdict, the reviewer's note, and whether it came after the deadline."""

    model_config = ConfigDict(frozen=True)

    check_ref: str  # the operator's spot-check callback id
    verdict: SpotCheckVerdict
    note: str | None = Field(default=None, max_length=500)
    late: bool = False
    due_at: AwareDatetime
    answered_at: AwareDatetime


class ActualUserPeriod(BaseModel):
    """What an ``actual_user`` push tells the operator beside the user's facts (in ``holder``, encrypted
    like a holder's): which record of the enterprise's card it is, its period, and the record it ends
    (实际使用人, 第九条(四); the card's registration is unchanged)."""

    model_config = ConfigDict(frozen=True)

    record_ref: str = Field(min_length=1, max_length=64)  # the platform's id of the actual-user record
    valid_from: date
    valid_to: date | None = None  # None: open-ended
    ended_ref: str | None = Field(default=None, max_length=64)  # the record this one ends, if any


class PushMessage(BaseModel):
    """One request to the operator; ``message_id`` is the idempotency key (the outbox record id)."""

    model_config = ConfigDict(frozen=True)

    message_id: str = Field(min_length=8, max_length=64)
    kind: PushKind
    card: PushCard
    vehicle: PushVehicle
    holder: PushHolder | None  # None for a de-registration
    previous_holder_id_hash: str | None = None  # transfer / de-registration: whose binding ends
    #: The platform's keyed hash of the new holder's ID (``Holder.id_hash``): the operator keeps it with
    #: the card and lists it back (``OperatorCardRecord.holder_id_hash``) for reconciliation.
    holder_id_hash: str | None = None
    #: Minimal necessary functions only (第十四条): what the card should have once accepted.
    functions: list[CardFunction]
    created_at: AwareDatetime
    #: ``spot_check_answer`` only: the answer (no holder: the operator has the registration already).
    spot_check: SpotCheckAnswer | None = None
    #: ``actual_user`` only: the record and its period (``holder`` then holds the actual user's facts).
    actual_user: ActualUserPeriod | None = None


class PushReceipt(BaseModel):
    """The operator's immediate acknowledgement; the decision comes later by callback."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    operator_ref: str
    duplicate: bool = False


class CallbackOutcome(StrEnum):
    ACCEPTED = "accepted"  # registered: functions opened
    REJECTED = "rejected"  # with a reason the user is shown
    SPOT_CHECK = "spot_check"  # 抽查 (第十条): the operator asks for the registration's evidence


class OperatorCallback(BaseModel):
    """The operator's asynchronous answer to one message (after its signature was verified)."""

    model_config = ConfigDict(frozen=True)

    callback_id: str  # unique per callback: duplicates are ignored
    message_id: str
    operator: Operator
    iccid: str
    outcome: CallbackOutcome
    reason_code: str | None = None  # e.g. cards_per_id_exceeded, blacklisted
    reason_zh: str | None = None
    reason_en: str | None = None
    functions: list[CardFunction] = Field(default_factory=list)  # opened, when accepted
    decided_at: datetime
    #: A spot check's deadline for the OEM's answer, when the operator names one.
    answer_by: datetime | None = None


class OperatorUnavailable(Exception):
    """A retryable failure: timeout, connection refused, 5xx, 429. The dispatcher retries with backoff."""


class OperatorNotConfigured(OperatorUnavailable):
    """The stage has no endpoint URL or no usable keys for this operator yet (filled in at deploy): the
    push waits in the outbox, pending, without spending an attempt and never dead-lettered, until the
    setting is there. ``missing`` says what: ``"url"``, ``"keys"`` or ``"url, keys"``. (A kind of
    ``OperatorUnavailable``, so a caller that only knows that one, like reconciliation, tries later.)"""

    def __init__(self, operator: Operator, missing: str) -> None:
        super().__init__(f"operator not configured: {operator.value} ({missing})")
        self.operator = operator
        self.missing = missing


class OperatorRefused(Exception):
    """A permanent refusal of the request itself (4xx: bad signature, malformed): not retried; goes to
    the dead-letter path at once with this reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class OperatorCardState(StrEnum):
    """What the operator holds for a card (its side of reconciliation); values as ``CardState``'s."""

    REGISTERED = "registered"  # bound to a holder, the requested functions open
    DEREGISTERED = "deregistered"  # binding ended: emergency only


class OperatorCardRecord(BaseModel):
    """One card as the operator sees it. ``holder_id_hash`` is the platform's keyed hash that the push
    carried (``PushMessage.holder_id_hash``), never the ID number; None once de-registered."""

    model_config = ConfigDict(frozen=True)

    operator: Operator
    iccid: str
    state: OperatorCardState
    holder_id_hash: str | None = None
    functions: list[CardFunction] = Field(default_factory=list)
    message_id: str | None = None  # the last message that changed the card
    updated_at: datetime


class PushStatusState(StrEnum):
    """What the operator says of one message when asked (the status query)."""

    UNKNOWN = "unknown"  # it never received the message (lost on the way, or it forgot it)
    RECEIVED = "received"  # received, not decided yet
    DECIDED = "decided"  # decided: ``PushStatus.decision`` is the answer its callback carries


class PushStatus(BaseModel):
    """The operator's answer to a status query for one message (a push whose callback never came)."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    operator: Operator
    state: PushStatusState
    #: When decided: the decision as its callback carries it (same ``callback_id``), so applying it and
    #: then receiving the callback late changes nothing twice.
    decision: OperatorCallback | None = None
