"""How long the oldest push has waited for its operator's answer: ``OldestPendingPushMinutes``, emitted
by every sweep (the Lambda schedule in AWS, the local worker on ``make run``) and alarmed past
``Settings.push_stale_minutes``."""

from __future__ import annotations

from datetime import datetime

from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit
from chalicelib.operators.ports import OutboxStore

#: Open records read at most per sweep to find the oldest (the sparse index, a page of 100 at a time).
OLDEST_SCAN_LIMIT = 2000


def report_oldest_pending(store: OutboxStore, now: datetime) -> float:
    """Emit and return the age in minutes of the oldest push still waiting for its operator's answer."""
    minutes = oldest_pending_minutes(store, now)
    emit(Metric.OLDEST_PENDING_PUSH_MINUTES, minutes, "None")
    return minutes


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
