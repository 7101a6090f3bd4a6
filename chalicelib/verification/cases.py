"""Opening a review case (人工审核): the one way a flow goes to a reviewer, whatever sent it there.

One case per flow and reason (asking again finds the same case), with a case number (审核编号) the owner
is told; the flow waits in review, its expiry moved so the reviewer's time does not count against it,
and the opening goes into the evidence.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    REVIEW_WINDOW,
    CheckName,
    CheckVerdict,
    Flow,
    FlowStatus,
    ReviewCase,
    ReviewReason,
    ReviewStatus,
    case_id_for,
    case_number_for,
)
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import EvidenceLog, ReviewCases


class CaseOpener:
    def __init__(
        self, *, flows: Flows, cases: ReviewCases, evidence: EvidenceLog, clock: Clock = utc_now
    ) -> None:
        self._flows = flows
        self._cases = cases
        self._evidence = evidence
        self._clock = clock

    def existing(self, flow: Flow, reason: ReviewReason) -> ReviewCase | None:
        return self._cases.get(case_id_for(flow.flow_id, reason))

    def open(
        self, flow: Flow, caller: str, reason: ReviewReason, summary: dict[str, Any] | None = None
    ) -> ReviewCase:
        """Open ``flow``'s case for ``reason`` and put the flow in review (the face check waits for it)."""
        now = self._clock()
        case_id = case_id_for(flow.flow_id, reason)
        case = self._cases.open(
            ReviewCase(
                case_id=case_id,
                case_number=case_number_for(case_id, now),
                flow_id=flow.flow_id,
                owner=flow.owner,
                purpose=flow.purpose,
                reason=reason,
                status=ReviewStatus.OPEN,
                created_at=now,
                summary={
                    "documents": sorted(flow.documents),
                    "checks": {k: v.value for k, v in flow.checks.items()},
                    "id_type": flow.identity.id_type if flow.identity else None,
                    **(summary or {}),
                },
            )
        )
        self._flows.save(
            flow,
            status=FlowStatus.IN_REVIEW,
            checks={**flow.checks, CheckName.FACE: CheckVerdict.IN_REVIEW},
            expires_at=max(flow.expires_at, now + REVIEW_WINDOW),
        )
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.REVIEW_OPENED,
            caller,
            {"case_id": case.case_id, "reason": case.reason.value},
        )
        emit(Metric.REVIEW_OPENED, reason=case.reason.value)
        return case
