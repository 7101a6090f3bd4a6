"""The models of the fleet review routes (``chalicelib.api.fleet_cases``) and the views built from a
case, its batch and its evidence, loaded on their first use: a cold start of the app builds none of
them and imports neither the fleet's domain nor its cases'."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, PageQuery
from chalicelib.fleet.cases_domain import CaseStage, FleetCase
from chalicelib.fleet.domain import BatchStatus, DocumentSlot, FleetBatch
from chalicelib.kernel.personal import mask_id_number, mask_name

if TYPE_CHECKING:
    from chalicelib.verification.domain.evidence import EvidenceEntry
    from chalicelib.verification.domain.flows import Flow

#: The flow's check of each document read by a machine (the others a reviewer reads).
READ_CHECK = {
    DocumentSlot.BUSINESS_LICENCE: "ocr_business_licence",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "ocr_id_front",
    DocumentSlot.RESPONSIBLE_ID_BACK: "ocr_id_back",
}
#: The flow's document kind of each slot.
SLOT_KIND = {
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


class FleetWorkflowEventView(ApiModel):
    at: datetime
    type: str
    state: str | None
    detail: str


class FleetCaseHistory(ApiModel):
    batch_id: str
    events: list[FleetWorkflowEventView]


class FleetReasonEntry(ApiModel):
    code: str
    zh: str
    en: str
    decision: str
    resubmittable: bool
    slot: str | None


class FleetReasonCatalogue(ApiModel):
    reasons: list[FleetReasonEntry]


class StaffAffiliationsBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    usccs: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(max_length=50)


class StaffAffiliationsView(ApiModel):
    subject: str
    usccs: list[str]


def item(case: FleetCase, now: datetime) -> FleetCaseItem:
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


def check_view(check: dict[str, Any]) -> FleetCheckView:
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


def reasons(codes: Any) -> list[FleetReasonText]:
    from chalicelib.fleet.reasons import texts

    return [FleetReasonText(**t) for t in texts(list(codes))]


def batch_view(batch: FleetBatch) -> FleetCaseBatchView:
    return FleetCaseBatchView(
        vins=list(batch.vins),
        dealer_code=batch.dealer_code,
        responsible_name_masked=batch.responsible_name_masked,
        responsible_phone_verified=batch.responsible_phone_verified,
        typed_company_name=batch.typed_company_name,
        consents=dict(batch.consents),
        resubmit_documents=[s.value for s in batch.resubmit_documents],
        outcome_reasons=reasons(batch.outcome_reasons),
        cards_total=batch.cards_total,
        cards_pushed=batch.cards_pushed,
        flow_id=batch.flow_id,
        execution_arn=batch.execution_arn,
    )


def clear_or_masked(name: str, value: str | None, reveal: bool) -> str | None:
    if value is None or reveal or name not in _PERSONAL_MASKS:
        return value
    return _PERSONAL_MASKS[name](value)


def readings(
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
                read={k: clear_or_masked(k, front.personal.get(k), reveal) for k in ("name", "id_number")},
                typed={
                    "name": clear_or_masked("name", identity.name if identity else None, reveal),
                    "id_number": clear_or_masked(
                        "id_number", identity.id_number if identity else None, reveal
                    ),
                },
            )
        )
    return out


def _public_text(entry: EvidenceEntry, key: str) -> str | None:
    value = entry.public.get(key) or entry.personal.get(key)
    return str(value) if value else None


def decision(d: dict[str, Any], reveal: bool) -> FleetDecisionView:
    return FleetDecisionView(
        decision=str(d.get("decision")),
        reason_codes=reasons(d.get("reason_codes") or []),
        documents=list(d.get("documents") or []),
        by=str(d.get("by")),
        at=str(d.get("at")),
        stage=str(d.get("stage")),
        round=int(d.get("round") or 1),
        late=bool(d.get("late")),
        note=d.get("note") if reveal else None,
    )
