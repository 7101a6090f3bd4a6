"""Review API (人工审核): the reviewers' queue of cases, a case with its flow, the decision (the owner
hears of it by SMS), the owner's own view of their case (number, status, expected time), and the
evidence chain of a flow for reviewers and auditors; the operators' spot checks (抽查, 第十条): their
queue, each with its registration's evidence, and the answer (pushed back to the operator)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from chalicelib.api.audit import ReasonQuery, read_of, record_reads, reveal_reason
from chalicelib.api.http import ApiModel, Blueprint, Call, PageQuery, Refusal, route
from chalicelib.api.verification import (
    FlowView,
    ReviewCaseView,
    case_view,
    flow_view,
    identity_fields,
    reveal_for,
)
from chalicelib.audit.domain import RecordKind
from chalicelib.core import deps
from chalicelib.core.auth import PERSON_ROLES, Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import InvalidField
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from chalicelib.verification.domain.evidence import ChainVerdict, EvidenceEntry
from chalicelib.verification.domain.flows import (
    ReviewDecision,
    ReviewReason,
    ReviewStatus,
    case_not_found,
    flow_not_found,
)

if TYPE_CHECKING:
    from chalicelib.operators.domain.spot_checks import SpotCheck

bp = Blueprint(__name__)

REVIEW_ROLES = frozenset({Role.REVIEWER})
EVIDENCE_ROLES = frozenset({Role.REVIEWER, Role.AUDITOR})


class ReviewQueue(ApiModel):
    cases: list[ReviewCaseView]
    next_cursor: str | None


class ReviewQuery(PageQuery):
    status: Annotated[
        ReviewStatus,
        Field(description="open | approved | rejected (default open)"),
        Refusal("review.status", "审核状态无效", "Unknown review status"),
    ] = ReviewStatus.OPEN


@route(
    bp,
    "/v1/review-cases",
    summary="The review queue: cases by status, oldest first, paginated",
    roles=REVIEW_ROLES,
    response=ReviewQueue,
    query=ReviewQuery,
    tags=("review",),
)
def review_queue(call: Call) -> ReviewQueue:
    query: ReviewQuery = call.query
    cases, cursor = deps.verification_service().review_queue(query.status, query.limit, query.cursor)
    return ReviewQueue(cases=[case_view(c) for c in cases], next_cursor=cursor)


class EvidenceView(ApiModel):
    flow_id: str
    chain: ChainVerdict
    entries: list[dict[str, Any]]


def _entries(entries: list[EvidenceEntry], reveal: bool) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        doc = entry.model_dump(mode="json")
        if not reveal:
            doc["personal"] = sorted(entry.personal)  # which personal facts exist, not their values
        out.append(doc)
    return out


def _evidence_fields(entries: list[EvidenceEntry]) -> list[str]:
    """The personal facts of a flow's evidence, by name (``evidence.<entry kind>.<fact>``)."""
    return sorted({f"evidence.{entry.kind}.{name}" for entry in entries for name in entry.personal})


def _evidence_reads(call: Call, flows: dict[str, list[EvidenceEntry]], reason: str | None) -> bool:
    """Whether the evidence is shown in clear: with a reason, recorded first (one item per flow)."""
    if reason is None:
        return False
    reads = [
        read_of(RecordKind.FLOW, flow_id, _evidence_fields(entries)) for flow_id, entries in flows.items()
    ]
    record_reads(call, [r for r in reads if r is not None], reason)
    return True


class ReviewCaseDetail(ApiModel):
    case: ReviewCaseView
    flow: FlowView
    documents: dict[str, str | None]
    evidence: EvidenceView


@route(
    bp,
    "/v1/review-cases/{case_id}",
    summary="A review case with the flow, document links and the evidence: in clear with ?reason= "
    "(recorded in the read log), masked and without document links otherwise",
    roles=REVIEW_ROLES,
    response=ReviewCaseDetail,
    query=ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def review_case(call: Call, case_id: str) -> ReviewCaseDetail:
    reason = reveal_reason(call)
    service = deps.verification_service()
    case, flow = service.review_case(case_id)
    log = deps.evidence_log()
    entries = log.entries(flow.flow_id)
    reveal = reason is not None
    if reason is not None:
        fields = [
            *identity_fields(flow.identity),
            *(f"documents.{kind}" for kind in sorted(flow.documents)),
            *_evidence_fields(entries),
        ]
        read = read_of(RecordKind.FLOW, flow.flow_id, fields)
        record_reads(call, [read] if read else [], reason)
    return ReviewCaseDetail(
        case=case_view(case),
        flow=flow_view(flow, reveal=reveal),
        documents={
            kind: service.document_url(flow, kind) if reveal else None for kind in sorted(flow.documents)
        },
        evidence=EvidenceView(
            flow_id=flow.flow_id, chain=log.verify(flow.flow_id), entries=_entries(entries, reveal)
        ),
    )


class DecisionBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    note: str | None = Field(default=None, max_length=500)


@route(
    bp,
    "/v1/review-cases/{case_id}/decision",
    method="POST",
    summary="Approve or reject a review case (once)",
    roles=REVIEW_ROLES,
    body=DecisionBody,
    response=ReviewCaseView,
    errors=(404, 409),
    tags=("review",),
)
def decide_review(call: Call, case_id: str) -> ReviewCaseView:
    body: DecisionBody = call.body
    decided = deps.verification_service().decide_review(case_id, call.actor, body.decision, body.note)
    # The review screen promised the owner an SMS when decided: it goes to the registration's phone.
    deps.review_notices().decided(decided)
    deps.real_name().review_decided(decided)  # an account's real-name waiting for this case completes
    return case_view(decided)


#: Why a reviewer has the case, as the owner reads it.
REASONS_ZH = {
    ReviewReason.FACE_ATTEMPTS_EXHAUSTED: "人脸核验次数已用完，由审核人员核对您的证件照片与现场照片。",
    ReviewReason.AUTHORITY_UNAVAILABLE: "证件信息暂时无法联网核验，由审核人员核对。",
    ReviewReason.FACE_DUPLICATE: "您的人脸信息已用于其他证件的登记，需由审核人员核实。",
    ReviewReason.POSSESSION_CONTESTED: "该车辆已由他人登记或正在办理，由审核人员核实车辆归属。",
    ReviewReason.AUTHORITY_NOT_COVERED: "该类证件无法联网核验，由审核人员核对证件。",
    ReviewReason.DOCUMENT_NOT_MACHINE_READABLE: (
        "护照、港澳台居民证件等由审核人员核对证件照片，通过后继续人脸检测。"
    ),
    ReviewReason.REAL_NAME: "实名认证的自动核验未通过，由审核人员核对您提交的证件和信息。",
}


class MyReviewView(ApiModel):
    """The owner's own review case: what the review screen shows, nothing of the reviewer's."""

    case_number: str = Field(description="审核编号")
    status: ReviewStatus
    reason: ReviewReason
    reason_zh: str
    opened_at: datetime
    decided_at: datetime | None
    expected_zh: str = Field(description="the time a reviewer takes, as told to the owner (settings)")
    poll_seconds: int = Field(description="how often the review screen reads the status again")


@route(
    bp,
    "/v1/flows/{flow_id}/review",
    summary="The owner's review case of their flow: case number, status, expected time",
    roles=PERSON_ROLES | {Role.ACCOUNT},
    response=MyReviewView,
    errors=(404,),
    tags=("review",),
)
def my_review(call: Call, flow_id: str) -> MyReviewView:
    case = deps.verification_service().reviews.case_of_flow(flow_id, call.actor)
    if case is None:
        raise case_not_found()
    settings = get_settings()
    return MyReviewView(
        case_number=case.number,
        status=case.status,
        reason=case.reason,
        reason_zh=REASONS_ZH[case.reason],
        opened_at=case.created_at,
        decided_at=case.decided_at,
        expected_zh=settings.review_expected_zh,
        poll_seconds=settings.review_poll_seconds,
    )


@route(
    bp,
    "/v1/flows/{flow_id}/evidence",
    summary="The flow's evidence log (查验日志) and the verdict of its hash chain (personal facts in clear "
    "with ?reason=, recorded in the read log)",
    roles=EVIDENCE_ROLES,
    response=EvidenceView,
    query=ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def flow_evidence(call: Call, flow_id: str) -> EvidenceView:
    reason = reveal_reason(call, reveal_for(call.user))
    log = deps.evidence_log()
    entries = log.entries(flow_id)
    if not entries:
        raise flow_not_found()
    reveal = _evidence_reads(call, {flow_id: entries}, reason)
    return EvidenceView(flow_id=flow_id, chain=log.verify(flow_id), entries=_entries(entries, reveal))


# -- 抽查 (第十条): the operators' spot checks ---------------------------------------------------------

SPOT_CHECK_ROLES = frozenset({Role.REVIEWER, Role.AUDITOR})


class SpotCheckView(ApiModel):
    check_id: str
    operator: str
    iccid: str
    message_id: str
    registration_id: str
    flow_ids: list[str]
    reason_code: str | None
    reason_zh: str | None
    reason_en: str | None
    status: SpotCheckStatus
    received_at: datetime
    due_at: datetime
    overdue: bool = Field(description="open past its deadline, or answered after it")
    answered_at: datetime | None
    answered_by: str | None
    verdict: SpotCheckVerdict | None
    note: str | None
    late: bool | None
    answer_record_id: str | None = Field(description="the outbox record carrying the answer")


def spot_check_view(check: SpotCheck) -> SpotCheckView:
    return SpotCheckView(
        **check.model_dump(exclude={"operator"}),
        operator=check.operator.value,
        overdue=check.overdue(utc_now()),
    )


class SpotCheckQueue(ApiModel):
    checks: list[SpotCheckView]
    next_cursor: str | None


class SpotCheckQuery(PageQuery):
    status: Annotated[
        SpotCheckStatus,
        Field(description="open | answered (default open)"),
        Refusal("spot_check.status", "抽查状态无效", "Unknown spot check status"),
    ] = SpotCheckStatus.OPEN


@route(
    bp,
    "/v1/spot-checks",
    summary="The operators' spot checks (抽查): cases by status, earliest deadline first, paginated",
    roles=SPOT_CHECK_ROLES,
    response=SpotCheckQueue,
    query=SpotCheckQuery,
    tags=("review",),
)
def spot_check_queue(call: Call) -> SpotCheckQueue:
    query: SpotCheckQuery = call.query
    checks, cursor = deps.spot_checks().queue(query.status, query.limit, query.cursor)
    return SpotCheckQueue(checks=[spot_check_view(c) for c in checks], next_cursor=cursor)


class SpotCheckDetail(ApiModel):
    check: SpotCheckView
    evidence: list[EvidenceView] = Field(description="the evidence of each flow of the registration")


@route(
    bp,
    "/v1/spot-checks/{check_id}",
    summary="A spot check with the evidence of the registration it asks about (personal facts in clear "
    "with ?reason=, recorded in the read log; masked otherwise)",
    roles=SPOT_CHECK_ROLES,
    response=SpotCheckDetail,
    query=ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def spot_check_detail(call: Call, check_id: str) -> SpotCheckDetail:
    reason = reveal_reason(call, reveal_for(call.user))
    check = deps.spot_checks().check(check_id)
    log = deps.evidence_log()
    flows = {flow_id: log.entries(flow_id) for flow_id in check.flow_ids}
    reveal = _evidence_reads(call, flows, reason)
    evidence = [
        EvidenceView(flow_id=flow_id, chain=log.verify(flow_id), entries=_entries(entries, reveal))
        for flow_id, entries in flows.items()
    ]
    return SpotCheckDetail(check=spot_check_view(check), evidence=evidence)


class SpotCheckAnswerBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    verdict: SpotCheckVerdict
    note: str | None = Field(default=None, max_length=500, description="required with a discrepancy")


@route(
    bp,
    "/v1/spot-checks/{check_id}/answer",
    method="POST",
    summary="Answer a spot check once (confirmed, or discrepancy with a note); pushed to the operator",
    roles=REVIEW_ROLES,
    body=SpotCheckAnswerBody,
    response=SpotCheckView,
    errors=(404, 409, 422),
    tags=("review",),
)
def answer_spot_check(call: Call, check_id: str) -> SpotCheckView:
    body: SpotCheckAnswerBody = call.body
    note = (body.note or "").strip() or None
    if body.verdict is SpotCheckVerdict.DISCREPANCY and note is None:
        raise InvalidField(
            "spot_check.note_required",
            "答复存在不一致时须说明情况",
            "A discrepancy is answered with a note saying what does not agree",
            field="note",
        )
    return spot_check_view(deps.spot_checks().answer(check_id, call.actor, body.verdict, note))
