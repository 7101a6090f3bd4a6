"""A card's registration lifecycle beside its state (SPEC §6): the change the operator was asked to make,
the names of the history entries, why a card may be retired, and the bookkeeping record.

第十三条: transfer (过户), scrap (报废) and part replacement (更换零部件) end the old registration; scrap and
part replacement retire the card for good.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class PushKind(StrEnum):
    """What the operator is asked to do."""

    REGISTER = "register"  # 实名登记: bind the card to the holder, open the requested functions
    DEREGISTER = "deregister"  # 实名注销: end the binding, back to emergency-only
    TRANSFER = "transfer"  # 过户: end the old holder's binding, bind the new holder
    #: 抽查 (第十条): the OEM's answer to an operator's spot check; the card itself does not change.
    SPOT_CHECK_ANSWER = "spot_check_answer"
    #: 实际使用人 (第九条(四)): an enterprise card's actual user recorded or changed; the card stays.
    ACTUAL_USER = "actual_user"


class LifecycleEvent(StrEnum):
    """Names of the card history entries the lifecycle writes (``CardEvent.event``)."""

    REGISTRATION_SUBMITTED = "registration_submitted"
    REGISTRATION_ACCEPTED = "registration_accepted"
    REGISTRATION_REJECTED = "registration_rejected"
    DEREGISTRATION_REQUESTED = "deregistration_requested"  # 实名注销 pushed: registered until answered
    DEREGISTERED = "deregistered"
    EMERGENCY_ONLY = "emergency_only"  # back to emergency functions only (第十四条)
    DEREGISTRATION_CONFIRMED = "deregistration_confirmed"
    DEREGISTRATION_REFUSED = "deregistration_refused"
    TRANSFER_OPENED = "transfer_opened"  # 过户 at a dealer's request: the buyer's phone shows possession
    TRANSFER_REQUESTED = "transfer_requested"
    TRANSFERRED = "transferred"
    TRANSFER_REJECTED = "transfer_rejected"
    SPOT_CHECK = "spot_check"  # 抽查 (第十条)
    SCRAPPED = "scrapped"
    SWAPPED_OUT = "swapped_out"
    SWAPPED_IN = "swapped_in"


#: The ``transferred`` history entry's reason names the old and the new holder's party, so that the end
#: of the seller's service (第十八条: kept two years after it) is read from the history alone: the entry's
#: ``at`` is the end, ``transferred_from`` its party.
TRANSFERRED_REASON = "过户 transfer: from party {old} to party {new}"


def transferred_reason(old_party_id: str | None, new_party_id: str | None) -> str:
    return TRANSFERRED_REASON.format(old=old_party_id or "-", new=new_party_id or "-")


def transferred_from(reason: str | None) -> str | None:
    """The old holder's party id a ``transferred`` entry's reason names (``None`` if it names none)."""
    prefix = TRANSFERRED_REASON.split("{old}")[0]
    if not reason or not reason.startswith(prefix):
        return None
    party = reason[len(prefix) :].split(" ", 1)[0]
    return None if party == "-" else party


class Retirement(StrEnum):
    """Why a card may never be registered again."""

    SCRAPPED = "scrapped"  # 报废: the vehicle was scrapped
    SWAPPED_OUT = "swapped_out"  # 更换零部件: the part holding the card was replaced


class CardLifecycle(BaseModel):
    """A card's registration bookkeeping beside its state: its current push, whose registration it is
    (as a keyed hash of the ID, for the one-ID count), a transfer in progress, whether it is retired,
    and the operator's last refusal (shown to the user)."""

    model_config = ConfigDict(frozen=True)

    iccid: str
    message_id: str | None = None  # the card's current push: callbacks for older ones are ignored
    message_kind: PushKind | None = None
    awaiting: bool = False  # the current push has no answer yet
    holder_id_hash: str | None = None
    holder_counted: bool = False  # holds one of the holder's cards-per-ID slots
    pending_holder_id: str | None = None  # transfer: the new holder (party id) until accepted
    pending_holder_id_hash: str | None = None
    pending_counted: bool = False
    retired: Retirement | None = None
    retired_at: datetime | None = None
    reason_code: str | None = None
    reason_zh: str | None = None
    reason_en: str | None = None
    updated_at: datetime | None = None
