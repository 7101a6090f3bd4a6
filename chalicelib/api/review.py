"""Review API (人工审核): the reviewers' queue of cases, a case with its flow, the decision (the owner
hears of it by SMS), the owner's own view of their case (number, status, expected time), and the
evidence chain of a flow for reviewers and auditors; the operators' spot checks (抽查, 第十条): their
queue, each with its registration's evidence, and the answer (pushed back to the operator)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.api.audit import read_of, record_reads, reveal_reason
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.api.verification import reveal_for
from chalicelib.core import deps, lazy
from chalicelib.core.auth import PERSON_ROLES, Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import InvalidField

if TYPE_CHECKING:
    from chalicelib.api import models as api_models
    from chalicelib.api import review_views as models
    from chalicelib.api import verification_views as verification
    from chalicelib.audit import domain as audit_domain
    from chalicelib.operators.domain import spot_check_codes
    from chalicelib.verification.domain import flows as flow_domain
    from chalicelib.verification.domain.evidence import EvidenceEntry
else:
    # The routes' models, and the domains they name, load with the first request that needs them.
    models = lazy.module("chalicelib.api.review_views")
    api_models = lazy.module("chalicelib.api.models")
    audit_domain = lazy.module("chalicelib.audit.domain")
    verification = lazy.module("chalicelib.api.verification_views")
    spot_check_codes = lazy.module("chalicelib.operators.domain.spot_check_codes")
    flow_domain = lazy.module("chalicelib.verification.domain.flows")

bp = Blueprint(__name__)

REVIEW_ROLES = frozenset({Role.REVIEWER})
EVIDENCE_ROLES = frozenset({Role.REVIEWER, Role.AUDITOR})


@route(
    bp,
    "/v1/review-cases",
    summary="The review queue: cases by status, oldest first, paginated",
    roles=REVIEW_ROLES,
    response=lambda: models.ReviewQueue,
    query=lambda: models.ReviewQuery,
    tags=("review",),
)
def review_queue(call: Call) -> models.ReviewQueue:
    query: models.ReviewQuery = call.query
    cases, cursor = deps.verification_service().review_queue(query.status, query.limit, query.cursor)
    return models.ReviewQueue(cases=[verification.case_view(c) for c in cases], next_cursor=cursor)


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
        read_of(audit_domain.RecordKind.FLOW, flow_id, _evidence_fields(entries))
        for flow_id, entries in flows.items()
    ]
    record_reads(call, [r for r in reads if r is not None], reason)
    return True


@route(
    bp,
    "/v1/review-cases/{case_id}",
    summary="A review case with the flow, document links and the evidence: in clear with ?reason= "
    "(recorded in the read log), masked and without document links otherwise",
    roles=REVIEW_ROLES,
    response=lambda: models.ReviewCaseDetail,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def review_case(call: Call, case_id: str) -> models.ReviewCaseDetail:
    reason = reveal_reason(call)
    service = deps.verification_service()
    case, flow = service.review_case(case_id)
    log = deps.evidence_log()
    entries = log.entries(flow.flow_id)
    reveal = reason is not None
    if reason is not None:
        fields = [
            *verification.identity_fields(flow.identity),
            *(f"documents.{kind}" for kind in sorted(flow.documents)),
            *_evidence_fields(entries),
        ]
        read = read_of(audit_domain.RecordKind.FLOW, flow.flow_id, fields)
        record_reads(call, [read] if read else [], reason)
    return models.ReviewCaseDetail(
        case=verification.case_view(case),
        flow=verification.flow_view(flow, reveal=reveal),
        documents={
            kind: service.document_url(flow, kind) if reveal else None for kind in sorted(flow.documents)
        },
        evidence=models.EvidenceView(
            flow_id=flow.flow_id, chain=log.verify(flow.flow_id), entries=_entries(entries, reveal)
        ),
    )


@route(
    bp,
    "/v1/review-cases/{case_id}/decision",
    method="POST",
    summary="Approve or reject a review case (once)",
    roles=REVIEW_ROLES,
    body=lambda: models.DecisionBody,
    response=lambda: verification.ReviewCaseView,
    errors=(404, 409),
    tags=("review",),
)
def decide_review(call: Call, case_id: str) -> verification.ReviewCaseView:
    body: models.DecisionBody = call.body
    decided = deps.verification_service().decide_review(case_id, call.actor, body.decision, body.note)
    # The review screen promised the owner an SMS when decided: it goes to the registration's phone.
    deps.review_notices().decided(decided)
    deps.real_name().review_decided(decided)  # an account's real-name waiting for this case completes
    return verification.case_view(decided)


@route(
    bp,
    "/v1/flows/{flow_id}/review",
    summary="The owner's review case of their flow: case number, status, expected time",
    roles=PERSON_ROLES | {Role.ACCOUNT},
    response=lambda: models.MyReviewView,
    errors=(404,),
    tags=("review",),
)
def my_review(call: Call, flow_id: str) -> models.MyReviewView:
    case = deps.verification_service().reviews.case_of_flow(flow_id, call.actor)
    if case is None:
        raise flow_domain.case_not_found()
    settings = get_settings()
    return models.MyReviewView(
        case_number=case.number,
        status=case.status,
        reason=case.reason,
        reason_zh=models.REASONS_ZH[case.reason],
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
    response=lambda: models.EvidenceView,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def flow_evidence(call: Call, flow_id: str) -> models.EvidenceView:
    reason = reveal_reason(call, reveal_for(call.user))
    log = deps.evidence_log()
    entries = log.entries(flow_id)
    if not entries:
        raise flow_domain.flow_not_found()
    reveal = _evidence_reads(call, {flow_id: entries}, reason)
    return models.EvidenceView(flow_id=flow_id, chain=log.verify(flow_id), entries=_entries(entries, reveal))


# -- 抽查 (第十条): the operators' spot checks ---------------------------------------------------------

SPOT_CHECK_ROLES = frozenset({Role.REVIEWER, Role.AUDITOR})


@route(
    bp,
    "/v1/spot-checks",
    summary="The operators' spot checks (抽查): cases by status, earliest deadline first, paginated",
    roles=SPOT_CHECK_ROLES,
    response=lambda: models.SpotCheckQueue,
    query=lambda: models.SpotCheckQuery,
    tags=("review",),
)
def spot_check_queue(call: Call) -> models.SpotCheckQueue:
    query: models.SpotCheckQuery = call.query
    checks, cursor = deps.spot_checks().queue(query.status, query.limit, query.cursor)
    return models.SpotCheckQueue(checks=[models.spot_check_view(c) for c in checks], next_cursor=cursor)


@route(
    bp,
    "/v1/spot-checks/{check_id}",
    summary="A spot check with the evidence of the registration it asks about (personal facts in clear "
    "with ?reason=, recorded in the read log; masked otherwise)",
    roles=SPOT_CHECK_ROLES,
    response=lambda: models.SpotCheckDetail,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("review",),
)
def spot_check_detail(call: Call, check_id: str) -> models.SpotCheckDetail:
    reason = reveal_reason(call, reveal_for(call.user))
    check = deps.spot_checks().check(check_id)
    log = deps.evidence_log()
    flows = {flow_id: log.entries(flow_id) for flow_id in check.flow_ids}
    reveal = _evidence_reads(call, flows, reason)
    evidence = [
        models.EvidenceView(flow_id=flow_id, chain=log.verify(flow_id), entries=_entries(entries, reveal))
        for flow_id, entries in flows.items()
    ]
    return models.SpotCheckDetail(check=models.spot_check_view(check), evidence=evidence)


@route(
    bp,
    "/v1/spot-checks/{check_id}/answer",
    method="POST",
    summary="Answer a spot check once (confirmed, or discrepancy with a note); pushed to the operator",
    roles=REVIEW_ROLES,
    body=lambda: models.SpotCheckAnswerBody,
    response=lambda: models.SpotCheckView,
    errors=(404, 409, 422),
    tags=("review",),
)
def answer_spot_check(call: Call, check_id: str) -> models.SpotCheckView:
    body: models.SpotCheckAnswerBody = call.body
    note = (body.note or "").strip() or None
    if body.verdict is spot_check_codes.SpotCheckVerdict.DISCREPANCY and note is None:
        raise InvalidField(
            "spot_check.note_required",
            "答复存在不一致时须说明情况",
            "A discrepancy is answered with a note saying what does not agree",
            field="note",
        )
    return models.spot_check_view(deps.spot_checks().answer(check_id, call.actor, body.verdict, note))
