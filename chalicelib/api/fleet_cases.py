"""Fleet review API (单位批次审核): the OEM's queue of enterprise batches with their deadlines, a case with
its batch, checks, OCR readings beside the typed values, documents and evidence (personal data in clear
only with ``?reason=``, recorded in the read log), the decision, the workflow's history, the reason-code
catalogue, and the staff's affiliations with enterprises (conflicts of interest).

Reviewers, review leads and admins read and decide; auditors read. The rules of a decision are
``chalicelib.fleet.cases``'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.api.audit import read_of, record_reads, reveal_reason
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role

if TYPE_CHECKING:
    from chalicelib.api import fleet_cases_views as views
    from chalicelib.api import models as api_models
    from chalicelib.audit import domain as audit_domain
    from chalicelib.verification.domain.evidence import ChainVerdict, EvidenceEntry
else:
    api_models = lazy.module("chalicelib.api.models")
    audit_domain = lazy.module("chalicelib.audit.domain")
    views = lazy.module("chalicelib.api.fleet_cases_views")

bp = Blueprint(__name__)

READ_ROLES = frozenset({Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN, Role.AUDITOR})
DECIDE_ROLES = frozenset({Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN})
AFFILIATION_READ_ROLES = frozenset({Role.ADMIN, Role.REVIEW_LEAD, Role.AUDITOR})
AFFILIATION_WRITE_ROLES = frozenset({Role.ADMIN})


@route(
    bp,
    "/v1/fleet-cases",
    summary="The fleet review queue: cases by status (earliest deadline first), stage, overdue, USCC",
    roles=READ_ROLES,
    response=lambda: views.FleetCaseQueue,
    query=lambda: views.FleetCaseQuery,
    tags=("fleet review",),
)
def fleet_case_queue(call: Call) -> views.FleetCaseQueue:
    q: views.FleetCaseQuery = call.query
    service = deps.fleet_cases()
    page = service.queue(
        q.status, stage=q.stage, overdue=q.overdue, uscc=q.uscc, limit=q.limit, cursor=q.cursor
    )
    now = service.now()
    return views.FleetCaseQueue(cases=[views.item(c, now) for c in page.cases], next_cursor=page.cursor)


def _chain(verdict: ChainVerdict) -> str:
    if verdict.ok:
        return "ok" if verdict.checked else "empty"
    return verdict.reason or "broken"


def _evidence(entries: list[EvidenceEntry], reveal: bool) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        doc = entry.model_dump(mode="json")
        if not reveal:
            doc["personal"] = sorted(entry.personal)  # which personal facts exist, not their values
        out.append(doc)
    return out


@route(
    bp,
    "/v1/fleet-cases/{batch_id}",
    summary="A fleet case: its batch, checks, OCR readings beside the typed values, documents, decisions "
    "and evidence; personal data in clear with ?reason= (recorded in the read log)",
    roles=READ_ROLES,
    response=lambda: views.FleetCaseDetail,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("fleet review",),
)
def fleet_case(call: Call, batch_id: str) -> views.FleetCaseDetail:
    from chalicelib.fleet.cases_domain import case_not_found
    from chalicelib.fleet.domain import document_slots

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
        from chalicelib.api.verification_views import identity_fields

        fields = [
            *(identity_fields(flow.identity) if flow is not None else []),
            *(f"documents.{kind}" for kind in sorted(flow.documents if flow else {})),
            *sorted({f"evidence.{e.kind}.{name}" for e in entries for name in e.personal}),
            *(["decisions.note"] if any(d.get("note") for d in case.decisions) else []),
        ]
        read = read_of(audit_domain.RecordKind.FLOW, batch.flow_id, fields)
        record_reads(call, [read] if read else [], reason)
    documents = []
    for slot in document_slots(batch.kind):
        kind = views.SLOT_KIND[slot]
        present = flow is not None and kind in flow.documents
        check = views.READ_CHECK.get(slot)
        verdict = flow.checks.get(check) if flow is not None and check else None
        readable = (
            None if check is None else bool(verdict is not None and verdict.value in ("passed", "approved"))
        )
        url = verification.document_url(flow, kind) if reveal and present and flow is not None else None
        documents.append(
            views.FleetDocumentView(slot=slot.value, present=present, readable=readable, url=url)
        )
    identity = None
    if flow is not None and flow.identity is not None:
        identity = {
            "id_type": flow.identity.id_type,
            "name": views.clear_or_masked("name", flow.identity.name, reveal),
            "id_number": views.clear_or_masked("id_number", flow.identity.id_number, reveal),
        }
    face = flow.checks.get("face") if flow is not None else None
    return views.FleetCaseDetail(
        case=views.item(case, service.now()),
        outcome=case.outcome,
        reminded=case.reminded,
        first_approver=case.first_approver,
        awaiting_decision=case.awaiting_decision,
        batch=views.batch_view(batch),
        checks=[views.check_view(c) for c in case.checks],
        face=face.value if face is not None else None,
        identity=identity,
        documents=documents,
        readings=views.readings(batch, flow, entries, reveal),
        decisions=[views.decision(d, reveal) for d in case.decisions],
        evidence=_evidence(entries, reveal),
        evidence_chain=_chain(log.verify(batch.flow_id)) if batch.flow_id else "empty",
    )


@route(
    bp,
    "/v1/fleet-cases/{batch_id}/decision",
    method="POST",
    summary="Decide a fleet case (approve, reject, or ask for named documents again), with reason codes",
    roles=DECIDE_ROLES,
    body=lambda: views.FleetDecisionBody,
    response=lambda: views.FleetCaseItem,
    errors=(404, 409),
    tags=("fleet review",),
)
def decide_fleet_case(call: Call, batch_id: str) -> views.FleetCaseItem:
    body: views.FleetDecisionBody = call.body
    service = deps.fleet_cases()
    decided = service.decide(batch_id, call.user, body.decision, body.reason_codes, body.documents, body.note)
    return views.item(decided, service.now())


@route(
    bp,
    "/v1/fleet-cases/{batch_id}/history",
    summary="The review workflow's execution history of a batch (states, tasks, timeouts; no payloads)",
    roles=READ_ROLES,
    response=lambda: views.FleetCaseHistory,
    errors=(404,),
    tags=("fleet review",),
)
def fleet_case_history(call: Call, batch_id: str) -> views.FleetCaseHistory:
    events = deps.fleet_cases().history(batch_id)
    return views.FleetCaseHistory(
        batch_id=batch_id,
        events=[
            views.FleetWorkflowEventView(at=e.at, type=e.type, state=e.state, detail=e.detail) for e in events
        ],
    )


@route(
    bp,
    "/v1/fleet-reasons",
    summary="The reason codes of fleet review decisions: text, decision, whether a resubmission may follow",
    roles=READ_ROLES,
    response=lambda: views.FleetReasonCatalogue,
    tags=("fleet review",),
)
def fleet_reasons(call: Call) -> views.FleetReasonCatalogue:
    from chalicelib.fleet.reasons import CATALOGUE

    return views.FleetReasonCatalogue(
        reasons=[
            views.FleetReasonEntry(
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


@route(
    bp,
    "/v1/admin/staff/{subject}/affiliations",
    method="PUT",
    summary="Set the enterprises (USCCs) a member of staff is affiliated with (they decide none of their "
    "cases)",
    roles=AFFILIATION_WRITE_ROLES,
    body=lambda: views.StaffAffiliationsBody,
    response=lambda: views.StaffAffiliationsView,
    tags=("fleet review",),
)
def put_affiliations(call: Call, subject: str) -> views.StaffAffiliationsView:
    body: views.StaffAffiliationsBody = call.body
    usccs = deps.fleet_cases().set_affiliations(subject, body.usccs, call.user)
    return views.StaffAffiliationsView(subject=subject, usccs=list(usccs))


@route(
    bp,
    "/v1/admin/staff/{subject}/affiliations",
    summary="The enterprises (USCCs) a member of staff is affiliated with",
    roles=AFFILIATION_READ_ROLES,
    response=lambda: views.StaffAffiliationsView,
    tags=("fleet review",),
)
def get_affiliations(call: Call, subject: str) -> views.StaffAffiliationsView:
    return views.StaffAffiliationsView(subject=subject, usccs=list(deps.fleet_cases().affiliations(subject)))
