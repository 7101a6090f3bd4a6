"""投诉举报 (第二十一条): an owner files a complaint and follows it; the OEM's reviewers and admins list
them (the console's page comes with the console).

A complaint's description and contact phone are personal data: sealed at rest, never logged; the
owner sees their own in full with the phone masked, a reviewer sees the phone in clear to call back
when they give a reason (``?reason=``, each complaint so read recorded in the read log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.audit import ReasonQuery, read_of, record_reads, reveal_reason
from chalicelib.api.http import ApiModel, Blueprint, Call, Refusal, route
from chalicelib.audit.domain import RecordKind
from chalicelib.complaints.domain import (
    ANSWER_WORKING_DAYS,
    CATEGORY_NAMES,
    MAX_ANSWER,
    MAX_DESCRIPTION,
    STATUS_NAMES,
    ComplaintCategory,
    ComplaintStatus,
)
from chalicelib.core import deps
from chalicelib.core.auth import PERSON_ROLES, Role
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import DomainError
from chalicelib.kernel.personal import mask_phone, mask_vin

if TYPE_CHECKING:
    from chalicelib.complaints.domain import Complaint

bp = Blueprint(__name__)

#: Who sees the OEM's listing.
COMPLAINT_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})

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


def _view(c: Complaint, *, reveal: bool = False, owner: bool = True) -> dict[str, object]:
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


@route(
    bp,
    "/v1/me/complaints",
    method="POST",
    summary="投诉举报: file a complaint with the OEM (第二十一条); answers its number",
    roles=PERSON_ROLES,
    body=ComplaintBody,
    response=ComplaintFiled,
    status=201,
    errors=(429,),
    tags=("complaints",),
)
def file_complaint(call: Call) -> ComplaintFiled:
    body: ComplaintBody = call.body
    complaint = deps.complaints().file(
        call.user.subject, body.category, body.description, body.contact_phone, body.vin
    )
    # The number, the category and the person's pseudonym: never the description or the phone.
    logger.info(
        "complaint filed",
        extra={
            "complaint_id": complaint.complaint_id,
            "category": complaint.category.value,
            "subject": complaint.subject,
        },
    )
    message = (
        f"已收到您的投诉，投诉编号 {complaint.complaint_id}。我们将在 {ANSWER_DAYS} 个工作日内"
        f"通过 {mask_phone(complaint.contact_phone)} 与您联系，处理进度可在“我的投诉”中查看。"
    )
    return ComplaintFiled(**_view(complaint), message_zh=message)  # type: ignore[arg-type]


@route(
    bp,
    "/v1/me/complaints",
    summary="My complaints, newest first, with their status",
    roles=PERSON_ROLES,
    response=MyComplaints,
    tags=("complaints",),
)
def my_complaints(call: Call) -> MyComplaints:
    found = deps.complaints().mine(call.user.subject)
    return MyComplaints(complaints=[ComplaintView(**_view(c)) for c in found])  # type: ignore[arg-type]


@route(
    bp,
    "/v1/admin/complaints",
    summary="The OEM's complaints by status, newest first (reviewers see the contact phone in clear with "
    "?reason=, recorded in the read log)",
    roles=COMPLAINT_ROLES,
    response=AdminComplaints,
    query=ComplaintQuery,
    errors=(422, 503),
    tags=("complaints",),
)
def admin_complaints(call: Call) -> AdminComplaints:
    query: ComplaintQuery = call.query
    reason = reveal_reason(call, call.user.reveals_personal_data)
    found = deps.complaints().listing(query.status, query.limit)
    logger.info("complaints listed", extra={"status": query.status.value, "count": len(found)})
    reveal = reason is not None
    if reason is not None:
        reads = [read_of(RecordKind.COMPLAINT, c.complaint_id, ["contact_phone"]) for c in found]
        record_reads(call, [r for r in reads if r is not None], reason)
    return AdminComplaints(
        complaints=[
            AdminComplaint(
                **_view(c, reveal=reveal, owner=False),  # type: ignore[arg-type]
                subject=c.subject,
                answered_by=c.answered_by,
            )
            for c in found
        ]
    )


class ComplaintAnswerBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(max_length=MAX_ANSWER * 4, description=f"At most {MAX_ANSWER} characters")
    close: bool = Field(default=True, description="close the complaint (办结); false: an interim answer")


def answer_sms(complaint: Complaint) -> str:
    """What the person reads by SMS: the number and the answer (also in 我的投诉)."""
    return f"您的投诉（编号 {complaint.complaint_id}）已答复：{complaint.answer}（可在“我的投诉”中查看）"


@route(
    bp,
    "/v1/admin/complaints/{complaint_id}/answer",
    method="POST",
    summary="Answer a complaint to the person (第二十一条): kept sealed, shown in their complaints and sent "
    "by SMS to the contact phone; closes it (or an interim answer: in progress); a closed one is not "
    "answered again",
    roles=COMPLAINT_ROLES,
    body=ComplaintAnswerBody,
    response=AdminComplaint,
    errors=(404, 409, 422),
    tags=("complaints",),
)
def answer_complaint(call: Call, complaint_id: str) -> AdminComplaint:
    body: ComplaintAnswerBody = call.body
    answered = deps.complaints().answer(complaint_id, call.actor, body.answer, close=body.close)
    try:
        deps.sms_sender().send(answered.contact_phone, answer_sms(answered))
    except DomainError:
        # The answer stands and shows in 我的投诉; the SMS is told as not sent in the log only.
        logger.warning("complaint answer SMS not sent", extra={"complaint_id": answered.complaint_id})
    logger.info(
        "complaint answered",
        extra={
            "complaint_id": answered.complaint_id,
            "status": answered.status.value,
            "late": answered.overdue(utc_now()),
        },
    )
    return AdminComplaint(
        **_view(answered, owner=False),  # type: ignore[arg-type]
        subject=answered.subject,
        answered_by=answered.answered_by,
    )
