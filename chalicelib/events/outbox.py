"""Lambda entry points of the outbox: the SQS consumer and the sweep (EventBridge, every minute).

The consumer reports partial batch failures (the event source mapping in infra sets
``ReportBatchItemFailures``; Chalice's own SQS decorator cannot), so one failing record is redelivered
alone. The sweep pushes records committed but never queued (a crash between commit and send), then
emits the age of the oldest push still waiting for its operator's answer (``OldestPendingPushMinutes``,
alarmed past ``push_stale_minutes``).
"""

from __future__ import annotations

from typing import Any

from chalicelib.core import deps


def dispatch_outbox(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    return deps.dispatcher().handle_batch(list(event.get("Records", [])))


def sweep_outbox() -> dict[str, Any]:
    from chalicelib.kernel.clock import utc_now
    from chalicelib.operators.staleness import report_oldest_pending

    report = deps.dispatcher().sweep().model_dump(mode="json")
    minutes = report_oldest_pending(deps.outbox_store(), utc_now())
    return {**report, "oldest_pending_minutes": minutes}
