"""Manual review: requested only once the face attempts ran out, one case per flow, decided once."""

from __future__ import annotations

from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    REVIEW_WINDOW,
    CheckName,
    CheckVerdict,
    FlowStatus,
    ReviewDecision,
    ReviewStatus,
)
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import OWNER, World


def exhausted(world: World) -> str:
    """A flow whose face attempts all failed."""
    world.faces.similarity = 10.0
    flow_id = world.ready()
    for _ in range(world.policy.attempts_per_flow):
        world.attempt(flow_id)
    return flow_id


def test_review_is_not_available_while_attempts_are_left() -> None:
    # given a flow with one failed attempt and two left
    world = World()
    world.faces.similarity = 10.0
    flow_id = world.ready()
    world.attempt(flow_id)
    # when
    error = refused(lambda: world.service.request_review(flow_id, OWNER))
    # then
    assert (error.code, error.details) == ("review.not_available", {"attempts_left": 2})
    assert world.cases.cases == {}


def test_review_is_not_available_before_any_face_attempt() -> None:
    world = World()
    flow_id = world.open()
    assert refused(lambda: world.service.request_review(flow_id, OWNER)).details == {"attempts_left": None}


def test_requesting_review_after_exhaustion_opens_one_case_and_holds_the_flow() -> None:
    # given a flow whose attempts are used up
    world = World()
    flow_id = exhausted(world)
    # when
    case = world.service.request_review(flow_id, OWNER)
    # then the case summarises the flow without anything personal
    assert case.flow_id == flow_id
    assert case.status is ReviewStatus.OPEN
    assert case.summary == {
        "documents": ["id_front"],
        "checks": {"ocr_id_front": "passed", "biometric_consent": "passed", "face": "failed"},
        "id_type": "resident_id",
    }
    flow = world.service.flow(flow_id, OWNER)
    assert flow.status is FlowStatus.IN_REVIEW
    assert flow.checks[CheckName.FACE] is CheckVerdict.IN_REVIEW
    assert flow.expires_at == world.clock() + REVIEW_WINDOW
    opened = world.evidence.entries(flow_id)[-1]
    assert (opened.kind, opened.public) == (
        EvidenceKind.REVIEW_OPENED,
        {"case_id": case.case_id, "reason": "face_attempts_exhausted"},
    )
    # when it is requested again, then the same case comes back and nothing more is recorded
    assert world.service.request_review(flow_id, OWNER) == case
    assert len(world.cases.cases) == 1
    assert world.evidence_kinds(flow_id).count("review_opened") == 1


def test_the_queue_lists_open_cases_and_a_case_comes_with_its_flow() -> None:
    world = World()
    flow_id = exhausted(world)
    case = world.service.request_review(flow_id, OWNER)
    # when
    cases, cursor = world.service.review_queue(ReviewStatus.OPEN, 10, None)
    found, flow = world.service.review_case(case.case_id)
    # then
    assert (cases, cursor) == ([case], None)
    assert (found, flow.flow_id) == (case, flow_id)
    assert refused(lambda: world.service.review_case("rc-unknown")).code == "review.not_found"


def test_an_approval_verifies_the_flow_and_is_recorded_with_the_note_sealed() -> None:
    world = World()
    flow_id = exhausted(world)
    case = world.service.request_review(flow_id, OWNER)
    # when
    decided = world.service.decide_review(case.case_id, "reviewer-1", ReviewDecision.APPROVE, "同一人")
    # then
    assert (decided.status, decided.decided_by, decided.decision_note) == (
        ReviewStatus.APPROVED,
        "reviewer-1",
        "同一人",
    )
    flow = world.service.flow(flow_id, OWNER)
    assert flow.status is FlowStatus.VERIFIED
    assert flow.checks[CheckName.FACE] is CheckVerdict.APPROVED
    entry = world.evidence.entries(flow_id)[-1]
    assert (entry.kind, entry.actor, entry.public) == (
        EvidenceKind.REVIEW_DECIDED,
        "reviewer-1",
        {"case_id": case.case_id, "decision": "approve"},
    )
    assert entry.personal == {"note": "同一人"}


def test_a_rejection_closes_the_flow_and_a_case_is_decided_only_once() -> None:
    world = World()
    flow_id = exhausted(world)
    case = world.service.request_review(flow_id, OWNER)
    # when
    world.service.decide_review(case.case_id, "reviewer-1", ReviewDecision.REJECT, None)
    # then
    flow = world.service.flow(flow_id, OWNER)
    assert flow.status is FlowStatus.REJECTED
    assert flow.checks[CheckName.FACE] is CheckVerdict.REJECTED
    # when another reviewer decides it again, then
    again = refused(
        lambda: world.service.decide_review(case.case_id, "reviewer-2", ReviewDecision.APPROVE, None)
    )
    assert (again.code, again.details) == ("review.already_decided", {"status": "rejected"})
    assert world.service.flow(flow_id, OWNER).status is FlowStatus.REJECTED
    assert world.evidence_kinds(flow_id).count("review_decided") == 1
