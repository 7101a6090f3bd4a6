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
    TRANSFER_REQUESTED = "transfer_requested"
    TRANSFERRED = "transferred"
    TRANSFER_REJECTED = "transfer_rejected"
    SPOT_CHECK = "spot_check"  # 抽查 (第十条)
    SCRAPPED = "scrapped"
    SWAPPED_OUT = "swapped_out"
    SWAPPED_IN = "swapped_in"


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
