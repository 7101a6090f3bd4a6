"""In-memory fakes of the fleet cases' stores and of the batches as the cases see them."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chalicelib.fleet.cases_domain import (
    AffiliationStore,
    CasePage,
    CaseStage,
    CaseStore,
    FleetCase,
    HeldToken,
    case_not_found,
)
from chalicelib.fleet.domain import BatchStatus, DocumentSlot, FleetBatch


class FakeCaseStore(CaseStore):
    """Cases in a dict; every change under one lock, the token taken only if it is the one named."""

    def __init__(self) -> None:
        self.cases: dict[str, FleetCase] = {}
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> FleetCase | None:
        return self.cases.get(batch_id)

    def save_round(self, case: FleetCase) -> None:
        with self._lock:
            self.cases[case.batch_id] = dataclasses.replace(case, token=None)

    def _change(self, batch_id: str, **changes: Any) -> FleetCase:
        case = self.cases.get(batch_id)
        if case is None:
            raise case_not_found(batch_id)
        self.cases[batch_id] = dataclasses.replace(case, **changes)
        return self.cases[batch_id]

    def hold_token(
        self, batch_id: str, token: HeldToken, *, status: BatchStatus | None, escalated: bool | None
    ) -> bool:
        with self._lock:
            case = self.cases.get(batch_id)
            if case is not None and token.digest in case.seen_tokens:
                return False
            changes: dict[str, Any] = {"token": token}
            if case is not None:
                changes["seen_tokens"] = (*case.seen_tokens, token.digest)
            if token.stage is not None:
                changes["stage"] = token.stage
            if status is not None:
                changes["status"] = status
            if escalated is not None:
                changes["escalated"] = escalated
            self._change(batch_id, **changes)
            return True

    def take_token(self, batch_id: str, token_id: str) -> bool:
        with self._lock:
            case = self.cases.get(batch_id)
            if case is None or case.token is None or case.token.token_id != token_id:
                return False
            self._change(batch_id, token=None)
            return True

    def give_back_token(self, batch_id: str, token: HeldToken) -> None:
        with self._lock:
            case = self.cases.get(batch_id)
            if case is not None and case.token is None:
                self._change(batch_id, token=token)

    def record_decision(
        self,
        batch_id: str,
        decision: dict[str, Any],
        *,
        status: BatchStatus,
        stage: CaseStage | None,
        first_approver: str | None,
    ) -> FleetCase:
        with self._lock:
            case = self.cases[batch_id]
            return self._change(
                batch_id,
                decisions=(*case.decisions, decision),
                status=status,
                stage=stage,
                first_approver=first_approver or case.first_approver,
            )

    def set_status(self, batch_id: str, status: BatchStatus, *, stage: CaseStage | None = None) -> None:
        with self._lock:
            self._change(batch_id, status=status, stage=stage)

    def mark_reminded(self, batch_id: str) -> bool:
        with self._lock:
            case = self.cases.get(batch_id)
            if case is not None and case.reminded:
                return False
            self._change(batch_id, reminded=True)
            return True

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
        found = [
            c
            for c in self.cases.values()
            if c.status is status
            and (stage is None or c.stage is stage)
            and (uscc is None or c.uscc == uscc)
            and (overdue is None or c.overdue(now) is overdue)
        ]
        found.sort(key=lambda c: c.deadline_at or c.opened_at)
        return CasePage(found[:limit], None)


class FakeAffiliations(AffiliationStore):
    def __init__(self) -> None:
        self.by_subject: dict[str, tuple[str, ...]] = {}

    def get(self, subject: str) -> tuple[str, ...]:
        return self.by_subject.get(subject, ())

    def put(self, subject: str, usccs: Sequence[str], by: str, at: datetime) -> tuple[str, ...]:
        self.by_subject[subject] = tuple(usccs)
        return self.by_subject[subject]


class FakeBatches:
    """The batches as the cases see them: ``get`` and ``set_status`` (with the expected statuses)."""

    def __init__(self) -> None:
        self.batches: dict[str, FleetBatch] = {}
        self.statuses: list[tuple[str, BatchStatus, tuple[str, ...], tuple[DocumentSlot, ...]]] = []

    def add(self, batch: FleetBatch) -> FleetBatch:
        self.batches[batch.batch_id] = batch
        return batch

    def get(self, batch_id: str) -> FleetBatch | None:
        return self.batches.get(batch_id)

    def set_status(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        reasons: Sequence[str] = (),
        resubmit_documents: Sequence[DocumentSlot] = (),
        expected: set[BatchStatus],
    ) -> FleetBatch:
        batch = self.batches[batch_id]
        assert batch.status in expected, (batch.status, expected)
        slots = tuple(DocumentSlot(s) for s in resubmit_documents)
        self.batches[batch_id] = dataclasses.replace(
            batch, status=status, outcome_reasons=tuple(reasons), resubmit_documents=slots
        )
        self.statuses.append((batch_id, status, tuple(reasons), slots))
        return self.batches[batch_id]
