"""Lambda entry points of the outbox: the SQS consumer and the sweep (EventBridge, every minute).

The consumer reports partial batch failures (the event source mapping in infra sets
``ReportBatchItemFailures``; Chalice's own SQS decorator cannot), so one failing record is redelivered
alone. The sweep pushes records committed but never queued (a crash between commit and send), then
emits the age of the oldest push still waiting for its operator's answer (``OldestPendingPushMinutes``,
alarmed past ``push_stale_minutes``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core import deps
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit
from chalicelib.kernel.clock import utc_now

if TYPE_CHECKING:
    from chalicelib.operators.ports import OutboxStore

#: Open records read at most per sweep to find the oldest (the sparse index, a page of 100 at a time).
OLDEST_SCAN_LIMIT = 2000


def dispatch_outbox(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    return deps.dispatcher().handle_batch(list(event.get("Records", [])))


def sweep_outbox() -> dict[str, Any]:
    report = deps.dispatcher().sweep().model_dump(mode="json")
    minutes = oldest_pending_minutes(deps.outbox_store(), utc_now())
    emit(Metric.OLDEST_PENDING_PUSH_MINUTES, minutes, "None")
    return {**report, "oldest_pending_minutes": minutes}


def oldest_pending_minutes(store: OutboxStore, now: datetime, limit: int = OLDEST_SCAN_LIMIT) -> float:
    """Minutes since the oldest push still waiting for its operator's answer was committed: ``pending``
    (not delivered yet: retrying, or waiting for the operator's configuration) or ``sent`` (delivered,
    no callback yet); 0 when none waits. Read from the sparse open-status index (never a table scan),
    at most ``limit`` records of each status: past that the backlog itself is the alarm, and the
    records read show it.
    """
    from chalicelib.kernel.paging import MAX_PAGE
    from chalicelib.operators.domain.outbox import OutboxStatus

    oldest: datetime | None = None
    for status in (OutboxStatus.PENDING, OutboxStatus.SENT):
        cursor: str | None = None
        read = 0
        while read < limit:
            page = store.page(status, min(MAX_PAGE, limit - read), cursor)
            read += len(page.items)
            for item in page.items:
                if oldest is None or item.created_at < oldest:
                    oldest = item.created_at
            cursor = page.cursor
            if cursor is None:
                break
    if oldest is None:
        return 0.0
    return round(max(0.0, (now - oldest).total_seconds() / 60), 1)
