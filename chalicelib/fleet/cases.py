"""The review of fleet batches (单位批次审核): one case per batch, opened by the automatic checks, decided by
the OEM's reviewers through the workflow's task tokens.

Rules of a decision (each refusal a stable code; a refused decision changes nothing):

- Only while the workflow waits for one: the case holds the token of an open review task
  (``409 fleet_case.not_awaiting_decision`` otherwise).
- Conflict of interest: a member of staff affiliated with the batch's enterprise does not decide its
  cases (``403 fleet_case.conflict_of_interest``; affiliations are kept per staff subject).
- Reason codes come from the catalogue (``chalicelib.fleet.reasons``) and belong to the decision taken;
  a rejection or a resubmission names at least one; a resubmission names the documents to replace and
  only resubmittable reasons (``422``, field ``reason_codes`` or ``documents``).
- Four-eyes: a batch of more than ``fleet_four_eyes_vehicles`` vehicles approved once waits for a second
  approval by another subject (``403 fleet_case.same_approver`` for the first approver).
- The deadline: at the reminder the reviewer is reminded; at the deadline the case escalates to the
  review leads. From then on only a review lead decides it: a reviewer's late decision is refused with
  ``409 fleet_case.escalated``, naming who decides now (the lead's decision follows the same rules,
  four-eyes included).
- The token is single use: it is taken from the case with a conditional write before the workflow is
  told, so a second decision racing the first is refused; if the workflow refuses the token (the task
  timed out meanwhile) it is put back and the decision refused (``409 fleet_case.moved_on``).

Every opening, reminder, escalation and decision goes into the evidence log of the batch's flow, and the
batch's status and reasons follow each decision.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core.auth import Principal, Role
from chalicelib.fleet.cases_domain import (
    AffiliationStore,
    BatchAccess,
    CasePage,
    CaseStage,
    CaseStore,
    FleetCase,
    HeldToken,
    TokenTask,
    bad_reason_codes,
    case_not_found,
    conflict_of_interest,
    documents_required,
    escalated_to_lead,
    moved_on,
    not_awaiting_decision,
    not_awaiting_resubmission,
    review_task_not_ready,
    same_approver,
)
from chalicelib.fleet.deadlines import ReviewWindow
from chalicelib.fleet.domain import BatchKind, BatchStatus, DocumentSlot, FleetBatch, document_slots
from chalicelib.fleet.reasons import Decision, reason
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import FieldCipher
from chalicelib.kernel.errors import InvalidField

if TYPE_CHECKING:
    from chalicelib.fleet.tasks import TaskMessage
    from chalicelib.fleet.workflow import Workflow, WorkflowEvent
    from chalicelib.verification.ports import EvidenceLog

_OUTCOME_STATUS = {
    "review": BatchStatus.IN_REVIEW,
    "resubmit": BatchStatus.RESUBMISSION_REQUESTED,
    "rejected": BatchStatus.REJECTED,
}
_DECISION_STATUS = {
    Decision.APPROVE: BatchStatus.APPROVED,
    Decision.REJECT: BatchStatus.REJECTED,
    Decision.RESUBMIT: BatchStatus.RESUBMISSION_REQUESTED,
}


def _sealing_context(batch_id: str) -> str:
    return f"fleet-cases#{batch_id}#token"


def _as_dict(check: Any) -> dict[str, Any]:
    """A check result (``chalicelib.fleet.checks.CheckResult`` or a mapping) as a plain dict."""
    if dataclasses.is_dataclass(check) and not isinstance(check, type):
        return dict(dataclasses.asdict(check))
    return dict(check)


class FleetCases:
    """Opens the round of a case, keeps the workflow's tokens, takes the decisions."""

    def __init__(
        self,
        store: CaseStore,
        affiliations: AffiliationStore,
        cipher: FieldCipher,
        batches: BatchAccess,
        workflow: Callable[[], Workflow],
        *,
        window: Callable[[datetime], ReviewWindow],
        four_eyes_vehicles: int,
        evidence: EvidenceLog | None = None,
        alert_leads: Callable[[FleetCase], None] | None = None,
        remind: Callable[[FleetCase], None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._affiliations = affiliations
        self._cipher = cipher
        self._batches = batches
        self._workflow = workflow
        self._window = window
        self._four_eyes = four_eyes_vehicles
        self._evidence = evidence
        self._alert_leads = alert_leads
        self._remind = remind
        self._clock = clock

    # -- the automatic checks and the workflow's tasks -------------------------------------------------

    def open_round(self, batch: FleetBatch, checks: Sequence[Any], outcome: str) -> dict[str, Any]:
        """Record the round's automatic checks and their ``outcome`` (review, resubmit, rejected), set
        the reminder and the deadline, and the batch's status; the automatic checks task's output."""
        if outcome not in _OUTCOME_STATUS:
            raise ValueError(f"unknown outcome {outcome!r}")
        now = self._clock()
        window = self._window(now)
        remind_after, escalate_after = window.seconds_from(now)
        status = _OUTCOME_STATUS[outcome]
        plain = tuple(_as_dict(c) for c in checks)
        existing = self._store.get(batch.batch_id)
        reviewing = status is BatchStatus.IN_REVIEW
        case = FleetCase(
            batch_id=batch.batch_id,
            uscc=batch.uscc,
            company_name=batch.company_name,
            kind=str(batch.kind),
            vehicles=len(batch.vins),
            status=status,
            round=batch.round,
            opened_at=now,
            submitted_at=batch.submitted_at,
            remind_at=window.remind_at if reviewing else None,
            deadline_at=window.deadline_at if reviewing else None,
            outcome=outcome,
            checks=plain,
            stage=CaseStage.FIRST if reviewing else None,
            decisions=existing.decisions if existing else (),
            seen_tokens=existing.seen_tokens if existing else (),
            flow_id=batch.flow_id,
            execution_arn=batch.execution_arn,
            updated_at=now,
        )
        self._store.save_round(case)
        failed = [
            str(c["reason_code"]) for c in plain if c.get("verdict") == "failed" and c.get("reason_code")
        ]
        slots: list[DocumentSlot] = []
        if status is BatchStatus.RESUBMISSION_REQUESTED:
            for code in failed:
                found = reason(code)
                if found is not None and found.slot is not None and found.slot not in slots:
                    slots.append(found.slot)
        self._batches.set_status(
            batch.batch_id, status, reasons=failed, resubmit_documents=slots, expected={BatchStatus.SUBMITTED}
        )
        self._note(
            case,
            "review_opened",
            "system",
            {
                "batch_id": case.batch_id,
                "round": case.round,
                "outcome": outcome,
                "checks": [{"name": c.get("name"), "verdict": c.get("verdict")} for c in plain],
                "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
            },
        )
        return {
            "outcome": outcome,
            "remind_after_seconds": remind_after,
            "escalate_after_seconds": escalate_after,
        }

    def hold_review_token(self, batch_id: str, token: str, stage: CaseStage) -> None:
        """A review task waits: keep its token (sealed) in place of the previous one. At stage ``lead``
        the case is escalated and the leads are told."""
        case = self._require(batch_id)
        held = self._held(batch_id, token, TokenTask.REVIEW, stage)
        escalate = stage is CaseStage.LEAD
        if not self._store.hold_token(
            batch_id, held, status=BatchStatus.IN_REVIEW, escalated=True if escalate else None
        ):
            return  # the task's message delivered again: its token is held (or was used) already
        if escalate and not case.escalated:
            from chalicelib.core.metric_names import Metric
            from chalicelib.core.observability import emit

            emit(Metric.FLEET_CASE_ESCALATED, kind=case.kind)
            self._note(case, "review_escalated", "system", {"batch_id": batch_id, "stage": stage.value})
            if self._alert_leads is not None:
                self._alert_leads(case)

    def hold_resubmission_token(self, batch_id: str, token: str) -> bool:
        """The workflow waits for the enterprise's replaced documents: keep the token. Returns True when
        the enterprise resubmitted before the wait began (the decision is told at once, the wait's task
        message a moment later): the token is then taken here and the workflow goes on at once."""
        self._require(batch_id)
        held = self._held(batch_id, token, TokenTask.AWAIT_RESUBMISSION, None)
        self._store.hold_token(batch_id, held, status=None, escalated=None)
        case = self._require(batch_id)
        early = case.status is BatchStatus.SUBMITTED
        if early and case.token is not None and case.token.token_id == held.token_id:
            return self._store.take_token(batch_id, held.token_id)
        return False

    def remind(self, batch_id: str) -> None:
        """The reminder time passed with no decision: the reviewers are reminded."""
        from chalicelib.core.metric_names import Metric
        from chalicelib.core.observability import emit

        case = self._require(batch_id)
        if not self._store.mark_reminded(batch_id):
            return  # delivered again
        emit(Metric.FLEET_CASE_REMINDER, kind=case.kind)
        self._note(case, "review_reminded", "system", {"batch_id": batch_id})
        if self._remind is not None:
            self._remind(case)

    def _held(self, batch_id: str, token: str, task: TokenTask, stage: CaseStage | None) -> HeldToken:
        return HeldToken(
            token_id=secrets.token_hex(12),
            task=task,
            sealed=self._cipher.seal(_sealing_context(batch_id), {"token": token}),
            stage=stage,
            stored_at=self._clock(),
            digest=hashlib.sha256(token.encode()).hexdigest()[:32],
        )

    # -- decisions ---------------------------------------------------------------------------------------

    def decide(
        self,
        batch_id: str,
        principal: Principal,
        decision: Decision | str,
        reason_codes: Sequence[str],
        documents: Sequence[str] = (),
        note: str | None = None,
    ) -> FleetCase:
        """Take ``principal``'s decision on the case (the rules in this module's docstring)."""
        decision = Decision(decision)
        case = self._require(batch_id)
        token = case.token
        if token is None and case.status is BatchStatus.IN_REVIEW and case.stage is not None:
            raise review_task_not_ready()  # listed for review, its task's token a moment away
        if token is None or token.task is not TokenTask.REVIEW:
            raise not_awaiting_decision()
        if case.uscc in self._affiliations.get(principal.subject):
            raise conflict_of_interest(case.uscc)
        stage = token.stage or CaseStage.FIRST
        if (case.escalated or stage is CaseStage.LEAD) and not principal.has_any({Role.REVIEW_LEAD}):
            raise escalated_to_lead()
        if stage is CaseStage.SECOND and principal.subject == case.first_approver:
            raise same_approver()
        codes = list(dict.fromkeys(reason_codes))
        slots = self._check_reasons(case, decision, codes, documents)
        second_needed = (
            decision is Decision.APPROVE and stage is not CaseStage.SECOND and case.vehicles > self._four_eyes
        )

        if not self._store.take_token(batch_id, token.token_id):
            raise not_awaiting_decision()
        from chalicelib.fleet.workflow import TaskTokenRejected

        clear = self._cipher.open(_sealing_context(batch_id), token.sealed)["token"]
        try:
            self._workflow().succeed(
                clear, {"decision": decision.value, "second_approval_needed": second_needed}
            )
        except TaskTokenRejected as exc:
            self._store.give_back_token(batch_id, token)
            raise moved_on() from exc

        now = self._clock()
        entry: dict[str, Any] = {
            "decision": decision.value,
            "reason_codes": codes,
            "documents": [s.value for s in slots],
            "by": principal.subject,
            "roles": sorted(r.value for r in principal.roles),
            "at": now.isoformat(),
            "stage": stage.value,
            "round": case.round,
            "late": case.overdue(now),
        }
        if note:
            entry["note"] = note
        first_approver: str | None
        if second_needed:
            status, next_stage, first_approver = BatchStatus.IN_REVIEW, CaseStage.SECOND, principal.subject
        else:
            status, next_stage, first_approver = _DECISION_STATUS[decision], None, case.first_approver
        decided = self._store.record_decision(
            batch_id, entry, status=status, stage=next_stage, first_approver=first_approver
        )
        if not second_needed:
            # The workflow goes on as soon as it is told: its next task (``prepare_cards``, the notice) may
            # have set the same status already, which this write then completes with the reasons.
            self._batches.set_status(
                batch_id,
                status,
                reasons=codes,
                resubmit_documents=slots,
                expected={BatchStatus.IN_REVIEW, status},
            )
        public = {k: v for k, v in entry.items() if k != "note"}
        self._note(case, "review_decided", principal.subject, public, {"note": note} if note else None)
        return decided

    def _check_reasons(
        self, case: FleetCase, decision: Decision, codes: list[str], documents: Sequence[str]
    ) -> list[DocumentSlot]:
        unknown = [c for c in codes if reason(c) is None]
        if unknown:
            raise bad_reason_codes(unknown, "审核意见代码不存在", "Unknown reason codes")
        wrong = [c for c in codes if (found := reason(c)) is not None and found.decision is not decision]
        if wrong:
            raise bad_reason_codes(
                wrong, "审核意见代码与审核决定不符", f"These reason codes do not belong to '{decision.value}'"
            )
        if decision is not Decision.APPROVE and not codes:
            raise bad_reason_codes([], "请选择审核意见", "A rejection or a resubmission names its reasons")
        if decision is not Decision.RESUBMIT:
            if documents:
                raise InvalidField(
                    "fleet_case.documents_not_expected",
                    "仅在要求补充材料时指明材料",
                    "Documents are named only when asking for a resubmission",
                    field="documents",
                )
            return []
        final = [c for c in codes if (found := reason(c)) is not None and not found.resubmittable]
        if final:
            raise bad_reason_codes(
                final, "所选审核意见不允许补充材料", "These reasons do not allow a resubmission"
            )
        if not documents:
            raise documents_required()
        if DocumentSlot.RESPONSIBLE_ID_FRONT.value in documents:
            raise InvalidField(
                "fleet_case.document_not_replaceable",
                "责任人证件人像面已用于人脸核验，不能要求补正；如需更换，请驳回（责任人证件人像面无法使用），由企业重新发起批次",
                "The portrait side of the responsible person's ID was matched in the face check and cannot "
                "be asked again; reject the batch (responsible_portrait_unusable) for the enterprise to "
                "start anew",
                field="documents",
                details={"documents": [DocumentSlot.RESPONSIBLE_ID_FRONT.value]},
            )
        allowed = {s.value for s in document_slots(BatchKind(case.kind))}
        bad = [d for d in documents if d not in allowed]
        if bad:
            raise InvalidField(
                "fleet_case.documents",
                "所选材料不属于该批次",
                "These documents are not among the batch's",
                field="documents",
                details={"documents": bad},
            )
        return [DocumentSlot(d) for d in dict.fromkeys(documents)]

    def resubmitted(self, batch_id: str) -> None:
        """The enterprise replaced the named documents: the waiting workflow goes on to the checks."""
        case = self._require(batch_id)
        before = case
        token = case.token
        if token is None or token.task is not TokenTask.AWAIT_RESUBMISSION:
            if case.status is not BatchStatus.RESUBMISSION_REQUESTED:
                raise not_awaiting_resubmission()
            # The resubmission was asked for but the workflow's wait has not begun yet: the case is marked
            # submitted, and the wait, when it begins, finds it so and goes on (``hold_resubmission_token``).
            # Whichever of the two takes the token completes it: exactly one does.
            self._store.set_status(batch_id, BatchStatus.SUBMITTED)
            case = self._require(batch_id)
            token = case.token
            if token is None or token.task is not TokenTask.AWAIT_RESUBMISSION:
                return
        if not self._store.take_token(batch_id, token.token_id):
            if case.status is BatchStatus.SUBMITTED:
                return  # the wait that began meanwhile took it and goes on by itself
            raise not_awaiting_resubmission()
        from chalicelib.fleet.workflow import TaskTokenRejected

        # Submitted before the workflow resumes: the checks that follow may open the next round at once.
        self._store.set_status(batch_id, BatchStatus.SUBMITTED)
        clear = self._cipher.open(_sealing_context(batch_id), token.sealed)["token"]
        try:
            self._workflow().succeed(clear, {"resubmitted": True})
        except TaskTokenRejected as exc:
            self._store.set_status(batch_id, before.status, stage=before.stage)
            self._store.give_back_token(batch_id, token)
            raise moved_on() from exc

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, batch_id: str) -> FleetCase:
        return self._require(batch_id)

    def queue(
        self,
        status: BatchStatus,
        *,
        stage: CaseStage | None = None,
        overdue: bool | None = None,
        uscc: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CasePage:
        return self._store.page(
            status, stage=stage, overdue=overdue, uscc=uscc, now=self._clock(), limit=limit, cursor=cursor
        )

    def history(self, batch_id: str) -> list[WorkflowEvent]:
        """The workflow's execution history of the batch (empty before it started)."""
        case = self._store.get(batch_id)
        arn = case.execution_arn if case is not None else None
        if arn is None:
            batch = self._batches.get(batch_id)
            arn = batch.execution_arn if batch is not None else None
        return list(self._workflow().history(arn)) if arn else []

    def now(self) -> datetime:
        return self._clock()

    # -- affiliations (利益冲突) ----------------------------------------------------------------------------

    def affiliations(self, subject: str) -> tuple[str, ...]:
        return self._affiliations.get(subject)

    def set_affiliations(self, subject: str, usccs: Sequence[str], by: Principal) -> tuple[str, ...]:
        """Replace the enterprises ``subject`` is affiliated with (each USCC checked; nothing kept on a
        bad one)."""
        from chalicelib.kernel import validators
        from chalicelib.kernel.errors import DomainError

        clean: list[str] = []
        for i, value in enumerate(usccs):
            try:
                clean.append(validators.uscc(value, field=f"usccs[{i}]").value)
            except DomainError as exc:
                raise InvalidField(
                    "fleet_case.affiliation_uscc",
                    "统一社会信用代码格式错误",
                    "Not a unified social credit code",
                    field=f"usccs[{i}]",
                ) from exc
        return self._affiliations.put(subject, sorted(set(clean)), by.subject, self._clock())

    # -- helpers -----------------------------------------------------------------------------------------

    def _require(self, batch_id: str) -> FleetCase:
        case = self._store.get(batch_id)
        if case is None:
            raise case_not_found(batch_id)
        return case

    def _note(
        self,
        case: FleetCase,
        kind: str,
        actor: str,
        public: dict[str, Any],
        personal: dict[str, str] | None = None,
    ) -> None:
        if self._evidence is None or case.flow_id is None:
            return
        from chalicelib.verification.domain.evidence import EvidenceKind

        self._evidence.append(case.flow_id, EvidenceKind(kind), actor, public, personal)


# -- the workflow's task handlers (``chalicelib.fleet.handlers``) ----------------------------------------


def _service() -> FleetCases:
    """The cases service as the composition root builds it (``chalicelib.fleet.wiring``)."""
    from chalicelib.fleet import wiring

    service: FleetCases = wiring.service("fleet_cases")
    return service


def _token_of(message: TaskMessage) -> str:
    if not message.token:
        raise ValueError(f"task {message.task} of {message.batch_id} came without a task token")
    return message.token


def on_review_task(message: TaskMessage) -> None:
    """``review`` (stage first, lead or second): the token waits on the case for a person."""
    stage = CaseStage(message.stage or CaseStage.FIRST.value)
    _service().hold_review_token(message.batch_id, _token_of(message), stage)


def on_await_resubmission(message: TaskMessage) -> bool:
    """``await_resubmission``: the token waits on the case for the enterprise's resubmission; True when
    the enterprise resubmitted already (the task is then completed at once)."""
    return _service().hold_resubmission_token(message.batch_id, _token_of(message))


def on_remind(message: TaskMessage) -> None:
    """``remind``: the reviewers are reminded of the undecided case (no token)."""
    _service().remind(message.batch_id)
