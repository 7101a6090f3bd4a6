"""The models of the review routes (``chalicelib.api.review``): the reviewers' queue and cases, the
evidence, the owner's own case, the operators' spot checks. Loaded on their first use: a cold start
builds none of them, nor imports the verification's and the spot checks' domain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, PageQuery
from chalicelib.api.verification_views import FlowView, ReviewCaseView
from chalicelib.kernel.clock import utc_now
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from chalicelib.verification.domain.evidence import ChainVerdict
from chalicelib.verification.domain.flows import ReviewDecision, ReviewReason, ReviewStatus

if TYPE_CHECKING:
    from chalicelib.operators.domain.spot_checks import SpotCheck


class ReviewQueue(ApiModel):
    cases: list[ReviewCaseView]
    next_cursor: str | None


class ReviewQuery(PageQuery):
    status: Annotated[
        ReviewStatus,
        Field(description="open | approved | rejected (default open)"),
        Refusal("review.status", "审核状态无效", "Unknown review status"),
    ] = ReviewStatus.OPEN


class EvidenceView(ApiModel):
    flow_id: str
    chain: ChainVerdict
    entries: list[dict[str, Any]]


class ReviewCaseDetail(ApiModel):
    case: ReviewCaseView
    flow: FlowView
    documents: dict[str, str | None]
    evidence: EvidenceView


class DecisionBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    note: str | None = Field(default=None, max_length=500)


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
    """The spot check as the reviewers see it, with whether it is (or was answered) past its deadline."""
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


class SpotCheckDetail(ApiModel):
    check: SpotCheckView
    evidence: list[EvidenceView] = Field(description="the evidence of each flow of the registration")


class SpotCheckAnswerBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    verdict: SpotCheckVerdict
    note: str | None = Field(default=None, max_length=500, description="required with a discrepancy")
