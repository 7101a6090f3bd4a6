"""Complaints (投诉举报): the categories, the statuses and the record; pure rules, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.clock import CHINA, china_day

#: The longest description a complaint may carry (characters).
MAX_DESCRIPTION = 500
#: The longest answer the OEM gives (characters: it also goes out by SMS, in parts).
MAX_ANSWER = 500
#: Working days within which the OEM answers (as the user agreement and the registration agreement say).
ANSWER_WORKING_DAYS = 15


class ComplaintCategory(StrEnum):
    REGISTRATION = "registration"  # 实名登记问题
    IDENTITY_MISUSE = "identity_misuse"  # 冒用身份
    SERVICE = "service"  # 服务投诉
    OTHER = "other"  # 其他


CATEGORY_NAMES: dict[ComplaintCategory, str] = {
    ComplaintCategory.REGISTRATION: "实名登记问题",
    ComplaintCategory.IDENTITY_MISUSE: "冒用身份",
    ComplaintCategory.SERVICE: "服务投诉",
    ComplaintCategory.OTHER: "其他",
}


class ComplaintStatus(StrEnum):
    RECEIVED = "received"  # 已受理
    IN_PROGRESS = "in_progress"  # 处理中
    CLOSED = "closed"  # 已办结


STATUS_NAMES: dict[ComplaintStatus, str] = {
    ComplaintStatus.RECEIVED: "已受理，等待处理",
    ComplaintStatus.IN_PROGRESS: "处理中",
    ComplaintStatus.CLOSED: "已办结",
}


class Complaint(BaseModel):
    """One complaint as the service holds it (description and phone in clear: the store seals them)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    complaint_id: str
    subject: str
    category: ComplaintCategory
    description: str = Field(max_length=MAX_DESCRIPTION)
    contact_phone: str
    vin: str | None = None
    status: ComplaintStatus = ComplaintStatus.RECEIVED
    created_at: AwareDatetime
    #: The OEM's answer to the person (sealed at rest like the description), who gave it and when.
    answer: str | None = Field(default=None, max_length=MAX_ANSWER)
    answered_by: str | None = None
    answered_at: AwareDatetime | None = None

    @property
    def due_at(self) -> datetime:
        """The end of the day the answer is due: ``ANSWER_WORKING_DAYS`` working days after filing."""
        return answer_due(self.created_at)

    def overdue(self, now: datetime) -> bool:
        """Unanswered past its deadline, or answered after it."""
        if self.answered_at is not None:
            return self.answered_at > self.due_at
        return now > self.due_at


def complaint_number(at: datetime, token: str) -> str:
    """投诉编号: ``TS`` + the China day + six characters of ``token`` (e.g. ``TS20261129A1B2C3``)."""
    return "TS" + china_day(at).strftime("%Y%m%d") + token[:6].upper()


def answer_due(filed_at: datetime, working_days: int = ANSWER_WORKING_DAYS) -> datetime:
    """The end (23:59:59 China time) of the ``working_days``-th working day after the day of filing;
    working days are Monday to Friday (a holiday calendar would move it later, never earlier)."""
    day = china_day(filed_at)
    left = working_days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=CHINA)
