"""The review of fleet batches over fakes: the rounds, the task tokens (single use, sealed), and every
refusal of a decision — conflict of interest, four-eyes, the escalated case, unknown reasons, a
resubmission without documents — each changing nothing."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest

from chalicelib.core.auth import Principal, Role
from chalicelib.fleet.cases import FleetCases
from chalicelib.fleet.cases_domain import CaseStage, FleetCase
from chalicelib.fleet.deadlines import WorkingCalendar, review_window
from chalicelib.fleet.domain import BatchKind, BatchStatus, DocumentSlot, FleetBatch
from chalicelib.kernel.errors import DomainError
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeCipher
from tests.fakes.evidence import FakeEvidenceLog
from tests.fakes.fleet_cases import FakeAffiliations, FakeBatches, FakeCaseStore
from tests.fakes.workflow import FakeWorkflow

USCC = "91110000MA01ABCD1X"
FLOW = "flow_fleet_1"


class Weekdays(WorkingCalendar):
    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5


def staff(subject: str, *roles: Role) -> Principal:
    return Principal(subject=subject, roles=frozenset(roles or (Role.REVIEWER,)), token_id=f"t-{subject}")


ALICE = staff("alice")
BOB = staff("bob")
LEAD = staff("lena", Role.REVIEW_LEAD)


class World:
    def __init__(self, four_eyes: int = 50) -> None:
        # Friday 2026-03-06 15:00 China time.
        self.clock = FakeClock(datetime(2026, 3, 6, 7, 0, tzinfo=UTC))
        self.store = FakeCaseStore()
        self.affiliations = FakeAffiliations()
        self.batches = FakeBatches()
        self.workflow = FakeWorkflow()
        self.evidence = FakeEvidenceLog()
        self.alerts: list[str] = []
        self.cases = FleetCases(
            self.store,
            self.affiliations,
            FakeCipher(),
            self.batches,
            lambda: self.workflow,
            window=lambda now: review_window(now, working_days=1, remind_fraction=0.5, calendar=Weekdays()),
            four_eyes_vehicles=four_eyes,
            evidence=self.evidence,
            alert_leads=lambda case: self.alerts.append(case.batch_id),
            clock=self.clock,
        )

    def batch(self, vehicles: int = 3, kind: BatchKind = BatchKind.REGISTRATION, n: int = 1) -> FleetBatch:
        now = self.clock()
        batch = FleetBatch(
            batch_id=f"fb_{n:024x}",
            uscc=USCC,
            company_name="北京某某汽车租赁有限公司",
            kind=kind,
            status=BatchStatus.SUBMITTED,
            created_by="acc_1",
            created_at=now,
            updated_at=now,
            vins=tuple(f"LVSHCAMB1CE{i:06d}" for i in range(vehicles)),
            flow_id=FLOW,
            submitted_at=now,
            execution_arn=self.workflow.start(f"fb_{n:024x}", {}),
        )
        return self.batches.add(batch)

    def in_review(self, vehicles: int = 3, **kw: Any) -> str:
        """A batch whose automatic checks passed, its first review task waiting."""
        batch = self.batch(vehicles, **kw)
        self.cases.open_round(batch, [{"name": "uscc", "verdict": "passed", "reason_code": None}], "review")
        self.review_task(batch.batch_id, CaseStage.FIRST)
        return batch.batch_id

    def review_task(self, batch_id: str, stage: CaseStage) -> str:
        message = self.workflow.task("review", batch_id, stage=stage.value)
        assert message.token is not None
        self.cases.hold_review_token(batch_id, message.token, stage)
        return message.token

    def case(self, batch_id: str) -> FleetCase:
        return self.cases.get(batch_id)

    def evidence_kinds(self) -> list[str]:
        return [e.kind.value for e in self.evidence.entries(FLOW)]


def refused(code: str, call: Any, *args: Any, **kw: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kw)
    assert caught.value.code == code, caught.value.to_dict()
    assert caught.value.message_zh
    assert caught.value.message_en
    return caught.value


def test_the_round_answers_the_reminder_and_the_deadline_in_working_days_and_puts_the_batch_in_review() -> (
    None
):
    w = World()
    batch = w.batch()
    output = w.cases.open_round(batch, [{"name": "uscc", "verdict": "passed"}], "review")
    # Friday 15:00 + one working day = Monday 15:00; the reminder at half of it = Monday 03:00 (China).
    assert output == {
        "outcome": "review",
        "remind_after_seconds": (2 * 24 + 12) * 3600,
        "escalate_after_seconds": 3 * 24 * 3600,
    }
    case = w.case(batch.batch_id)
    assert case.deadline_at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert case.stage is CaseStage.FIRST
    assert case.status is BatchStatus.IN_REVIEW
    assert w.batches.statuses == [(batch.batch_id, BatchStatus.IN_REVIEW, (), ())]
    assert w.evidence_kinds() == ["review_opened"]


def test_failed_checks_asking_for_a_resubmission_name_their_documents_on_the_batch() -> None:
    w = World()
    batch = w.batch()
    checks = [{"name": "licence", "verdict": "failed", "reason_code": "licence_unreadable"}]
    output = w.cases.open_round(batch, checks, "resubmit")
    assert output["outcome"] == "resubmit"
    assert w.batches.statuses == [
        (
            batch.batch_id,
            BatchStatus.RESUBMISSION_REQUESTED,
            ("licence_unreadable",),
            (DocumentSlot.BUSINESS_LICENCE,),
        )
    ]
    assert w.case(batch.batch_id).deadline_at is None


def test_an_approval_completes_the_review_task_once_and_approves_the_batch() -> None:
    w = World()
    batch_id = w.in_review()
    decided = w.cases.decide(batch_id, ALICE, "approve", ["documents_verified"])
    assert w.workflow.outputs(batch_id) == [{"decision": "approve", "second_approval_needed": False}]
    assert decided.status is BatchStatus.APPROVED
    assert decided.token is None
    assert decided.decisions[-1]["by"] == "alice"
    assert decided.decisions[-1]["reason_codes"] == ["documents_verified"]
    assert w.batches.batches[batch_id].status is BatchStatus.APPROVED
    assert w.evidence_kinds()[-1] == "review_decided"
    # The token was used: a second decision finds nothing to complete.
    refused("fleet_case.not_awaiting_decision", w.cases.decide, batch_id, BOB, "reject", ["fraud_suspected"])
    assert len(w.workflow.completions) == 1


def test_the_task_token_is_kept_sealed() -> None:
    w = World()
    batch_id = w.in_review()
    token = w.workflow.completions  # nothing completed yet
    assert token == []
    held = w.case(batch_id).token
    assert held is not None
    clear = FakeCipher().open(f"fleet-cases#{batch_id}#token", held.sealed)["token"]
    assert all(clear.encode() not in value for value in held.sealed.values.values())


def test_a_forged_token_completes_nothing_and_the_decision_is_refused_unchanged() -> None:
    w = World()
    batch_id = w.in_review()
    w.cases.hold_review_token(batch_id, "forged-token-the-workflow-never-issued", CaseStage.FIRST)
    before = w.case(batch_id)
    refused("fleet_case.moved_on", w.cases.decide, batch_id, ALICE, "approve", [])
    assert w.workflow.completions == []
    after = w.case(batch_id)
    assert after.token == before.token
    assert after.decisions == ()
    assert after.status is BatchStatus.IN_REVIEW
    assert w.batches.batches[batch_id].status is BatchStatus.IN_REVIEW


def test_a_token_used_elsewhere_or_timed_out_is_refused_and_given_back() -> None:
    w = World()
    batch_id = w.in_review()
    token = w.review_task(batch_id, CaseStage.FIRST)
    w.workflow.succeed(token, {"decision": "reject", "second_approval_needed": False})  # used once already
    refused("fleet_case.moved_on", w.cases.decide, batch_id, ALICE, "approve", [])
    assert len(w.workflow.completions) == 1
    token = w.review_task(batch_id, CaseStage.FIRST)
    w.workflow.expire(token)
    refused("fleet_case.moved_on", w.cases.decide, batch_id, ALICE, "approve", [])
    assert len(w.workflow.completions) == 1
    assert w.case(batch_id).token is not None
    assert w.case(batch_id).decisions == ()


def test_two_decisions_racing_complete_the_task_once() -> None:
    w = World()
    batch_id = w.in_review()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(who: Principal) -> None:
        barrier.wait()
        try:
            w.cases.decide(batch_id, who, "approve", [])
            outcomes.append("decided")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=decide, args=(p,)) for p in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The loser is refused: "not awaiting a decision" once the winner's decision is recorded, or "the task
    # is a moment away" when it reads the case between the winner's taking the token and recording the
    # decision (asked again a moment later, it is told the case is decided). Either way it decides nothing.
    assert len(outcomes) == 2
    assert outcomes.count("decided") == 1
    assert set(outcomes) - {"decided"} <= {"fleet_case.not_awaiting_decision", "fleet_case.task_not_ready"}
    assert len(w.workflow.completions) == 1
    assert len(w.case(batch_id).decisions) == 1


def test_a_reviewer_affiliated_with_the_enterprise_may_not_decide_its_case() -> None:
    w = World()
    batch_id = w.in_review()
    w.cases.set_affiliations("alice", [USCC], LEAD)
    error = refused("fleet_case.conflict_of_interest", w.cases.decide, batch_id, ALICE, "approve", [])
    assert error.status == 403
    assert w.workflow.completions == []
    assert w.case(batch_id).token is not None
    w.cases.decide(batch_id, BOB, "approve", [])  # another reviewer may
    assert w.case(batch_id).status is BatchStatus.APPROVED


def test_affiliations_refuse_a_bad_uscc_and_keep_the_previous_ones() -> None:
    w = World()
    w.cases.set_affiliations("alice", [USCC], LEAD)
    error = refused("fleet_case.affiliation_uscc", w.cases.set_affiliations, "alice", [USCC, "123"], LEAD)
    assert error.field == "usccs[1]"
    assert w.cases.affiliations("alice") == (USCC,)


def test_a_large_batch_needs_a_second_approver_who_is_not_the_first() -> None:
    w = World(four_eyes=50)
    batch_id = w.in_review(vehicles=51)
    w.cases.decide(batch_id, ALICE, "approve", [])
    assert w.workflow.outputs(batch_id) == [{"decision": "approve", "second_approval_needed": True}]
    case = w.case(batch_id)
    assert case.status is BatchStatus.IN_REVIEW
    assert case.first_approver == "alice"
    assert w.batches.batches[batch_id].status is BatchStatus.IN_REVIEW
    w.review_task(batch_id, CaseStage.SECOND)
    error = refused("fleet_case.same_approver", w.cases.decide, batch_id, ALICE, "approve", [])
    assert error.status == 403
    assert len(w.workflow.completions) == 1
    assert w.case(batch_id).token is not None
    w.cases.decide(batch_id, BOB, "approve", [])
    assert w.workflow.outputs(batch_id)[-1] == {"decision": "approve", "second_approval_needed": False}
    assert w.case(batch_id).status is BatchStatus.APPROVED
    assert [d["stage"] for d in w.case(batch_id).decisions] == ["first", "second"]


def test_a_batch_at_the_four_eyes_size_needs_one_approval() -> None:
    w = World(four_eyes=50)
    batch_id = w.in_review(vehicles=50)
    w.cases.decide(batch_id, ALICE, "approve", [])
    assert w.workflow.outputs(batch_id) == [{"decision": "approve", "second_approval_needed": False}]


def test_after_the_deadline_only_a_review_lead_decides() -> None:
    w = World()
    batch_id = w.in_review()
    w.clock.advance(days=1)
    w.cases.remind(batch_id)
    w.review_task(batch_id, CaseStage.FIRST)  # after the reminder
    w.clock.advance(days=3)
    w.review_task(batch_id, CaseStage.LEAD)  # the deadline passed: escalated
    case = w.case(batch_id)
    assert case.escalated
    assert case.stage is CaseStage.LEAD
    assert case.reminded
    assert case.overdue(w.clock())
    assert w.alerts == [batch_id]
    assert w.evidence_kinds() == ["review_opened", "review_reminded", "review_escalated"]
    error = refused("fleet_case.escalated", w.cases.decide, batch_id, ALICE, "approve", [])
    assert error.status == 409
    assert error.details == {"decided_by": "review_lead"}
    assert w.workflow.completions == []
    decided = w.cases.decide(batch_id, LEAD, "reject", ["fraud_suspected"])
    assert decided.status is BatchStatus.REJECTED
    assert decided.decisions[-1]["late"] is True
    assert w.workflow.outputs(batch_id) == [{"decision": "reject", "second_approval_needed": False}]


@pytest.mark.parametrize(
    ("decision", "codes", "documents", "code", "field"),
    [
        ("reject", ["no_such_reason"], [], "fleet_case.reason_codes", "reason_codes"),
        ("approve", ["licence_unreadable"], [], "fleet_case.reason_codes", "reason_codes"),
        ("reject", [], [], "fleet_case.reason_codes", "reason_codes"),
        ("resubmit", ["licence_unreadable"], [], "fleet_case.documents_required", "documents"),
        ("resubmit", ["fraud_suspected"], ["business_licence"], "fleet_case.reason_codes", "reason_codes"),
        ("resubmit", ["letter_missing_seal"], ["passport"], "fleet_case.documents", "documents"),
        # the portrait side was matched in the face check: it cannot be asked again (a dead end otherwise)
        (
            "resubmit",
            ["responsible_id_unclear"],
            ["responsible_id_front"],
            "fleet_case.document_not_replaceable",
            "documents",
        ),
        (
            "reject",
            ["fraud_suspected"],
            ["business_licence"],
            "fleet_case.documents_not_expected",
            "documents",
        ),
    ],
)
def test_bad_reasons_or_documents_are_refused_and_change_nothing(
    decision: str, codes: list[str], documents: list[str], code: str, field: str
) -> None:
    w = World()
    batch_id = w.in_review()
    before = w.case(batch_id)
    error = refused(code, w.cases.decide, batch_id, ALICE, decision, codes, documents)
    assert error.status == 422
    assert error.field == field
    assert w.case(batch_id) == before
    assert w.workflow.completions == []


def test_a_deregistration_has_no_custody_agreement_to_resubmit() -> None:
    w = World()
    batch_id = w.in_review(kind=BatchKind.DEREGISTRATION)
    refused(
        "fleet_case.documents",
        w.cases.decide,
        batch_id,
        ALICE,
        "resubmit",
        ["custody_agreement_incomplete"],
        ["custody_agreement"],
    )


def test_a_resubmission_request_names_the_documents_and_the_resubmission_resumes_the_workflow() -> None:
    w = World()
    batch_id = w.in_review()
    w.cases.decide(
        batch_id, ALICE, "resubmit", ["letter_missing_seal"], ["authorization_letter"], note="盖章不清"
    )
    assert w.workflow.outputs(batch_id) == [{"decision": "resubmit", "second_approval_needed": False}]
    assert w.batches.statuses[-1] == (
        batch_id,
        BatchStatus.RESUBMISSION_REQUESTED,
        ("letter_missing_seal",),
        (DocumentSlot.AUTHORIZATION_LETTER,),
    )
    decided = w.evidence.entries(FLOW)[-1]
    assert decided.personal == {"note": "盖章不清"}
    assert "note" not in decided.public
    # The workflow waits for the enterprise.
    message = w.workflow.task("await_resubmission", batch_id)
    assert message.token is not None
    w.cases.hold_resubmission_token(batch_id, message.token)
    refused("fleet_case.not_awaiting_decision", w.cases.decide, batch_id, ALICE, "approve", [])
    w.cases.resubmitted(batch_id)
    assert w.workflow.outputs(batch_id)[-1] == {"resubmitted": True}
    assert w.case(batch_id).status is BatchStatus.SUBMITTED
    refused("fleet_case.not_awaiting_resubmission", w.cases.resubmitted, batch_id)


def test_the_queue_lists_overdue_cases_by_stage() -> None:
    w = World()
    first = w.in_review(n=1)
    w.clock.advance(days=5)
    second = w.in_review(n=2)
    page = w.cases.queue(BatchStatus.IN_REVIEW, overdue=True)
    assert [c.batch_id for c in page.cases] == [first]
    page = w.cases.queue(BatchStatus.IN_REVIEW, overdue=False, stage=CaseStage.FIRST)
    assert [c.batch_id for c in page.cases] == [second]


def test_a_resubmission_after_the_wait_expired_is_refused_and_changes_nothing() -> None:
    w = World()
    batch_id = w.in_review()
    w.cases.decide(batch_id, ALICE, "resubmit", ["licence_unreadable"], ["business_licence"])
    message = w.workflow.task("await_resubmission", batch_id)
    assert message.token is not None
    w.cases.hold_resubmission_token(batch_id, message.token)
    w.workflow.expire(message.token)  # 30 days passed
    refused("fleet_case.moved_on", w.cases.resubmitted, batch_id)
    case = w.case(batch_id)
    assert case.status is BatchStatus.RESUBMISSION_REQUESTED
    assert case.token is not None
    assert w.workflow.outputs(batch_id) == [{"decision": "resubmit", "second_approval_needed": False}]


def test_the_review_leads_group_gives_the_review_lead_role() -> None:
    from dataclasses import replace

    from chalicelib.core.oidc import OidcConfig

    config = OidcConfig(
        issuer="https://idp.example.cn",
        audience=None,
        jwks_url=None,
        roles_claim="groups",
        role_map=(),
        mfa_amr=frozenset(),
        mfa_acr=frozenset(),
        mfa_by_issuer=True,
        leeway_seconds=30,
        timeout_seconds=3,
        jwks_cache_seconds=3600,
        jwks_refetch_seconds=60,
    )
    assert config.roles_of(["review-leads", "staff"]) == {"review_lead"}
    assert config.roles_of(["review_lead", "reviewer"]) == {"review_lead", "reviewer"}
    mapped = replace(config, role_map=(("Leads", "review_lead"),))
    assert mapped.roles_of(["review-leads", "Leads"]) == {"review_lead"}


def test_a_review_message_delivered_again_after_the_decision_changes_nothing() -> None:
    w = World()
    batch = w.batch()
    w.cases.open_round(batch, [], "review")
    message = w.workflow.task("review", batch.batch_id, stage="lead")
    assert message.token is not None
    w.cases.hold_review_token(batch.batch_id, message.token, CaseStage.LEAD)
    w.cases.decide(batch.batch_id, LEAD, "approve", [])
    # the queue delivers the same task again, and the reminder twice
    w.cases.hold_review_token(batch.batch_id, message.token, CaseStage.LEAD)
    w.cases.remind(batch.batch_id)
    w.cases.remind(batch.batch_id)
    case = w.case(batch.batch_id)
    assert case.status is BatchStatus.APPROVED
    assert case.token is None
    assert w.alerts == [batch.batch_id]
    assert w.evidence_kinds().count("review_reminded") == 1


def test_a_resubmission_before_the_workflow_waits_for_it_goes_on_once_the_wait_begins() -> None:
    """The decision is told to the enterprise at once, the workflow's wait begins a moment later (its
    task message on the queue): a resubmission in between is kept, and the wait completes at once."""
    w = World()
    batch_id = w.in_review()
    w.cases.decide(batch_id, ALICE, "resubmit", ["letter_missing_seal"], ["authorization_letter"])
    w.cases.resubmitted(batch_id)  # no wait token yet: accepted, nothing told to the workflow yet
    assert w.case(batch_id).status is BatchStatus.SUBMITTED
    assert w.workflow.outputs(batch_id) == [{"decision": "resubmit", "second_approval_needed": False}]
    message = w.workflow.task("await_resubmission", batch_id)
    assert message.token is not None
    assert w.cases.hold_resubmission_token(batch_id, message.token) is True  # the wait goes on at once
    assert w.case(batch_id).token is None
    # The same message delivered again changes nothing; a second resubmission is refused.
    assert w.cases.hold_resubmission_token(batch_id, message.token) is False
    refused("fleet_case.not_awaiting_resubmission", w.cases.resubmitted, batch_id)


def test_a_resubmission_before_any_decision_asked_for_it_is_refused() -> None:
    w = World()
    batch_id = w.in_review()
    refused("fleet_case.not_awaiting_resubmission", w.cases.resubmitted, batch_id)
    assert w.case(batch_id).status is BatchStatus.IN_REVIEW


@pytest.mark.parametrize(
    ("decision", "codes", "documents", "next_status"),
    [
        ("approve", ["documents_verified"], [], BatchStatus.APPROVED),  # prepare_cards ran first
        ("reject", ["fraud_suspected"], [], BatchStatus.REJECTED),  # the rejection notice ran first
        ("resubmit", ["letter_missing_seal"], ["authorization_letter"], BatchStatus.RESUBMISSION_REQUESTED),
    ],
)
def test_a_decision_is_recorded_when_the_workflows_next_task_set_the_batch_first(
    decision: str, codes: list[str], documents: list[str], next_status: BatchStatus
) -> None:
    """The workflow goes on the moment it is told: its next task may write the batch's status before the
    decision does. The decision is still taken, recorded with its reasons and in the evidence."""
    w = World()
    batch_id = w.in_review()
    told = w.workflow.succeed

    def told_then_next_task(token: str, output: dict[str, Any]) -> None:
        told(token, output)
        w.batches.set_status(batch_id, next_status, expected={BatchStatus.IN_REVIEW, BatchStatus.SUBMITTED})

    w.workflow.succeed = told_then_next_task  # type: ignore[method-assign]
    w.cases.decide(batch_id, ALICE, decision, codes, documents)
    assert w.batches.statuses[-1][:3] == (batch_id, next_status, tuple(codes))
    assert w.case(batch_id).decisions[-1]["decision"] == decision
    assert "review_decided" in w.evidence_kinds()


def test_a_decision_before_the_review_task_arrives_is_told_to_retry_in_a_moment_and_changes_nothing() -> None:
    """The queue lists a case once its automatic checks passed (or once the first of two approvals is
    given); the workflow's review task arrives a moment later. A decision in between is refused with a
    retryable answer, not with "not awaiting a decision"."""
    w = World(four_eyes=50)
    batch = w.batch(51)
    w.cases.open_round(batch, [{"name": "uscc", "verdict": "passed", "reason_code": None}], "review")
    error = refused("fleet_case.task_not_ready", w.cases.decide, batch.batch_id, ALICE, "approve", [])
    assert (error.status, error.details) == (409, {"retry_after_seconds": 2})
    assert w.workflow.completions == []
    assert w.case(batch.batch_id).decisions == ()
    w.review_task(batch.batch_id, CaseStage.FIRST)
    w.cases.decide(batch.batch_id, ALICE, "approve", [])  # the first of two approvals
    refused("fleet_case.task_not_ready", w.cases.decide, batch.batch_id, BOB, "approve", [])
    w.review_task(batch.batch_id, CaseStage.SECOND)
    w.cases.decide(batch.batch_id, BOB, "approve", [])
    assert w.case(batch.batch_id).status is BatchStatus.APPROVED


def test_an_unclear_id_back_is_asked_again_and_an_unusable_portrait_side_ends_the_batch() -> None:
    """The emblem side can be replaced; the portrait side, matched in the face check, cannot: the reason
    for it is final, so the enterprise starts a new batch instead of waiting for a replacement it cannot
    make."""
    from chalicelib.fleet.reasons import reason

    back, portrait = reason("responsible_id_unclear"), reason("responsible_portrait_unusable")
    assert back is not None
    assert (back.resubmittable, back.slot) == (True, DocumentSlot.RESPONSIBLE_ID_BACK)
    assert portrait is not None
    assert (portrait.decision.value, portrait.resubmittable) == ("reject", False)
    w = World()
    batch_id = w.in_review()
    w.cases.decide(batch_id, ALICE, "resubmit", ["responsible_id_unclear"], ["responsible_id_back"])
    assert w.batches.statuses[-1][3] == (DocumentSlot.RESPONSIBLE_ID_BACK,)
    other = w.in_review(n=2)
    w.cases.decide(other, ALICE, "reject", ["responsible_portrait_unusable"])
    assert w.batches.statuses[-1][1] is BatchStatus.REJECTED
