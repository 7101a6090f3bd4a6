"""The fleet review through the staff API on the embedded AWS (cases in DynamoDB), the workflow's tasks
played by the fake workflow: the queue and its filters, a case masked and in clear with a reason (read
logged), a conflict of interest, bad reasons, the decision completing the task once, four-eyes, the
reminder and the escalation to a lead, the history and the reason catalogue."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.settings import get_settings
from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch
from chalicelib.fleet.handlers import HANDLERS
from chalicelib.fleet.tasks import TaskMessage
from chalicelib.kernel.personal import IdType, id_lookup_value, mask_phone
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowPurpose, TypedIdentity
from tests.fakes.workflow import FakeWorkflow
from tests.synthetic_documents import COMPANY, PERSON_ID_NUMBER, PERSON_NAME

Headers = Callable[..., dict[str, str]]
LEADS_PHONE = "13800138016"


@pytest.fixture
def workflow(api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorkflow]:
    """The fake workflow in place of Step Functions for the cases (settings as the test stage has them)."""
    fake = FakeWorkflow()
    monkeypatch.setattr(deps, "workflow", lru_cache(maxsize=1)(lambda: fake))
    deps.fleet_cases.cache_clear()
    yield fake
    get_settings.cache_clear()  # a test may have set the leads' phone
    deps.fleet_cases.cache_clear()


def staff(token: Callable[..., str], subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, subject=subject)}"}


def batch_in_review(workflow: FakeWorkflow, vehicles: int = 3) -> FleetBatch:
    """A submitted batch whose automatic checks passed (the round opened as the checks open it) and
    whose first review task waits."""
    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore

    owner = f"acc_{uuid.uuid4().hex[:12]}"
    verification = deps.verification_service()
    flow = verification.open_flow(owner, FlowPurpose.ENTERPRISE_REGISTRATION)
    flow = verification.flows.save(
        flow,
        identity=TypedIdentity(id_type="resident_id", id_number=PERSON_ID_NUMBER, name=PERSON_NAME),
        person_hash=deps.keyed_hasher().digest(id_lookup_value(IdType.RESIDENT_ID, PERSON_ID_NUMBER)),
        checks={CheckName.FACE: CheckVerdict.PASSED},
    )
    batch_id = f"fb_{uuid.uuid4().hex[:24]}"
    now = datetime.now(UTC)
    batch = FleetBatch(
        batch_id=batch_id,
        uscc=COMPANY["uscc"],
        company_name=COMPANY["name"],
        kind=BatchKind.REGISTRATION,
        status=BatchStatus.SUBMITTED,
        created_by=owner,
        created_at=now,
        updated_at=now,
        vins=tuple(f"LFV2A21K{uuid.uuid4().hex[:9].upper()}" for _ in range(vehicles)),
        flow_id=flow.flow_id,
        responsible_phone_verified=True,
        responsible_name_masked="王**",
        typed_company_name=COMPANY["name"],
        submitted_at=now,
        execution_arn=workflow.start(batch_id, {"batch_id": batch_id, "kind": "registration"}),
    )
    DynamoBatchStore(deps.field_cipher()).create(batch)
    checks = [
        {
            "name": "uscc",
            "verdict": "passed",
            "detail_zh": "代码有效",
            "detail_en": "Valid",
            "reason_code": None,
        }
    ]
    output = deps.fleet_cases().open_round(batch, checks, "review")
    assert output["outcome"] == "review"
    review_task(workflow, batch_id, "first")
    return batch


def review_task(workflow: FakeWorkflow, batch_id: str, stage: str) -> TaskMessage:
    message = workflow.task("review", batch_id, stage=stage)
    assert HANDLERS["review"](message) is None
    return message


def test_a_reviewer_finds_reads_and_decides_a_fleet_case_once(
    api: Any, workflow: FakeWorkflow, token: Callable[..., str]
) -> None:
    batch = batch_in_review(workflow)
    alice = staff(token, "alice", "reviewer")
    bob = staff(token, "bob", "reviewer")
    admin = staff(token, "root", "admin")
    auditor = staff(token, "audrey", "auditor")

    # the reason catalogue says which reasons allow a resubmission
    reasons = api.http.get("/v1/fleet-reasons", headers=alice).json_body["reasons"]
    by_code = {r["code"]: r for r in reasons}
    assert by_code["licence_unreadable"]["resubmittable"] is True
    assert by_code["fraud_suspected"]["decision"] == "reject"

    # the queue lists the case, not yet overdue, waiting at the first stage
    queue = api.http.get("/v1/fleet-cases?stage=first&overdue=false&limit=100", headers=alice).json_body
    item = next(c for c in queue["cases"] if c["batch_id"] == batch.batch_id)
    assert (item["status"], item["stage"], item["overdue"], item["vehicles"]) == (
        "in_review",
        "first",
        False,
        3,
    )
    overdue = api.http.get("/v1/fleet-cases?overdue=true&limit=100", headers=alice).json_body["cases"]
    assert batch.batch_id not in [c["batch_id"] for c in overdue]
    assert (
        api.http.get("/v1/fleet-cases?status=nonsense", headers=alice).json_body["code"]
        == "fleet_case.status"
    )

    # the case is masked without a reason, in clear with one (and that read is logged)
    masked = api.http.get(f"/v1/fleet-cases/{batch.batch_id}", headers=alice).json_body
    assert masked["identity"]["name"] != PERSON_NAME
    assert masked["awaiting_decision"] is True
    assert masked["face"] == "passed"
    assert masked["checks"][0]["name"] == "uscc"
    assert {d["slot"] for d in masked["documents"]} >= {"business_licence", "custody_agreement"}
    assert masked["evidence"][0]["kind"] == "review_opened"
    clear = api.http.get(f"/v1/fleet-cases/{batch.batch_id}?reason=核对责任人身份", headers=alice).json_body
    assert clear["identity"]["name"] == PERSON_NAME
    reads = api.http.get(
        f"/v1/audit/reads?record_kind=flow&record_id={batch.flow_id}", headers=auditor
    ).json_body["reads"]
    assert [r["actor"] for r in reads] == ["alice"]

    # a reviewer affiliated with the enterprise may not decide its case
    put = api.http.put(
        "/v1/admin/staff/alice/affiliations",
        body=_json({"usccs": [COMPANY["uscc"]]}),
        headers=_with_json(admin),
    )
    assert put.status_code == 200
    assert api.http.get("/v1/admin/staff/alice/affiliations", headers=admin).json_body["usccs"] == [
        COMPANY["uscc"]
    ]
    refused = decide(api, batch.batch_id, alice, {"decision": "approve", "reason_codes": []})
    assert (refused.status_code, refused.json_body["code"]) == (403, "fleet_case.conflict_of_interest")

    # bad reasons are refused; an auditor decides nothing
    unknown = decide(api, batch.batch_id, bob, {"decision": "reject", "reason_codes": ["made_up"]})
    assert (unknown.status_code, unknown.json_body["field"]) == (422, "reason_codes")
    no_documents = decide(
        api, batch.batch_id, bob, {"decision": "resubmit", "reason_codes": ["licence_unreadable"]}
    )
    assert (no_documents.status_code, no_documents.json_body["code"]) == (
        422,
        "fleet_case.documents_required",
    )
    assert (
        decide(api, batch.batch_id, auditor, {"decision": "approve", "reason_codes": []}).status_code == 403
    )
    assert workflow.completions == []

    # another reviewer approves: the task completes once, the batch is approved
    approved = decide(
        api, batch.batch_id, bob, {"decision": "approve", "reason_codes": ["documents_verified"]}
    )
    assert approved.status_code == 200, approved.json_body
    assert approved.json_body["status"] == "approved"
    assert workflow.outputs(batch.batch_id) == [{"decision": "approve", "second_approval_needed": False}]
    assert deps.fleet_batches().get(batch.batch_id).status is BatchStatus.APPROVED  # type: ignore[union-attr]
    again = decide(api, batch.batch_id, bob, {"decision": "approve", "reason_codes": []})
    assert (again.status_code, again.json_body["code"]) == (409, "fleet_case.not_awaiting_decision")
    assert len(workflow.completions) == 1

    # the decision is on the case and in the evidence; the history shows the workflow's events
    detail = api.http.get(f"/v1/fleet-cases/{batch.batch_id}", headers=alice).json_body
    assert [d["by"] for d in detail["decisions"]] == ["bob"]
    assert detail["evidence"][-1]["kind"] == "review_decided"
    assert detail["evidence_chain"] == "ok"
    history = api.http.get(f"/v1/fleet-cases/{batch.batch_id}/history", headers=auditor).json_body
    assert [e["type"] for e in history["events"]][-1] == "TaskSucceeded"


def test_a_large_batch_needs_two_approvers_and_a_late_case_goes_to_a_lead(
    api: Any, workflow: FakeWorkflow, token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = staff(token, "alice", "reviewer")
    bob = staff(token, "bob", "reviewer")
    lead = staff(token, "lena", "review_lead")

    # four-eyes: 60 vehicles is above the default 50
    large = batch_in_review(workflow, vehicles=60)
    first = decide(api, large.batch_id, alice, {"decision": "approve", "reason_codes": []})
    assert first.json_body["status"] == "in_review"
    assert workflow.outputs(large.batch_id) == [{"decision": "approve", "second_approval_needed": True}]
    review_task(workflow, large.batch_id, "second")
    same = decide(api, large.batch_id, alice, {"decision": "approve", "reason_codes": []})
    assert (same.status_code, same.json_body["code"]) == (403, "fleet_case.same_approver")
    second = decide(api, large.batch_id, bob, {"decision": "approve", "reason_codes": []})
    assert second.json_body["status"] == "approved"
    assert workflow.outputs(large.batch_id)[-1] == {"decision": "approve", "second_approval_needed": False}

    # the reminder, then the deadline: the case is escalated to the leads (their duty phone told)
    monkeypatch.setenv("CHEKA_FLEET_REVIEW_LEAD_PHONE", LEADS_PHONE)
    get_settings.cache_clear()
    deps.fleet_cases.cache_clear()
    late = batch_in_review(workflow)
    assert HANDLERS["remind"](workflow.task("remind", late.batch_id, token=False)) is None
    review_task(workflow, late.batch_id, "first")
    escalation = review_task(workflow, late.batch_id, "lead")
    leads = api.http.get("/v1/fleet-cases?stage=lead&limit=100", headers=lead).json_body["cases"]
    escalated = next(c for c in leads if c["batch_id"] == late.batch_id)
    assert escalated["escalated"] is True
    texts = [m.text for m in deps.sms_drop().recent() if m.phone == mask_phone(LEADS_PHONE)]
    assert [t for t in texts if late.batch_id in t and "审核组长" in t]
    detail = api.http.get(f"/v1/fleet-cases/{late.batch_id}", headers=lead).json_body
    assert detail["reminded"] is True
    assert [e["kind"] for e in detail["evidence"]][-2:] == ["review_reminded", "review_escalated"]
    refused = decide(api, late.batch_id, bob, {"decision": "approve", "reason_codes": []})
    assert (refused.status_code, refused.json_body["code"]) == (409, "fleet_case.escalated")
    assert refused.json_body["details"] == {"decided_by": "review_lead"}
    decided = decide(
        api,
        late.batch_id,
        lead,
        {
            "decision": "resubmit",
            "reason_codes": ["letter_missing_seal"],
            "documents": ["authorization_letter"],
        },
    )
    assert decided.status_code == 200, decided.json_body
    batch = deps.fleet_batches().get(late.batch_id)
    assert batch is not None
    assert batch.status is BatchStatus.RESUBMISSION_REQUESTED
    assert [s.value for s in batch.resubmit_documents] == ["authorization_letter"]
    # the escalation's message delivered again holds no dead token and changes nothing
    assert HANDLERS["review"](escalation) is None
    after = api.http.get(f"/v1/fleet-cases/{late.batch_id}", headers=lead).json_body
    assert after["case"]["status"] == "resubmission_requested"
    assert after["awaiting_decision"] is False


def decide(api: Any, batch_id: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return api.http.post(
        f"/v1/fleet-cases/{batch_id}/decision", body=_json(body), headers=_with_json(headers)
    )


def _json(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body, ensure_ascii=False)


def _with_json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}
