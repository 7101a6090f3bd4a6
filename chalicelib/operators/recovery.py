"""Nothing stays pending forever: the scheduled reconciliation of pushes whose answer never came.

A lost callback or a push the operator never kept would leave a card ``pending`` for good, its one-ID
slot held. Every hour (EventBridge in AWS, the local worker on ``make run``) this use case takes the
pushes older than ``Settings.push_stale_minutes`` and asks their operator (the status query):

- ``decided``: the decision is applied exactly as its callback would be (the same ``callback_id``,
  handed to the cards' answer use case, then to the registration, which tells the person); a callback
  arriving later is a duplicate;
- ``received`` (not decided yet): left in flight; past ``Settings.push_drift_minutes`` it is drift;
- ``unknown`` (the operator never received it): a ``sent`` record is pushed again (back to
  ``pending`` with a fresh attempt budget, ``last_error`` saying why); one already pushed again and
  still unknown is ``dead`` with that reason (an admin retries it: ``cheka outbox retry --dead``). A
  ``pending`` record is the dispatcher's (still retrying): drift only past the drift age;
- an operator that cannot be asked (down, not configured, refusing the query): drift.

What it cannot repair is reported as drift (``ReconciliationDrift``, alarmed). Sent records are read
from the sparse open-status index by their delivery time (only what is due); pending ones are the retry
backlog, read from the same index. Never a table scan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.paging import MAX_PAGE
from chalicelib.operators.dispatch import message_body
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    OperatorRefused,
    OperatorUnavailable,
    PushStatus,
    PushStatusState,
)
from chalicelib.operators.domain.outbox import CallbackNote, OutboxStatus, OutboxSummary, RetryPolicy
from chalicelib.operators.ports import OperatorGateway, OutboxStore, PushQueue

#: ``last_error`` of a record pushed again because its operator never received it.
REPUSHED_NOTE = "unknown at the operator: pushed again"
#: ``last_error`` of a record given up after it was pushed again and still never received.
LOST_NOTE = "unknown at the operator after being pushed again: retry it once the operator is checked"


class DriftReason(StrEnum):
    """Why a push could not be settled by the reconciliation."""

    UNREACHABLE = "unreachable"  # the operator could not be asked (down, not configured)
    QUERY_REFUSED = "query_refused"  # the operator refused the status query itself
    UNDECIDED = "undecided"  # received, still undecided past the drift age
    UNDELIVERED = "undelivered"  # pending (retrying) past the drift age, unknown at the operator
    LOST = "lost"  # pushed again and still unknown: dead, waits for an admin
    NOT_APPLIED = "not_applied"  # the decision names another card or operator than the record


class PushDrift(BaseModel):
    record_id: str
    iccid: str
    operator: str
    status: OutboxStatus
    reason: DriftReason
    age_minutes: float
    detail: str | None = None


class RecoveryReport(BaseModel):
    """What one run of the reconciliation did (counts, and the drift it could not repair)."""

    checked: int = 0
    applied: int = 0
    repushed: int = 0
    dead: int = 0
    in_flight: int = 0
    drift_count: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    drifts: list[PushDrift] = Field(default_factory=list)
    truncated: bool = False


class PushRecovery:
    def __init__(
        self,
        store: OutboxStore,
        gateway: OperatorGateway,
        queue: PushQueue,
        apply: Callable[[OperatorCallback], object],
        on_applied: Callable[[str], None],
        *,
        stale_after: timedelta,
        drift_after: timedelta,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
    ):
        """``apply`` is the cards' answer use case (``Lifecycle.apply_callback``: returns a result with
        a ``note``); ``on_applied(message_id)`` tells the registration, as a callback does."""
        self._store = store
        self._gateway = gateway
        self._queue = queue
        self._apply = apply
        self._on_applied = on_applied
        self._stale = stale_after
        self._drift = max(drift_after, stale_after)
        self._policy = policy or RetryPolicy()
        self._clock = clock

    def run(self, *, limit: int = 5000, max_drifts: int = 1000) -> RecoveryReport:
        """Ask the operators about at most ``limit`` stale pushes of each open status; report."""
        now = self._clock()
        report = RecoveryReport()
        reasons: Counter[str] = Counter()

        def drift(item: OutboxSummary, reason: DriftReason, detail: str | None = None) -> None:
            reasons[reason.value] += 1
            if len(report.drifts) < max_drifts:
                report.drifts.append(
                    PushDrift(
                        record_id=item.record_id,
                        iccid=item.iccid,
                        operator=item.operator.value,
                        status=item.status,
                        reason=reason,
                        age_minutes=_minutes(now - item.created_at),
                        detail=detail,
                    )
                )

        for item in self._stale_records(now, limit):
            report.checked += 1
            self._settle(item, now, report, drift)
        report.drift_count = sum(reasons.values())
        report.by_reason = dict(reasons)
        report.truncated = report.drift_count > len(report.drifts)
        emit(Metric.RECONCILIATION_DRIFT, report.drift_count)
        if report.drift_count:
            logger.warning("push reconciliation drift", extra={"by_reason": report.by_reason})
        return report

    # -- what is due ---------------------------------------------------------------------------------

    def _stale_records(self, now: datetime, limit: int) -> list[OutboxSummary]:
        before = now - self._stale
        found: list[OutboxSummary] = []
        cursor: str | None = None
        while len(found) < limit:
            page = self._store.sent_before(before, min(MAX_PAGE, limit - len(found)), cursor)
            found += [i for i in page.items if i.created_at <= before]
            cursor = page.cursor
            if cursor is None:
                break
        pending: list[OutboxSummary] = []
        cursor = None
        read = 0
        while read < limit:
            page = self._store.page(OutboxStatus.PENDING, min(MAX_PAGE, limit - read), cursor)
            read += len(page.items)
            pending += [
                i
                for i in page.items
                if i.created_at <= before and (i.claim_until is None or i.claim_until <= now)
            ]
            cursor = page.cursor
            if cursor is None:
                break
        return found + pending

    # -- one record ----------------------------------------------------------------------------------

    def _settle(
        self,
        item: OutboxSummary,
        now: datetime,
        report: RecoveryReport,
        drift: Callable[..., None],
    ) -> None:
        try:
            status = self._gateway.query_status(item.operator, item.record_id)
        except OperatorRefused as exc:
            drift(item, DriftReason.QUERY_REFUSED, str(exc)[:200])
            return
        except OperatorUnavailable as exc:
            drift(item, DriftReason.UNREACHABLE, str(exc)[:200])
            return
        except Exception as exc:  # a gateway bug: reported, the other records still settled
            logger.exception("status query failed", extra={"record": item.record_id})
            drift(item, DriftReason.UNREACHABLE, type(exc).__name__)
            return
        old = now - item.created_at >= self._drift
        if status.state is PushStatusState.DECIDED:
            self._apply_decision(item, status, report, drift)
        elif status.state is PushStatusState.RECEIVED:
            if old:
                drift(item, DriftReason.UNDECIDED)
            else:
                report.in_flight += 1
        elif item.status is OutboxStatus.SENT:
            self._unknown_sent(item, now, report, drift)
        elif old:
            drift(item, DriftReason.UNDELIVERED, item.last_error)
        else:
            report.in_flight += 1

    def _apply_decision(
        self, item: OutboxSummary, status: PushStatus, report: RecoveryReport, drift: Callable[..., None]
    ) -> None:
        decision = status.decision
        if decision is None or decision.iccid != item.iccid or decision.operator is not item.operator:
            drift(item, DriftReason.NOT_APPLIED, "the decision names another card or operator")
            return
        result = self._apply(decision)
        note = getattr(result, "note", None)
        if note is CallbackNote.UNKNOWN:
            drift(item, DriftReason.NOT_APPLIED, "the card does not know this message")
            return
        report.applied += 1
        emit(Metric.CALLBACK_RECEIVED, operator=item.operator.value, outcome=f"queried_{note}")
        if note is CallbackNote.APPLIED:
            accepted = decision.outcome is CallbackOutcome.ACCEPTED
            emit(Metric.PUSH_ACCEPTED if accepted else Metric.PUSH_REFUSED, operator=item.operator.value)
            try:
                self._on_applied(item.record_id)
            except Exception:  # the card is settled whatever becomes of the notification
                logger.exception("result notification failed", extra={"record": item.record_id})

    def _unknown_sent(
        self, item: OutboxSummary, now: datetime, report: RecoveryReport, drift: Callable[..., None]
    ) -> None:
        if item.last_error == REPUSHED_NOTE:
            if self._store.reopen_sent(item.record_id, OutboxStatus.DEAD, now, LOST_NOTE) is not None:
                report.dead += 1
                emit(Metric.PUSH_DEAD, operator=item.operator.value)
                drift(item, DriftReason.LOST, LOST_NOTE)
            return
        sweep_at = now + timedelta(seconds=self._policy.sweep_grace_seconds)
        reopened = self._store.reopen_sent(
            item.record_id, OutboxStatus.PENDING, now, REPUSHED_NOTE, sweep_at=sweep_at
        )
        if reopened is None:  # answered meanwhile
            return
        report.repushed += 1
        try:
            self._queue.send_message(message_body(item.record_id))
        except Exception:
            logger.warning(
                "outbox enqueue failed; the sweeper will push it", extra={"record": item.record_id}
            )


def _minutes(delta: timedelta) -> float:
    return round(max(0.0, delta.total_seconds() / 60), 1)
