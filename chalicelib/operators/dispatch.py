"""The outbox dispatcher: delivers committed pushes to the operator (SPEC §6: retried, dead-lettered).

The queue only says "record X may be due"; the record in the table says what to send and whether it
still needs sending. For each message the dispatcher:

1. claims the record (a conditional write: pending, due, not claimed), so a message delivered twice,
   or sent both by a use case and by the sweeper, pushes once in effect (the operator also deduplicates
   on ``message_id``);
2. pushes it; on success the record is ``sent`` and the operator's answer comes by callback;
3. on ``OperatorUnavailable`` schedules the next attempt with exponential backoff and full jitter (the
   record's ``next_attempt_at``, and the message re-sent with that delay); after ``max_attempts`` the
   record is ``dead`` and copied to the dead-letter queue; ``OperatorRefused`` makes it dead at once;
4. on ``OperatorNotConfigured`` (the stage has no URL or no keys for the operator yet) the record waits:
   still pending, its attempt given back, the reason in ``last_error``, never dead. Its message is
   handled (deleted), not re-sent or left to reappear: a missing setting can last days, and a message
   received again and again would end in the queue's DLQ after ``maxReceiveCount`` receives. The
   record itself says when to look again (``unconfigured_wait_seconds``), and the sweep re-enqueues it
   then, until the operator is configured.

``sweep`` finds pending records nobody pushed in time (a crash between commit and enqueue, a lost
message, a dispatcher that died mid-push) and enqueues them again.
"""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, InvalidField, NotFound
from chalicelib.kernel.paging import MAX_PAGE
from chalicelib.operators.domain.messages import OperatorNotConfigured, OperatorRefused, OperatorUnavailable
from chalicelib.operators.domain.outbox import (
    LISTABLE_STATUSES,
    Claim,
    OutboxPage,
    OutboxStatus,
    OutboxSummary,
    RetryPolicy,
)
from chalicelib.operators.ports import OperatorGateway, OutboxStore, PushQueue

_RECORD_ID = re.compile(r"^[0-9a-f]{32}$")


def message_body(record_id: str) -> str:
    """What the queue carries: the record id, nothing personal."""
    return json.dumps({"record_id": record_id})


def record_id_of(body: str) -> str:
    doc = json.loads(body)
    record_id = doc.get("record_id") if isinstance(doc, dict) else None
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("an outbox message names its record_id")
    return record_id


class DispatchOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # the operator was unavailable: the next attempt is scheduled
    DEAD = "dead"
    SUPERSEDED = "superseded"  # the card changed since: this push is moot and was not sent
    SKIPPED = "skipped"  # not takeable: already handled, claimed by another dispatcher, or not due yet
    WAITING = "waiting"  # the operator is not configured: pending, no attempt spent, the sweep retries


class SweepReport(BaseModel):
    due: int
    enqueued: int


class Dispatcher:
    def __init__(
        self,
        store: OutboxStore,
        gateway: OperatorGateway,
        queue: PushQueue,
        *,
        dead_letters: PushQueue | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ):
        self._store = store
        self._gateway = gateway
        self._queue = queue
        self._dead_letters = dead_letters
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng or random.SystemRandom()

    # -- SQS entry points ----------------------------------------------------------------------------

    def handle_batch(self, records: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
        """An SQS batch as Lambda delivers it; failed messages are reported for redelivery
        (``ReportBatchItemFailures``): only an error of our own store or queue fails a message."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

        def handle(record: SQSRecord) -> None:
            self.dispatch(record_id_of(record.body))

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event={"Records": records}, record_handler=handle, processor=processor
        )
        failures = response.get("batchItemFailures", [])
        return {"batchItemFailures": [{"itemIdentifier": str(f["itemIdentifier"])} for f in failures]}

    def handle_received(self, messages: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
        """Messages from ``receive_message`` (the local worker): handled as a Lambda batch, then the
        handled ones deleted, as Lambda's event source mapping does."""
        records = [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
            for m in messages
        ]
        result = self.handle_batch(records)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        self._queue.acknowledge([r["receiptHandle"] for r in records if r["messageId"] not in failed])
        return result

    # -- one record ----------------------------------------------------------------------------------

    def dispatch(self, record_id: str) -> DispatchOutcome:
        now = self._clock()
        lease = timedelta(seconds=self._policy.lease_seconds)
        grace = timedelta(seconds=self._policy.sweep_grace_seconds)
        claim = self._store.claim(record_id, now, now + lease, now + lease + grace)
        if claim is None:
            return DispatchOutcome.SKIPPED
        record = claim.record
        if record.kind not in (PushKind.DEREGISTER, PushKind.SPOT_CHECK_ANSWER, PushKind.ACTUAL_USER):
            # (A spot check's answer, an actual user: never the card's current push, nothing makes it moot.)
            current = self._store.lifecycle(record.iccid).message_id
            if current != record.record_id:
                # A later change (scrap, part replacement, de-registration) made this push moot before it
                # left: sending it now could reach the operator after the later one.
                self._store.settle(
                    claim, OutboxStatus.SUPERSEDED, self._clock(), note=f"superseded by {current}"
                )
                return DispatchOutcome.SUPERSEDED
        try:
            receipt = self._gateway.push(record.message)
        except OperatorRefused as exc:
            emit(Metric.OPERATOR_ERROR, operator=record.operator.value, kind="refused")
            return self._dead(claim, f"refused: {exc}")
        except OperatorNotConfigured as exc:
            return self._wait(claim, exc)
        except OperatorUnavailable as exc:
            emit(Metric.OPERATOR_ERROR, operator=record.operator.value, kind="unavailable")
            return self._retry(claim, f"unavailable: {exc}")
        except Exception as exc:  # a gateway bug must not lose the record: retried like an outage
            logger.exception("operator gateway failed", extra={"record": record_id})
            emit(Metric.OPERATOR_ERROR, operator=record.operator.value, kind="error")
            return self._retry(claim, f"error: {type(exc).__name__}")
        self._store.settle(claim, OutboxStatus.SENT, self._clock(), operator_ref=receipt.operator_ref)
        emit(Metric.PUSH_SENT, operator=record.operator.value)
        return DispatchOutcome.SENT

    def _retry(self, claim: Claim, error: str) -> DispatchOutcome:
        attempts = claim.record.attempts
        delay = self._policy.next_delay(attempts, self._rng)
        if delay is None:
            return self._dead(claim, f"{error} (after {attempts} attempts)")
        now = self._clock()
        due = now + timedelta(seconds=delay)
        sweep_at = due + timedelta(seconds=self._policy.sweep_grace_seconds)
        if not self._store.mark_retry(claim, due, sweep_at, error, now):
            return DispatchOutcome.SKIPPED
        logger.info("operator push retry scheduled", extra={"record": claim.record.record_id, "delay": delay})
        # If this send fails the message is reported failed and comes back; the sweeper is the backstop.
        self._queue.send_message(message_body(claim.record.record_id), delay)
        return DispatchOutcome.RETRY

    def _wait(self, claim: Claim, exc: OperatorNotConfigured) -> DispatchOutcome:
        now = self._clock()
        until = now + timedelta(seconds=self._policy.unconfigured_wait_seconds)
        if not self._store.mark_waiting(claim, until, str(exc), now):
            return DispatchOutcome.SKIPPED
        emit(Metric.OPERATOR_NOT_CONFIGURED, operator=exc.operator.value)
        logger.warning(
            "operator push waits: operator not configured",
            extra={"record": claim.record.record_id, "operator": exc.operator.value, "missing": exc.missing},
        )
        return DispatchOutcome.WAITING

    def _dead(self, claim: Claim, error: str) -> DispatchOutcome:
        record = claim.record
        if not self._store.settle(claim, OutboxStatus.DEAD, self._clock(), note=error):
            return DispatchOutcome.SKIPPED
        logger.warning("operator push dead", extra={"record": record.record_id, "attempts": record.attempts})
        emit(Metric.PUSH_DEAD, operator=record.operator.value)
        if self._dead_letters is not None:
            body = json.dumps({"record_id": record.record_id, "iccid": record.iccid, "error": error})
            try:
                self._dead_letters.send_message(body)
            except Exception:  # the record is dead in the table and listed there: the copy is a courtesy
                logger.exception("dead-letter copy failed", extra={"record": record.record_id})
        return DispatchOutcome.DEAD

    # -- the backstop --------------------------------------------------------------------------------

    def sweep(self, limit: int = 500) -> SweepReport:
        """Enqueue pending records nobody pushed in time; each is re-armed first, so a slow queue does
        not make the sweeper enqueue it again every run."""
        now = self._clock()
        grace = timedelta(seconds=self._policy.sweep_grace_seconds)
        due = self._store.due(now, limit)
        enqueued = 0
        for summary in due:
            if summary.sweep_at is None or (summary.claim_until is not None and summary.claim_until > now):
                continue
            if self._store.rearm(summary.record_id, summary.sweep_at, now + grace):
                self._queue.send_message(message_body(summary.record_id))
                enqueued += 1
        if enqueued:
            logger.info("outbox sweep enqueued records", extra={"count": enqueued})
        return SweepReport(due=len(due), enqueued=enqueued)


def _status(value: str | None) -> OutboxStatus:
    names = ", ".join(s.value for s in LISTABLE_STATUSES)
    try:
        status = OutboxStatus(value or "")
    except ValueError:
        status = None
    if status not in LISTABLE_STATUSES:
        raise InvalidField(
            "outbox.status", f"状态须为 {names} 之一", f"status must be one of {names}", field="status"
        )
    assert status is not None
    return status


def check_record_id(record_id: str) -> str:
    if not _RECORD_ID.match(record_id):
        raise InvalidField(
            "outbox.record_id",
            "推送记录编号格式错误",
            "A record id is 32 hexadecimal digits",
            field="record_id",
        )
    return record_id


def list_records(store: OutboxStore, status: str | None, limit: int, cursor: str | None) -> OutboxPage:
    """Pending, sent or dead records, a page at a time (a sparse index, never a scan)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidField(
            "outbox.limit", f"每页 1–{MAX_PAGE} 条", f"limit must be 1-{MAX_PAGE}", field="limit"
        )
    return store.page(_status(status), limit, cursor)


def retry_record(
    store: OutboxStore,
    queue: PushQueue,
    record_id: str,
    *,
    policy: RetryPolicy | None = None,
    clock: Clock = utc_now,
) -> OutboxSummary:
    """A dead record pushed again with a fresh attempt budget (after the cause was fixed)."""
    check_record_id(record_id)
    now = clock()
    grace = timedelta(seconds=(policy or RetryPolicy()).sweep_grace_seconds)
    revived = store.revive(record_id, now, now + grace)
    if revived is None:
        record = store.get(record_id)
        if record is None:
            raise NotFound(
                "outbox.not_found", "未找到该推送记录", "No outbox record with this id", field="record_id"
            )
        raise Conflict(
            "outbox.not_dead",
            f"只有失败的推送可以重试（当前状态 {record.status.value}）",
            f"Only a dead record can be retried; this one is {record.status.value}",
            field="record_id",
            details={"status": record.status.value},
        )
    try:
        queue.send_message(message_body(record_id))
    except Exception:
        logger.warning("outbox enqueue failed; the sweeper will push it", extra={"record": record_id})
    return revived


class BulkRetryReport(BaseModel):
    """What ``retry_dead`` re-queued."""

    retried: int
    record_ids: list[str]
    #: More dead records than ``limit`` remain: run it again.
    more: bool = False


def retry_dead(
    store: OutboxStore,
    queue: PushQueue,
    *,
    limit: int = 1000,
    policy: RetryPolicy | None = None,
    clock: Clock = utc_now,
) -> BulkRetryReport:
    """Every dead record (at most ``limit``) pushed again with a fresh attempt budget, after the cause
    was fixed: each leaves the dead list as it is revived, so the first page is read until it is empty."""
    grace = timedelta(seconds=(policy or RetryPolicy()).sweep_grace_seconds)
    revived: list[str] = []
    seen: set[str] = set()
    while len(revived) < limit:
        page = store.page(OutboxStatus.DEAD, min(MAX_PAGE, limit - len(revived)), None)
        fresh = [item for item in page.items if item.record_id not in seen]
        if not fresh:
            break
        for item in fresh:
            seen.add(item.record_id)
            now = clock()
            if store.revive(item.record_id, now, now + grace) is None:
                continue  # retried meanwhile by someone else
            revived.append(item.record_id)
            try:
                queue.send_message(message_body(item.record_id))
            except Exception:
                logger.warning(
                    "outbox enqueue failed; the sweeper will push it", extra={"record": item.record_id}
                )
    more = len(revived) >= limit and bool(store.page(OutboxStatus.DEAD, 1, None).items)
    if revived:
        logger.info("dead outbox records retried", extra={"count": len(revived)})
    return BulkRetryReport(retried=len(revived), record_ids=revived, more=more)
