"""Manual review (人工审核): when the face attempts run out the flow goes to a reviewer, not a dead end.

One case per flow (asking again finds the same case); the reviewer sees the flow's documents and
checks, and decides once: approved, the flow is verified; rejected, it is closed.
"""

from __future__ import annotations

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict
from chalicelib.verification.cases import CaseOpener
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    FlowStatus,
    ReviewCase,
    ReviewDecision,
    ReviewReason,
    ReviewStatus,
    case_id_for,
    case_not_found,
    check_open,
)
from chalicelib.verification.face import FaceChecks
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import EvidenceLog, ReviewCases


class Reviews:
    def __init__(
        self,
        *,
        flows: Flows,
        face: FaceChecks,
        cases: ReviewCases,
        evidence: EvidenceLog,
        clock: Clock = utc_now,
    ) -> None:
        self._flows = flows
        self._face = face
        self._cases = cases
        self._evidence = evidence
        self._clock = clock
        self._opener = CaseOpener(flows=flows, cases=cases, evidence=evidence, clock=clock)

    def request_review(self, flow_id: str, caller: str) -> ReviewCase:
        """When the face attempts have run out, the flow goes to a reviewer instead of a dead end."""
        flow = self._flows.flow(flow_id, caller)
        case_id = case_id_for(flow.flow_id, ReviewReason.FACE_ATTEMPTS_EXHAUSTED)
        if flow.status is FlowStatus.IN_REVIEW:
            existing = self._cases.get(case_id)
            if existing is not None:
                return existing
        check_open(flow)
        left = self._face.left_for(flow)
        # The flow's attempts, or the person's attempts of the day (used up in any flow), ran out and
        # the face has not passed: a reviewer looks instead of a wait for the next day.
        face = flow.checks.get(CheckName.FACE)
        if left is None or left.left > 0 or face in (CheckVerdict.PASSED, CheckVerdict.APPROVED):
            raise Conflict(
                "review.not_available",
                "人脸核验次数未用完，请继续核验",
                "Manual review opens once the face attempts are used up",
                details={"attempts_left": left.left if left else None},
            )
        self._check_reviewable(flow)
        return self._opener.open(flow, caller, ReviewReason.FACE_ATTEMPTS_EXHAUSTED)

    @staticmethod
    def _check_reviewable(flow: Flow) -> None:
        """A reviewer compares a read ID card with the person: the card must be there and read, and an
        identity the authority refused is not a reviewer's to pass."""
        if flow.checks.get(CheckName.AUTHORITY) is CheckVerdict.FAILED:
            raise Conflict(
                "review.identity_refused",
                "证件信息未通过权威核验，不能提交人工审核",
                "The identity was refused by the identity authority; it cannot go to manual review",
                details={"check": CheckName.AUTHORITY.value},
            )
        if flow.identity is None or flow.checks.get(CheckName.OCR_ID_FRONT) not in (
            CheckVerdict.PASSED,
            CheckVerdict.APPROVED,  # a document a reviewer read (passports, permits)
        ):
            raise Conflict(
                "review.not_available",
                "请先填写证件信息并上传、识别证件照片",
                "Enter the identity and upload and read the ID card photo before asking for review",
                details={"missing": CheckName.OCR_ID_FRONT.value},
            )

    def case_of_flow(self, flow_id: str, caller: str) -> ReviewCase | None:
        """The person's own view of their flow's review: its latest case (open, or the last decided),
        None when the flow never went to a reviewer. Someone else's flow is not found."""
        flow = self._flows.flow(flow_id, caller)
        cases = [c for c in (self._cases.get(case_id_for(flow.flow_id, r)) for r in ReviewReason) if c]
        if not cases:
            return None
        open_ = [c for c in cases if c.status is ReviewStatus.OPEN]
        return max(open_ or cases, key=lambda c: c.created_at)

    def review_queue(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        return self._cases.page(status, limit, cursor)

    def review_case(self, case_id: str) -> tuple[ReviewCase, Flow]:
        case = self._cases.get(case_id)
        if case is None:
            raise case_not_found()
        flow = self._flows.find(case.flow_id)
        if flow is None:
            raise case_not_found()
        return case, flow

    def decide_review(
        self, case_id: str, reviewer: str, decision: ReviewDecision, note: str | None
    ) -> ReviewCase:
        """Approve (the reviewer saw that the person is the one on the ID) or reject; once."""
        case, flow = self.review_case(case_id)
        status = ReviewStatus.APPROVED if decision is ReviewDecision.APPROVE else ReviewStatus.REJECTED
        decided = self._cases.decide(case_id, status, reviewer, note, self._clock())
        # The reviewer decides every check that waited for them (the face, an identity check the
        # authority could not make).
        verdict = CheckVerdict.APPROVED if decision is ReviewDecision.APPROVE else CheckVerdict.REJECTED
        waiting = {k: verdict for k, v in flow.checks.items() if v is CheckVerdict.IN_REVIEW}
        checks = {**flow.checks, **waiting, CheckName.FACE: verdict}
        if decision is ReviewDecision.APPROVE and case.reason is ReviewReason.DOCUMENT_NOT_MACHINE_READABLE:
            # The reviewer vouched for the document: the person's face check against its portrait follows.
            checks.pop(CheckName.FACE)
            self._flows.save(flow, status=FlowStatus.OPEN, checks=checks)
        elif decision is ReviewDecision.APPROVE:
            self._flows.save(flow, status=FlowStatus.VERIFIED, checks=checks)
        else:
            self._flows.save(flow, status=FlowStatus.REJECTED, checks=checks)
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.REVIEW_DECIDED,
            reviewer,
            {"case_id": case.case_id, "decision": decision.value},
            {"note": note} if note else None,
        )
        return decided
