"""投诉举报 (第二十一条): an owner files a complaint and follows it; the OEM's reviewers and admins list
them (the console's page comes with the console).

A complaint's description and contact phone are personal data: sealed at rest, never logged; the
owner sees their own in full with the phone masked, a reviewer sees the phone in clear to call back
when they give a reason (``?reason=``, each complaint so read recorded in the read log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.audit import read_of, record_reads, reveal_reason
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import PERSON_ROLES, Role
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import DomainError

if TYPE_CHECKING:
    from chalicelib.api import complaints_views as views
    from chalicelib.audit import domain as audit_domain
    from chalicelib.complaints.domain import Complaint
    from chalicelib.kernel import personal
else:
    audit_domain = lazy.module("chalicelib.audit.domain")
    views = lazy.module("chalicelib.api.complaints_views")
    personal = lazy.module("chalicelib.kernel.personal")

bp = Blueprint(__name__)

#: Who sees the OEM's listing.
COMPLAINT_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})


@route(
    bp,
    "/v1/me/complaints",
    method="POST",
    summary="投诉举报: file a complaint with the OEM (第二十一条); answers its number",
    roles=PERSON_ROLES,
    body=lambda: views.ComplaintBody,
    response=lambda: views.ComplaintFiled,
    status=201,
    errors=(429,),
    tags=("complaints",),
)
def file_complaint(call: Call) -> views.ComplaintFiled:
    body: views.ComplaintBody = call.body
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
        f"已收到您的投诉，投诉编号 {complaint.complaint_id}。我们将在 {views.ANSWER_DAYS} 个工作日内"
        f"通过 {personal.mask_phone(complaint.contact_phone)} 与您联系，处理进度可在“我的投诉”中查看。"
    )
    return views.ComplaintFiled(**views.complaint_view(complaint), message_zh=message)  # type: ignore[arg-type]


@route(
    bp,
    "/v1/me/complaints",
    summary="My complaints, newest first, with their status",
    roles=PERSON_ROLES,
    response=lambda: views.MyComplaints,
    tags=("complaints",),
)
def my_complaints(call: Call) -> views.MyComplaints:
    found = deps.complaints().mine(call.user.subject)
    listed = [views.ComplaintView(**views.complaint_view(c)) for c in found]  # type: ignore[arg-type]
    return views.MyComplaints(complaints=listed)


@route(
    bp,
    "/v1/admin/complaints",
    summary="The OEM's complaints by status, newest first (reviewers see the contact phone in clear with "
    "?reason=, recorded in the read log)",
    roles=COMPLAINT_ROLES,
    response=lambda: views.AdminComplaints,
    query=lambda: views.ComplaintQuery,
    errors=(422, 503),
    tags=("complaints",),
)
def admin_complaints(call: Call) -> views.AdminComplaints:
    query: views.ComplaintQuery = call.query
    reason = reveal_reason(call, call.user.reveals_personal_data)
    found = deps.complaints().listing(query.status, query.limit)
    logger.info("complaints listed", extra={"status": query.status.value, "count": len(found)})
    reveal = reason is not None
    if reason is not None:
        reads = [read_of(audit_domain.RecordKind.COMPLAINT, c.complaint_id, ["contact_phone"]) for c in found]
        record_reads(call, [r for r in reads if r is not None], reason)
    return views.AdminComplaints(
        complaints=[
            views.AdminComplaint(
                **views.complaint_view(c, reveal=reveal, owner=False),  # type: ignore[arg-type]
                subject=c.subject,
                answered_by=c.answered_by,
            )
            for c in found
        ]
    )


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
    body=lambda: views.ComplaintAnswerBody,
    response=lambda: views.AdminComplaint,
    errors=(404, 409, 422),
    tags=("complaints",),
)
def answer_complaint(call: Call, complaint_id: str) -> views.AdminComplaint:
    body: views.ComplaintAnswerBody = call.body
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
    return views.AdminComplaint(
        **views.complaint_view(answered, owner=False),  # type: ignore[arg-type]
        subject=answered.subject,
        answered_by=answered.answered_by,
    )
