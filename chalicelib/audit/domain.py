"""The read log's rules: what a read of personal data in clear records, the reason staff give, and how
auditors search. Pure: no I/O.

A read-log item names the reader (subject, roles, token issuer), the time, the record (its kind and opaque
id), the fields shown in clear (names only, never values), the reason, the route and the correlation id.
It holds no personal value, so the auditors' answer masks nothing and reading it is not itself recorded.

The reason is free text typed by staff (4–200 characters). It is kept in clear, because auditors read and
search it, and so it must not carry personal data: a run of digits that could be a phone or ID number is
refused (the record is already named by its id), and the field's description says so.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import DomainError, InvalidField

#: The shortest and longest reason a reader may give.
MIN_REASON = 4
MAX_REASON = 200
#: The reason recorded when a person reads their own data in clear (the OCR reading handed back).
SELF_REASON = "self"
#: The widest time range a search without an actor or a record may cover (it reads one partition a day).
MAX_RANGE = timedelta(days=92)
#: The range searched when none is given: the last 30 days.
DEFAULT_RANGE = timedelta(days=30)
#: The most reads one page answers.
MAX_PAGE = 100

#: Digits that could be a mobile number (11), an ID number (15, 18 with a final X) or a card number.
_PERSONAL_DIGITS = re.compile(r"\d{11,}|\d{17}[Xx]")


class RecordKind(StrEnum):
    """What was read in clear."""

    FLOW = "flow"  # a verification flow: its typed identity, OCR readings and evidence's personal facts
    CARD = "card"  # a card (ICCID): its MSISDN and its holder (登记人)
    COMPLAINT = "complaint"  # 投诉举报: the contact phone
    DOCUMENT_FILE = "document_file"  # a photo read by the CLI's OCR (id: the file's SHA-256)


class Read(BaseModel):
    """One record read in clear: its kind, id and the fields shown (names only)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    record_kind: RecordKind
    record_id: str = Field(min_length=1, max_length=128)
    fields: tuple[str, ...] = Field(min_length=1)


class ReadEntry(BaseModel):
    """One item of the read log."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    read_id: str
    actor: str
    roles: tuple[str, ...]
    issuer: str | None
    at: AwareDatetime
    record_kind: RecordKind
    record_id: str
    fields: tuple[str, ...]
    reason: str
    route: str
    correlation_id: str


class ReadSearch(BaseModel):
    """An auditor's search: by actor, by record, or by time alone; newest first, a page at a time."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    actor: str | None = None
    record_kind: RecordKind | None = None
    record_id: str | None = None
    since: AwareDatetime
    until: AwareDatetime
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class ReadPage(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    reads: list[ReadEntry]
    next_cursor: str | None


class ReadLogUnavailable(DomainError):
    """The read could not be recorded: nothing is shown in clear."""

    status = 503


def read_log_unavailable() -> ReadLogUnavailable:
    return ReadLogUnavailable(
        "audit.unavailable",
        "暂时无法登记本次查阅，个人信息未显示，请稍后重试",
        "The read could not be recorded, so nothing is shown in clear; try again shortly",
        details={"retry_after_seconds": 5},
    )


def reason_text(value: str) -> str:
    """The reason as kept: NFC, control characters dropped, spaces collapsed; 4–200 characters and no
    digits that could be a phone or ID number."""
    text = unicodedata.normalize("NFC", value)
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
    text = " ".join(text.split())
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise InvalidField(
            "audit.reason_invalid",
            f"请填写查阅原因（{MIN_REASON}–{MAX_REASON} 字）",
            f"Give the reason for reading in clear ({MIN_REASON}–{MAX_REASON} characters)",
            field="reason",
            details={"min": MIN_REASON, "max": MAX_REASON, "length": len(text)},
        )
    if _PERSONAL_DIGITS.search(text):
        raise InvalidField(
            "audit.reason_personal",
            "查阅原因中请勿填写手机号、证件号码等个人信息，查阅的记录已自动登记",
            "Leave phone and ID numbers out of the reason: the record read is logged by its id",
            field="reason",
        )
    return text


def search_range(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The time range searched: ``until`` defaults to now, ``since`` to 30 days before ``until``."""
    end = until or now
    start = since or end - DEFAULT_RANGE
    if start > end:
        raise InvalidField(
            "audit.range_order",
            "开始时间应早于结束时间",
            "since must be before until",
            field="since",
        )
    return start, end


def check_time_only_range(since: datetime, until: datetime) -> None:
    """A search by time alone reads one day after another: at most ``MAX_RANGE``."""
    if until - since > MAX_RANGE:
        raise InvalidField(
            "audit.range_too_long",
            f"不按人员或记录查询时，时间范围最长 {MAX_RANGE.days} 天",
            f"A search by time alone covers at most {MAX_RANGE.days} days",
            field="since",
            details={"max_days": MAX_RANGE.days},
        )


def cursor_invalid() -> InvalidField:
    return InvalidField(
        "audit.cursor",
        "翻页标记无效，请重新查询",
        "The cursor does not belong to this search",
        field="cursor",
    )
