"""Fleet review API (单位批次审核): the OEM's queue of enterprise batches with their deadlines, a case with
its batch, checks, OCR readings beside the typed values, documents and evidence (personal data in clear
only with ``?reason=``, recorded in the read log), the decision, the workflow's history, the reason-code
catalogue, and the staff's affiliations with enterprises (conflicts of interest).

Reviewers, review leads and admins read and decide; auditors read. The rules of a decision are
``chalicelib.fleet.cases``'.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from chalicelib.api.audit import ReasonQuery, read_of, record_reads, reveal_reason
from chalicelib.api.http import ApiModel, Blueprint, Call, PageQuery, Refusal, route
from chalicelib.audit.domain import RecordKind
from chalicelib.core import deps
from chalicelib.core.auth import Role
from chalicelib.fleet.cases_domain import CaseStage, FleetCase, case_not_found
from chalicelib.fleet.domain import BatchStatus, DocumentSlot, FleetBatch, document_slots
from chalicelib.kernel.personal import mask_id_number, mask_name

if TYPE_CHECKING:
    from chalicelib.verification.domain.evidence import ChainVerdict, EvidenceEntry
    from chalicelib.verification.domain.flows import Flow

bp = Blueprint(__name__)

READ_ROLES = frozenset({Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN, Role.AUDITOR})
DECIDE_ROLES = frozenset({Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN})
AFFILIATION_READ_ROLES = frozenset({Role.ADMIN, Role.REVIEW_LEAD, Role.AUDITOR})
AFFILIATION_WRITE_ROLES = frozenset({Role.ADMIN})

#: The flow's check of each document read by a machine (the others a reviewer reads).
_READ_CHECK = {
    DocumentSlot.BUSINESS_LICENCE: "ocr_business_licence",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "ocr_id_front",
    DocumentSlot.RESPONSIBLE_ID_BACK: "ocr_id_back",
}
#: The flow's document kind of each slot.
_SLOT_KIND = {
    DocumentSlot.BUSINESS_LICENCE: "business_licence",
    DocumentSlot.AUTHORIZATION_LETTER: "authorization_letter",
    DocumentSlot.CUSTODY_AGREEMENT: "custody_agreement",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "id_front",
    DocumentSlot.RESPONSIBLE_ID_BACK: "id_back",
}
_PERSONAL_MASKS = {"name": mask_name, "id_number": mask_id_number}


class FleetCaseItem(ApiModel):
    batch_id: str
    kind: str
    uscc: str
    company_name: str
    vehicles: int
    status: str
    stage: str | None = Field(description="first | lead | second: who the open review task waits for")
    submitted_at: datetime | None
    deadline_at: datetime | None
    remind_at: datetime | None
    overdue: bool
    escalated: bool
    round: int


def _item(case: FleetCase, now: datetime) -> FleetCaseItem:
    return FleetCaseItem(
        batch_id=case.batch_id,
        kind=case.kind,
        uscc=case.uscc,
        company_name=case.company_name,
        vehicles=case.vehicles,
        status=case.status.value,
        stage=case.stage.value if case.stage else None,
        submitted_at=case.submitted_at,
        deadline_at=case.deadline_at,
        remind_at=case.remind_at,
        overdue=case.overdue(now),
        escalated=case.escalated,
        round=case.round,
    )


class FleetCaseQueue(ApiModel):
    cases: list[FleetCaseItem]
    next_cursor: str | None


class FleetCaseQuery(PageQuery):
    status: Annotated[
        BatchStatus,
        Field(description="in_review (default) | resubmission_requested | approved | rejected | ..."),
        Refusal("fleet_case.status", "批次状态无效", "Unknown batch status"),
    ] = BatchStatus.IN_REVIEW
    stage: Annotated[
        CaseStage | None,
        Field(description="first | lead | second"),
        Refusal("fleet_case.stage", "审核环节无效", "Unknown review stage"),
    ] = None
    overdue: bool | None = Field(default=None, description="true: past the deadline; false: not yet")
    uscc: str | None = Field(default=None, max_length=18)


@route(
    bp,
    "/v1/fleet-cases",
    summary="The fleet review queue: cases by status (earliest deadline first), stage, overdue, USCC",
    roles=READ_ROLES,
    response=FleetCaseQueue,
    query=FleetCaseQuery,
    tags=("fleet review",),
)
def fleet_case_queue(call: Call) -> FleetCaseQueue:
    q: FleetCaseQuery = call.query
    service = deps.fleet_cases()
    page = service.queue(
        q.status, stage=q.stage, overdue=q.overdue, uscc=q.uscc, limit=q.limit, cursor=q.cursor
    )
    now = service.now()
    return FleetCaseQueue(cases=[_item(c, now) for c in page.cases], next_cursor=page.cursor)


class FleetReasonText(ApiModel):
    code: str
    zh: str
    en: str


class FleetCheckView(ApiModel):
    name: str
    verdict: str
    detail_zh: str | None = None
    detail_en: str | None = None
    reason_code: str | None = None


class FleetDocumentView(ApiModel):
    slot: str
    present: bool
    readable: bool | None = Field(description="read by OCR and agreeing; None: read by the reviewer only")
    url: str | None = Field(default=None, description="a short-lived link, with ?reason= only")


class FleetReadingView(ApiModel):
    document: str
    read: dict[str, str | None]
    typed: dict[str, str | None]


class FleetDecisionView(ApiModel):
    decision: str
    reason_codes: list[FleetReasonText]
    documents: list[str]
    by: str
    at: str
    stage: str
    round: int
    late: bool = False
    note: str | None = Field(default=None, description="with ?reason= only")


class FleetCaseBatchView(ApiModel):
    vins: list[str]
    dealer_code: str | None
    responsible_name_masked: str | None
    responsible_phone_verified: bool
    typed_company_name: str | None
    consents: dict[str, str]
    resubmit_documents: list[str]
    outcome_reasons: list[FleetReasonText]
    cards_total: int
    cards_pushed: int
    flow_id: str | None
    execution_arn: str | None


class FleetCaseDetail(ApiModel):
    case: FleetCaseItem
    outcome: str = Field(
        description="the automatic checks' outcome of the round: review | resubmit | rejected"
    )
    reminded: bool
    first_approver: str | None
    awaiting_decision: bool
    batch: FleetCaseBatchView
    checks: list[FleetCheckView]
    face: str | None = Field(description="the responsible person's face check: passed, failed, approved...")
    identity: dict[str, str | None] | None = Field(description="the responsible person as typed")
    documents: list[FleetDocumentView]
    readings: list[FleetReadingView]
    decisions: list[FleetDecisionView]
    evidence: list[dict[str, Any]]
    evidence_chain: str = Field(description="ok, empty, or the first broken link (evidence.* reason)")


def _check_view(check: dict[str, Any]) -> FleetCheckView:
    def text(key: str) -> str | None:
        value = check.get(key)
        return str(value) if value is not None else None

    return FleetCheckView(
        name=str(check.get("name")),
        verdict=str(check.get("verdict")),
        detail_zh=text("detail_zh"),
        detail_en=text("detail_en"),
        reason_code=text("reason_code"),
    )


def _chain(verdict: ChainVerdict) -> str:
    if verdict.ok:
        return "ok" if verdict.checked else "empty"
    return verdict.reason or "broken"


def _reasons(codes: Any) -> list[FleetReasonText]:
    from chalicelib.fleet.reasons import texts

    return [FleetReasonText(**t) for t in texts(list(codes))]


def _batch_view(batch: FleetBatch) -> FleetCaseBatchView:
    return FleetCaseBatchView(
        vins=list(batch.vins),
        dealer_code=batch.dealer_code,
        responsible_name_masked=batch.responsible_name_masked,
        responsible_phone_verified=batch.responsible_phone_verified,
        typed_company_name=batch.typed_company_name,
        consents=dict(batch.consents),
        resubmit_documents=[s.value for s in batch.resubmit_documents],
        outcome_reasons=_reasons(batch.outcome_reasons),
        cards_total=batch.cards_total,
        cards_pushed=batch.cards_pushed,
        flow_id=batch.flow_id,
        execution_arn=batch.execution_arn,
    )


def _clear_or_masked(name: str, value: str | None, reveal: bool) -> str | None:
    if value is None or reveal or name not in _PERSONAL_MASKS:
        return value
    return _PERSONAL_MASKS[name](value)


def _readings(
    batch: FleetBatch, flow: Flow | None, entries: list[EvidenceEntry], reveal: bool
) -> list[FleetReadingView]:
    """The latest OCR reading of each machine-read document beside what was typed."""
    latest: dict[str, EvidenceEntry] = {}
    for entry in entries:
        if entry.kind.value == "ocr_read":
            latest[str(entry.public.get("document"))] = entry
    out: list[FleetReadingView] = []
    licence = latest.get("business_licence")
    if licence is not None:
        out.append(
            FleetReadingView(
                document="business_licence",
                # A company's name and code are public: shown as read.
                read={"name": licence.personal.get("name"), "uscc": _public_text(licence, "uscc")},
                typed={
                    "name": batch.typed_company_name,
                    "uscc": batch.uscc,
                    "registry_name": batch.company_name,
                },
            )
        )
    front = latest.get("id_front")
    if front is not None:
        identity = flow.identity if flow is not None else None
        out.append(
            FleetReadingView(
                document="id_front",
                read={k: _clear_or_masked(k, front.personal.get(k), reveal) for k in ("name", "id_number")},
                typed={
                    "name": _clear_or_masked("name", identity.name if identity else None, reveal),
                    "id_number": _clear_or_masked(
                        "id_number", identity.id_number if identity else None, reveal
                    ),
                },
            )
        )
    return out


def _public_text(entry: EvidenceEntry, key: str) -> str | None:
    value = entry.public.get(key) or entry.personal.get(key)
    return str(value) if value else None


def _evidence(entries: list[EvidenceEntry], reveal: bool) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        doc = entry.model_dump(mode="json")
        if not reveal:
            doc["personal"] = sorted(entry.personal)  # which personal facts exist, not their values
        out.append(doc)
    return out


def _decision(d: dict[str, Any], reveal: bool) -> FleetDecisionView:
    return FleetDecisionView(
        decision=str(d.get("decision")),
        reason_codes=_reasons(d.get("reason_codes") or []),
        documents=list(d.get("documents") or []),
        by=str(d.get("by")),
        at=str(d.get("at")),
        stage=str(d.get("stage")),
        round=int(d.get("round") or 1),
        late=bool(d.get("late")),
        note=d.get("note") if reveal else None,
    )


@route(
    bp,
    "/v1/fleet-cases/{batch_id}",
    summary="A fleet case: its batch, checks, OCR readings beside the typed values, documents, decisions "
    "and evidence; personal data in clear with ?reason= (recorded in the read log)",
    roles=READ_ROLES,
    response=FleetCaseDetail,
    query=ReasonQuery,
    errors=(404, 422, 503),
    tags=("fleet review",),
)
def fleet_case(call: Call, batch_id: str) -> FleetCaseDetail:
    reason = reveal_reason(call, call.user.reveals_personal_data)
    service = deps.fleet_cases()
    case = service.get(batch_id)
    batch = deps.fleet_batches().get(batch_id)
    if batch is None:
        raise case_not_found(batch_id)
    verification = deps.verification_service()
    flow = verification.flows.find(batch.flow_id) if batch.flow_id else None
    log = deps.evidence_log()
    entries = log.entries(batch.flow_id) if batch.flow_id else []
    reveal = reason is not None
    if reason is not None and batch.flow_id:
        from chalicelib.api.verification import identity_fields

        fields = [
            *(identity_fields(flow.identity) if flow is not None else []),
            *(f"documents.{kind}" for kind in sorted(flow.documents if flow else {})),
            *sorted({f"evidence.{e.kind}.{name}" for e in entries for name in e.personal}),
            *(["decisions.note"] if any(d.get("note") for d in case.decisions) else []),
        ]
        read = read_of(RecordKind.FLOW, batch.flow_id, fields)
        record_reads(call, [read] if read else [], reason)
    documents = []
    for slot in document_slots(batch.kind):
        kind = _SLOT_KIND[slot]
        present = flow is not None and kind in flow.documents
        check = _READ_CHECK.get(slot)
        verdict = flow.checks.get(check) if flow is not None and check else None
        readable = (
            None if check is None else bool(verdict is not None and verdict.value in ("passed", "approved"))
        )
        url = verification.document_url(flow, kind) if reveal and present and flow is not None else None
        documents.append(FleetDocumentView(slot=slot.value, present=present, readable=readable, url=url))
    identity = None
    if flow is not None and flow.identity is not None:
        identity = {
            "id_type": flow.identity.id_type,
            "name": _clear_or_masked("name", flow.identity.name, reveal),
            "id_number": _clear_or_masked("id_number", flow.identity.id_number, reveal),
        }
    face = flow.checks.get("face") if flow is not None else None
    return FleetCaseDetail(
        case=_item(case, service.now()),
        outcome=case.outcome,
        reminded=case.reminded,
        first_approver=case.first_approver,
        awaiting_decision=case.awaiting_decision,
        batch=_batch_view(batch),
        checks=[_check_view(c) for c in case.checks],
        face=face.value if face is not None else None,
        identity=identity,
        documents=documents,
        readings=_readings(batch, flow, entries, reveal),
        decisions=[_decision(d, reveal) for d in case.decisions],
        evidence=_evidence(entries, reveal),
        evidence_chain=_chain(log.verify(batch.flow_id)) if batch.flow_id else "empty",
    )


class FleetDecisionBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    decision: Annotated[
        str, Field(pattern="^(approve|reject|resubmit)$", description="approve | reject | resubmit")
    ]
    reason_codes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20
    )
    documents: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=5, description="resubmit only: the slots to replace"
    )
    note: str | None = Field(default=None, max_length=500)


@route(
    bp,
    "/v1/fleet-cases/{batch_id}/decision",
    method="POST",
    summary="Decide a fleet case (approve, reject, or ask for named documents again), with reason codes",
    roles=DECIDE_ROLES,
    body=FleetDecisionBody,
    response=FleetCaseItem,
    errors=(404, 409),
    tags=("fleet review",),
)
def decide_fleet_case(call: Call, batch_id: str) -> FleetCaseItem:
    body: FleetDecisionBody = call.body
    service = deps.fleet_cases()
    decided = service.decide(batch_id, call.user, body.decision, body.reason_codes, body.documents, body.note)
    return _item(decided, service.now())


class FleetWorkflowEventView(ApiModel):
    at: datetime
    type: str
    state: str | None
    detail: str


class FleetCaseHistory(ApiModel):
    batch_id: str
    events: list[FleetWorkflowEventView]


@route(
    bp,
    "/v1/fleet-cases/{batch_id}/history",
    summary="The review workflow's execution history of a batch (states, tasks, timeouts; no payloads)",
    roles=READ_ROLES,
    response=FleetCaseHistory,
    errors=(404,),
    tags=("fleet review",),
)
def fleet_case_history(call: Call, batch_id: str) -> FleetCaseHistory:
    events = deps.fleet_cases().history(batch_id)
    return FleetCaseHistory(
        batch_id=batch_id,
        events=[FleetWorkflowEventView(at=e.at, type=e.type, state=e.state, detail=e.detail) for e in events],
    )


class FleetReasonEntry(ApiModel):
    code: str
    zh: str
    en: str
    decision: str
    resubmittable: bool
    slot: str | None


class FleetReasonCatalogue(ApiModel):
    reasons: list[FleetReasonEntry]


@route(
    bp,
    "/v1/fleet-reasons",
    summary="The reason codes of fleet review decisions: text, decision, whether a resubmission may follow",
    roles=READ_ROLES,
    response=FleetReasonCatalogue,
    tags=("fleet review",),
)
def fleet_reasons(call: Call) -> FleetReasonCatalogue:
    from chalicelib.fleet.reasons import CATALOGUE

    return FleetReasonCatalogue(
        reasons=[
            FleetReasonEntry(
                code=r.code,
                zh=r.zh,
                en=r.en,
                decision=r.decision.value,
                resubmittable=r.resubmittable,
                slot=r.slot.value if r.slot else None,
            )
            for r in CATALOGUE
        ]
    )


class StaffAffiliationsBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    usccs: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(max_length=50)


class StaffAffiliationsView(ApiModel):
    subject: str
    usccs: list[str]


@route(
    bp,
    "/v1/admin/staff/{subject}/affiliations",
    method="PUT",
    summary="Set the enterprises (USCCs) a member of staff is affiliated with (they decide none of their "
    "cases)",
    roles=AFFILIATION_WRITE_ROLES,
    body=StaffAffiliationsBody,
    response=StaffAffiliationsView,
    tags=("fleet review",),
)
def put_affiliations(call: Call, subject: str) -> StaffAffiliationsView:
    body: StaffAffiliationsBody = call.body
    usccs = deps.fleet_cases().set_affiliations(subject, body.usccs, call.user)
    return StaffAffiliationsView(subject=subject, usccs=list(usccs))


@route(
    bp,
    "/v1/admin/staff/{subject}/affiliations",
    summary="The enterprises (USCCs) a member of staff is affiliated with",
    roles=AFFILIATION_READ_ROLES,
    response=StaffAffiliationsView,
    tags=("fleet review",),
)
def get_affiliations(call: Call, subject: str) -> StaffAffiliationsView:
    return StaffAffiliationsView(subject=subject, usccs=list(deps.fleet_cases().affiliations(subject)))
