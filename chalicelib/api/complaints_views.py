"""The models of the complaints' routes (``chalicelib.api.complaints``) and a complaint's view (the
phone masked unless revealed). Loaded on their first use: a cold start builds none of them, nor imports
the complaints' domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, ReasonQuery
from chalicelib.complaints.domain import (
    ANSWER_WORKING_DAYS,
    CATEGORY_NAMES,
    MAX_ANSWER,
    MAX_DESCRIPTION,
    STATUS_NAMES,
    ComplaintCategory,
    ComplaintStatus,
)
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.personal import mask_phone, mask_vin

if TYPE_CHECKING:
    from chalicelib.complaints.domain import Complaint

#: Working days within which the OEM answers (as the user agreement and the registration agreement say).
ANSWER_DAYS = ANSWER_WORKING_DAYS


class ComplaintBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    category: ComplaintCategory = Field(
        description="registration (实名登记问题) | identity_misuse (冒用身份) | service (服务投诉) | other"
    )
    # The length is checked by the service after normalisation (with a message saying how long it is).
    description: str = Field(
        max_length=MAX_DESCRIPTION * 4, description=f"At most {MAX_DESCRIPTION} characters"
    )
    contact_phone: str = Field(max_length=20, description="Mainland mobile number to call back")
    vin: str | None = Field(default=None, max_length=32, description="The vehicle concerned (optional)")


class ComplaintView(ApiModel):
    complaint_id: str = Field(description="投诉编号")
    category: ComplaintCategory
    category_zh: str
    status: ComplaintStatus
    status_zh: str
    created_at: AwareDatetime
    description: str
    contact_phone: str = Field(description="Masked unless the caller's role reveals personal data")
    vin: str | None = Field(default=None, description="Masked to its tail for the owner")
    due_at: AwareDatetime = Field(description=f"答复时限: the end of the {ANSWER_WORKING_DAYS}th working day")
    overdue: bool = Field(description="unanswered past the deadline, or answered after it")
    answer: str | None = Field(default=None, description="The OEM's answer (答复)")
    answered_at: AwareDatetime | None = None


class ComplaintFiled(ComplaintView):
    message_zh: str


class MyComplaints(ApiModel):
    complaints: list[ComplaintView]


class AdminComplaint(ComplaintView):
    subject: str = Field(description="The person's pseudonym")
    answered_by: str | None = Field(default=None, description="Who answered (staff subject)")


class AdminComplaints(ApiModel):
    complaints: list[AdminComplaint]


class ComplaintQuery(ReasonQuery):
    status: Annotated[
        ComplaintStatus,
        Field(description="received | in_progress | closed (default received)"),
        Refusal("complaint.status", "投诉状态无效", "Unknown complaint status"),
    ] = ComplaintStatus.RECEIVED
    limit: Annotated[
        int,
        Field(ge=1, le=100, description="1–100"),
        Refusal("request.limit", "每页数量应为 1–100", "limit must be 1–100"),
    ] = 50


def complaint_view(c: Complaint, *, reveal: bool = False, owner: bool = True) -> dict[str, object]:
    """The fields of a complaint's view: the phone masked unless ``reveal``, the VIN masked for its owner."""
    return {
        "complaint_id": c.complaint_id,
        "category": c.category,
        "category_zh": CATEGORY_NAMES[c.category],
        "status": c.status,
        "status_zh": STATUS_NAMES[c.status],
        "created_at": c.created_at,
        "description": c.description,
        "contact_phone": c.contact_phone if reveal else mask_phone(c.contact_phone),
        "vin": (mask_vin(c.vin) if owner else c.vin) if c.vin else None,
        "due_at": c.due_at,
        "overdue": c.overdue(utc_now()),
        "answer": c.answer,
        "answered_at": c.answered_at,
    }


class ComplaintAnswerBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(max_length=MAX_ANSWER * 4, description=f"At most {MAX_ANSWER} characters")
    close: bool = Field(default=True, description="close the complaint (办结); false: an interim answer")
