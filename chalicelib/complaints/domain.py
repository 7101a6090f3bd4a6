"""Complaints (投诉举报): the categories, the statuses and the record; pure rules, no I/O."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.clock import china_day

#: The longest description a complaint may carry (characters).
MAX_DESCRIPTION = 500


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


def complaint_number(at: datetime, token: str) -> str:
    """投诉编号: ``TS`` + the China day + six characters of ``token`` (e.g. ``TS20261129A1B2C3``)."""
    return "TS" + china_day(at).strftime("%Y%m%d") + token[:6].upper()
