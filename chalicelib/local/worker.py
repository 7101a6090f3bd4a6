"""The local worker: runs what AWS would trigger (SQS consumers, EventBridge schedules).

Jobs register themselves in ``SCHEDULES`` (name, period, function) and ``CONSUMERS`` (queue, handler).
Later capabilities (outbox dispatch, backfill waves, retention purge) add entries; the loop is the same.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.observability import logger


@dataclass(frozen=True)
class Schedule:
    name: str
    every_seconds: float
    run: Callable[[], Any]


@dataclass(frozen=True)
class Consumer:
    queue_name: str
    handle: Callable[[list[dict[str, Any]]], Any]


def _health_watch() -> dict[str, Any]:
    """Every minute: log which dependencies are down, as the AWS health alarms would."""
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    down = []
    for spec in TABLES:
        try:
            client("dynamodb").describe_table(TableName=settings.table_name(spec.short_name))
        except Exception:
            down.append(spec.short_name)
    if down:
        logger.warning("dependencies down", extra={"down": down})
    return {"down": down}


def _sweep_outbox() -> dict[str, Any]:
    """Every few seconds: push outbox records committed but never queued (a crash in between)."""
    from chalicelib.core import deps

    return deps.dispatcher().sweep().model_dump(mode="json")


def _oldest_pending() -> dict[str, Any]:
    """Every minute: the age of the oldest push waiting for its operator (the metric AWS alarms on)."""
    from chalicelib.core import deps
    from chalicelib.kernel.clock import utc_now
    from chalicelib.operators.staleness import report_oldest_pending

    return {"oldest_pending_minutes": report_oldest_pending(deps.outbox_store(), utc_now())}


def _reconcile_pushes() -> dict[str, Any]:
    """Every hour: pushes whose answer never came are settled with their operator (or reported)."""
    from chalicelib.events.reconcile import reconcile_pushes

    return reconcile_pushes()


def _purge_abandoned() -> dict[str, Any]:
    """Every few minutes: abandoned registrations and flows deleted with their photos."""
    from chalicelib.core import deps

    return deps.registration_service().purge_abandoned()


def _purge_retention() -> dict[str, Any]:
    """Every day: the materials of services ended two years ago purged (第十八条)."""
    from chalicelib.core import deps

    report: dict[str, Any] = deps.retention().purge_due().model_dump(mode="json")
    return report


def _fire_campaign_schedules() -> dict[str, Any]:
    """Every few seconds: the backfill waves' schedules whose time has come fire (EventBridge Scheduler's
    part: the embedded AWS keeps schedules but never runs them)."""
    from chalicelib.local.scheduler import fire_due_schedules

    return {"fired": fire_due_schedules()}


def _dispatch(messages: list[dict[str, Any]]) -> Any:
    """The outbox queue's consumer, as the Lambda event source mapping runs it in AWS."""
    from chalicelib.core import deps

    return deps.dispatcher().handle_received(messages)


def _run_fleet_tasks(messages: list[dict[str, Any]]) -> Any:
    """The fleet tasks queue's consumer (the fleet review workflow's tasks), as the Lambda runs it."""
    from chalicelib.events.fleet_tasks import handle_received

    return handle_received(messages)


def _run_campaign_waves(messages: list[dict[str, Any]]) -> Any:
    """The campaign waves queue's consumer (wave starts, shard plans), as the Lambda runs it."""
    from chalicelib.events.campaigns import received_wave_messages

    return received_wave_messages(messages)


def _send_campaign_messages(messages: list[dict[str, Any]]) -> Any:
    """The campaign sends queue's consumer (backfill SMS), as the Lambda runs it."""
    from chalicelib.events.campaigns import received_send_messages

    return received_send_messages(messages)


def _campaign_queue(queue_id: str) -> Callable[[], str]:
    def name() -> str:
        from chalicelib.core.resources import declare
        from chalicelib.core.settings import get_settings

        return declare(get_settings()).queue(queue_id).name

    return name


def _fleet_tasks_queue() -> str:
    from chalicelib.events.fleet_tasks import fleet_tasks_queue_name

    return fleet_tasks_queue_name()


def _outbox_queue() -> str:
    from chalicelib.adapters.dynamo.outbox import OUTBOX_QUEUE, queue_name
    from chalicelib.core.settings import get_settings

    return queue_name(get_settings(), OUTBOX_QUEUE)


SCHEDULES: list[Schedule] = [
    Schedule("health-watch", 60.0, _health_watch),
    Schedule("outbox-sweep", 5.0, _sweep_outbox),
    Schedule("oldest-pending-push", 60.0, _oldest_pending),
    Schedule("purge-abandoned", 300.0, _purge_abandoned),
    Schedule("reconcile-pushes", 3600.0, _reconcile_pushes),
    Schedule("purge-retention", 86_400.0, _purge_retention),
    Schedule("campaign-scheduler", 5.0, _fire_campaign_schedules),
]
CONSUMERS: list[Consumer] = [
    Consumer("outbox", _dispatch),
    Consumer("fleet-tasks", _run_fleet_tasks),
    Consumer("campaign-waves", _run_campaign_waves),
    Consumer("campaign-sends", _send_campaign_messages),
]
#: Short queue name → the stage's full name (read when the loop runs, not at import).
_queue_names: dict[str, Callable[[], str]] = {
    "outbox": _outbox_queue,
    "fleet-tasks": _fleet_tasks_queue,
    "campaign-waves": _campaign_queue("campaign-waves"),
    "campaign-sends": _campaign_queue("campaign-sends"),
}


def _queue_url(sqs: Any, consumer: Consumer) -> str:
    name = _queue_names[consumer.queue_name]() if consumer.queue_name in _queue_names else consumer.queue_name
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def poll_consumers(consumers: list[Consumer]) -> int:
    """One receive per consumer (up to ten messages each, as Lambda's batches), handled; how many were."""
    from chalicelib.core.aws import client

    handled = 0
    for consumer in consumers:
        try:
            sqs = client("sqs")
            url = _queue_url(sqs, consumer)
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
            ).get("Messages", [])
            if messages:
                consumer.handle(messages)
                handled += len(messages)
        except Exception:
            logger.exception("consumer failed", extra={"queue": consumer.queue_name})
    return handled


def run_forever(
    poll_seconds: float = 1.0,
    *,
    schedules: list[Schedule] | None = None,
    consumers: list[Consumer] | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Run the schedules when due and drain the queues: while a receive brings messages the next one
    follows at once (a backlog drains at the pipeline's speed); only an idle round sleeps ``poll_seconds``.
    SIGTERM/SIGINT set ``stop`` when the worker runs as its own process."""
    schedules = SCHEDULES if schedules is None else schedules
    consumers = CONSUMERS if consumers is None else consumers
    if stop is None:
        stop = event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: event.set())
        signal.signal(signal.SIGINT, lambda *_: event.set())
    due = dict.fromkeys((s.name for s in schedules), 0.0)
    logger.info("worker started", extra={"schedules": [s.name for s in schedules]})
    while not stop.is_set():
        now = time.monotonic()
        for s in schedules:
            if now >= due[s.name]:
                due[s.name] = now + s.every_seconds
                try:
                    s.run()
                except Exception:
                    logger.exception("scheduled job failed", extra={"job": s.name})
        if poll_consumers(consumers) == 0 and not stop.is_set():
            sleep(poll_seconds)
    logger.info("worker stopped")


if __name__ == "__main__":
    run_forever()
