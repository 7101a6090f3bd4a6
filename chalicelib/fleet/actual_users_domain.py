"""实际使用人 (第九条(四)): the enterprise records who actually uses each of its cards, and when.

An enterprise that registered its fleet's cards under its responsible person must "如实记录实际使用人":
each card has a history of actual users, each for a period ``[valid_from, valid_to)`` in China's calendar
(``valid_to`` None: until further notice). Periods of one card never overlap; a new user from a date ends
the user of the moment on that date. Dates in the future are allowed up to a day ahead (a hand-over
recorded the evening before), never further.

Pure rules: the record as kept (personal fields in clear here; sealed by the store), its masked view,
the period checks, and the refusals with their codes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from chalicelib.kernel.errors import Conflict, InvalidField, NotFound
from chalicelib.kernel.personal import IdType, mask_id_number, mask_name, mask_phone

#: The id of an actual-user record: ``au_`` and 24 hex digits.
RECORD_ID_PREFIX = "au_"

#: How far ahead of today (China) a period may start.
MAX_DAYS_AHEAD = 1

#: The personal fields of a record (sealed at rest, masked in answers).
PERSONAL_FIELDS = ("name", "id_number", "phone")


def new_record_id() -> str:
    return f"{RECORD_ID_PREFIX}{secrets.token_hex(12)}"


class PushState(StrEnum):
    """Where the operator stands with one record."""

    NOT_WANTED = "not_wanted"  # the card's operator does not ask for actual users: nothing is pushed
    PENDING = "pending"  # pushed (or about to be), the operator's answer not in yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"


PUSH_STATE_ZH = {
    PushState.NOT_WANTED: "运营商未要求报送",
    PushState.PENDING: "待运营商确认",
    PushState.ACCEPTED: "运营商已接收",
    PushState.REJECTED: "运营商已拒绝",
}


@dataclass(frozen=True)
class ActualUserInput:
    """What the enterprise types for a new actual user (the ID number already validated)."""

    name: str
    id_type: IdType
    id_number: str
    phone: str
    valid_from: date
    valid_to: date | None = None


@dataclass(frozen=True)
class ActualUser:
    """One actual user of one card for one period, as kept."""

    iccid: str
    record_id: str
    uscc: str
    name: str
    id_type: IdType
    id_number: str
    phone: str
    valid_from: date
    valid_to: date | None
    created_at: datetime
    created_by: str  # the account id that recorded it
    id_hash: str  # keyed hash of the ID type and number (look-ups, never the number)
    ended_at: datetime | None = None  # when its end was recorded (by a change or an end)
    ended_by: str | None = None
    push_state: PushState = PushState.PENDING
    push_record_id: str | None = None  # the outbox record of its last push
    push_reason: str | None = None  # the operator's reason, when refused
    version: int = 1

    def current_on(self, day: date) -> bool:
        """Whether this user uses the card on ``day``."""
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def masked(self) -> dict[str, str]:
        """The personal fields as every enterprise account sees them."""
        return {
            "name": mask_name(self.name),
            "id_number": mask_id_number(self.id_number),
            "phone": mask_phone(self.phone),
        }

    def clear(self) -> dict[str, str]:
        return {"name": self.name, "id_number": self.id_number, "phone": self.phone}


def _overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    """Whether the half-open periods ``[a_from, a_to)`` and ``[b_from, b_to)`` share a day."""
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def check_dates(valid_from: date, valid_to: date | None, today: date) -> None:
    """A period that can be recorded: it ends after it starts and starts at most a day ahead."""
    errors: list[InvalidField] = []
    if valid_from > today + timedelta(days=MAX_DAYS_AHEAD):
        errors.append(from_too_far_ahead(today))
    if valid_to is not None and valid_to <= valid_from:
        errors.append(period_reversed())
    if errors:
        raise errors[0]


def plan_change(history: Sequence[ActualUser], wanted: ActualUserInput, today: date) -> ActualUser | None:
    """Check the new period against ``history`` and return the record it ends: the latest one, when it
    is still open on the new start (it then ends on that date). Any other overlap is refused."""
    check_dates(wanted.valid_from, wanted.valid_to, today)
    to_end: ActualUser | None = None
    for kept in history:
        open_over_start = kept.valid_from < wanted.valid_from and (
            kept.valid_to is None or kept.valid_to > wanted.valid_from
        )
        if open_over_start and _is_latest(kept, history):
            to_end = kept
        elif _overlaps(kept.valid_from, kept.valid_to, wanted.valid_from, wanted.valid_to):
            raise period_overlaps(kept)
    return to_end


def _is_latest(record: ActualUser, history: Sequence[ActualUser]) -> bool:
    """Whether ``record`` starts after every other record (only the latest is ended by a change)."""
    return all(other.valid_from <= record.valid_from for other in history)


def ended(record: ActualUser, valid_to: date, at: datetime, by: str) -> ActualUser:
    """``record`` ended on ``valid_to`` (its push is the caller's: the operator hears of the end)."""
    return replace(
        record,
        valid_to=valid_to,
        ended_at=at,
        ended_by=by,
        version=record.version + 1,
    )


def check_end(record: ActualUser, valid_to: date, today: date) -> None:
    """An end that can be recorded: the record is still open on that date and it ends after it starts."""
    if record.valid_to is not None and record.valid_to <= today:
        raise already_ended(record)
    if valid_to > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidField(
            "actual_user.to_too_far_ahead",
            f"结束日期最晚为明天（{(today + timedelta(days=MAX_DAYS_AHEAD)).isoformat()}）",
            f"The end can be at most one day ahead ({(today + timedelta(days=MAX_DAYS_AHEAD)).isoformat()})",
            field="valid_to",
        )
    if valid_to <= record.valid_from:
        raise period_reversed()


# -- refusals -------------------------------------------------------------------------------------------


def from_too_far_ahead(today: date) -> InvalidField:
    latest = (today + timedelta(days=MAX_DAYS_AHEAD)).isoformat()
    return InvalidField(
        "actual_user.from_too_far_ahead",
        f"开始使用日期最晚为明天（{latest}）",
        f"The start can be at most one day ahead ({latest})",
        field="valid_from",
    )


def period_reversed() -> InvalidField:
    return InvalidField(
        "actual_user.period_reversed",
        "结束日期应晚于开始使用日期",
        "The end must come after the start",
        field="valid_to",
    )


def period_overlaps(kept: ActualUser) -> InvalidField:
    until = kept.valid_to.isoformat() if kept.valid_to else "至今"
    until_en = kept.valid_to.isoformat() if kept.valid_to else "now"
    return InvalidField(
        "actual_user.period_overlaps",
        f"使用期间与已登记的实际使用人（{kept.valid_from.isoformat()} 至 {until}）重叠",
        f"The period overlaps a recorded actual user ({kept.valid_from.isoformat()} to {until_en})",
        field="valid_from",
        details={"record_id": kept.record_id},
    )


def already_ended(record: ActualUser) -> Conflict:
    return Conflict(
        "actual_user.already_ended",
        "该实际使用人记录已结束",
        "This actual user's period has already ended",
        details={"record_id": record.record_id},
    )


def record_not_found() -> NotFound:
    return NotFound(
        "actual_user.not_found", "未找到该实际使用人记录", "No such actual-user record", field="record_id"
    )


def card_not_found() -> NotFound:
    """A card unknown, or not registered to the acting enterprise (the same answer: nothing leaks)."""
    return NotFound("card.not_found", "未找到该车联网卡", "Card not found", field="iccid")


def changed() -> Conflict:
    return Conflict(
        "actual_user.changed",
        "该卡的实际使用人刚被修改，请刷新后重试",
        "The card's actual users changed meanwhile: reload and try again",
    )
