"""The review case of a fleet batch (单位批次审核案件): one per batch, its id the batch's id; its stage, its
deadline, the task token the workflow waits on, and the decisions taken — and the refusals of a
decision, each with a stable code.

The stores (``CaseStore``, ``AffiliationStore``) are the ports the service writes through.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.fleet.domain import BatchStatus, DocumentSlot, FleetBatch
from chalicelib.kernel.crypto import SealedFields
from chalicelib.kernel.errors import Conflict, Forbidden, InvalidField, NotFound


class CaseStage(StrEnum):
    """Who the open review task waits for."""

    FIRST = "first"  # a reviewer
    LEAD = "lead"  # a review lead: the deadline passed (escalated)
    SECOND = "second"  # a second approver (four-eyes), not the first


class TokenTask(StrEnum):
    """The workflow task a stored token belongs to."""

    REVIEW = "review"
    AWAIT_RESUBMISSION = "await_resubmission"


@dataclass(frozen=True)
class HeldToken:
    """The workflow's task token held by a case: sealed at rest (a bearer secret), named by ``token_id``
    so that taking it is a conditional write (single use)."""

    token_id: str
    task: TokenTask
    sealed: SealedFields
    stage: CaseStage | None
    stored_at: datetime
    #: A digest of the token (not the token): a message delivered twice holds its token once.
    digest: str = ""


@dataclass(frozen=True)
class FleetCase:
    """The review case of one batch; ``checks`` and ``decisions`` are plain dicts (stored as they are)."""

    batch_id: str
    uscc: str
    company_name: str
    kind: str
    vehicles: int
    status: BatchStatus
    round: int
    opened_at: datetime
    submitted_at: datetime | None
    remind_at: datetime | None
    deadline_at: datetime | None
    outcome: str
    checks: tuple[dict[str, Any], ...] = ()
    stage: CaseStage | None = None
    escalated: bool = False
    reminded: bool = False
    first_approver: str | None = None
    decisions: tuple[dict[str, Any], ...] = ()
    token: HeldToken | None = None
    #: Digests of every token the case has held: a task message delivered again is recognised.
    seen_tokens: tuple[str, ...] = ()
    flow_id: str | None = None
    execution_arn: str | None = None
    updated_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        """Whether a reviewer's decision is past its deadline."""
        return (
            self.status is BatchStatus.IN_REVIEW and self.deadline_at is not None and now >= self.deadline_at
        )

    @property
    def awaiting_decision(self) -> bool:
        return self.token is not None and self.token.task is TokenTask.REVIEW


@dataclass(frozen=True)
class CasePage:
    cases: list[FleetCase] = field(default_factory=list)
    cursor: str | None = None


class CaseStore(ABC):
    """The ``fleet-cases`` table."""

    @abstractmethod
    def get(self, batch_id: str) -> FleetCase | None: ...

    @abstractmethod
    def save_round(self, case: FleetCase) -> None:
        """Write the case as a new round opens (checks, window, status), keeping its decisions; drops
        any token still held (the workflow's task it belonged to has ended)."""

    @abstractmethod
    def hold_token(
        self, batch_id: str, token: HeldToken, *, status: BatchStatus | None, escalated: bool | None
    ) -> bool:
        """Keep ``token`` on the case in place of any other (the old task ended with its state); False
        when the case held that token once already (its message delivered again): nothing changes."""

    @abstractmethod
    def take_token(self, batch_id: str, token_id: str) -> bool:
        """Remove the token named ``token_id`` if the case still holds it (one conditional write):
        False when another took it first or a newer one replaced it."""

    @abstractmethod
    def give_back_token(self, batch_id: str, token: HeldToken) -> None:
        """Put a taken token back, unless the case holds another by now."""

    @abstractmethod
    def record_decision(
        self,
        batch_id: str,
        decision: dict[str, Any],
        *,
        status: BatchStatus,
        stage: CaseStage | None,
        first_approver: str | None,
    ) -> FleetCase: ...

    @abstractmethod
    def set_status(self, batch_id: str, status: BatchStatus, *, stage: CaseStage | None = None) -> None: ...

    @abstractmethod
    def mark_reminded(self, batch_id: str) -> bool:
        """Mark the case reminded; False when it was already (the reminder delivered again)."""

    @abstractmethod
    def page(
        self,
        status: BatchStatus,
        *,
        stage: CaseStage | None,
        overdue: bool | None,
        uscc: str | None,
        now: datetime,
        limit: int,
        cursor: str | None,
    ) -> CasePage:
        """Cases of ``status``, earliest deadline first, through the status index (never a scan)."""


class AffiliationStore(ABC):
    """``staff-affiliations``: the enterprises (USCCs) a staff member is affiliated with (利益冲突)."""

    @abstractmethod
    def get(self, subject: str) -> tuple[str, ...]: ...

    @abstractmethod
    def put(self, subject: str, usccs: Sequence[str], by: str, at: datetime) -> tuple[str, ...]: ...


class BatchAccess(Protocol):
    """What the cases need of the batches (``chalicelib.fleet.batches``)."""

    def get(self, batch_id: str) -> FleetBatch | None: ...

    def set_status(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        reasons: Sequence[str] = (),
        resubmit_documents: Sequence[DocumentSlot] = (),
        expected: set[BatchStatus],
    ) -> FleetBatch: ...


def case_not_found(batch_id: str) -> NotFound:
    return NotFound(
        "fleet_case.not_found", "审核案件不存在", "No such fleet case", details={"batch_id": batch_id}
    )


def not_awaiting_decision() -> Conflict:
    return Conflict(
        "fleet_case.not_awaiting_decision",
        "该批次当前不在待审核状态，无法作出审核决定",
        "The case is not waiting for a decision",
    )


def review_task_not_ready() -> Conflict:
    """The case is listed for review (the automatic checks passed, or the first approval was given) and
    the workflow's review task is on its way: a decision a second later is taken."""
    return Conflict(
        "fleet_case.task_not_ready",
        "审核任务正在准备中，请几秒后再提交审核决定",
        "The review task is being prepared: submit the decision again in a few seconds",
        details={"retry_after_seconds": 2},
    )


def moved_on() -> Conflict:
    return Conflict(
        "fleet_case.moved_on",
        "审核流程已进入下一环节，本次决定未生效，请刷新后重试",
        "The workflow moved on (the task timed out or closed); the decision was not taken",
    )


def not_awaiting_resubmission() -> Conflict:
    return Conflict(
        "fleet_case.not_awaiting_resubmission",
        "该批次当前无需补充材料",
        "The case is not waiting for a resubmission",
    )


def conflict_of_interest(uscc: str) -> Forbidden:
    return Forbidden(
        "fleet_case.conflict_of_interest",
        "您与该单位存在关联关系，不得审核该单位的批次",
        "You are affiliated with this enterprise and may not decide its cases",
        details={"uscc": uscc},
    )


def same_approver() -> Forbidden:
    return Forbidden(
        "fleet_case.same_approver",
        "该批次需由另一名审核人员复核（双人审核），您已作出首次审批",
        "This batch needs a second approver other than the first (four-eyes)",
    )


def escalated_to_lead() -> Conflict:
    return Conflict(
        "fleet_case.escalated",
        "该案件已超过审核时限并升级至审核组长，仅审核组长可作出决定",
        "The case passed its deadline and was escalated: only a review lead decides it now",
        details={"decided_by": "review_lead"},
    )


def bad_reason_codes(codes: list[str], why_zh: str, why_en: str) -> InvalidField:
    return InvalidField(
        "fleet_case.reason_codes",
        why_zh,
        why_en,
        field="reason_codes",
        details={"codes": codes},
    )


def documents_required() -> InvalidField:
    return InvalidField(
        "fleet_case.documents_required",
        "要求补充材料时须指明需重新提交的材料",
        "A resubmission request names the documents to replace",
        field="documents",
    )
