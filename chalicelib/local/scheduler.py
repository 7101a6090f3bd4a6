"""The local stack's EventBridge Scheduler: the embedded AWS keeps the schedules but never fires them, so
the worker does (every few seconds): each one-time schedule of the campaign group whose ``at()`` time has
come sends its input to its target queue and is deleted, as ``ActionAfterCompletion=DELETE`` would."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.observability import logger

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


def due_at(expression: str) -> datetime | None:
    """The time of a one-time ``at(...)`` expression (UTC); None for any other expression."""
    found = _AT.match(expression)
    if found is None:
        return None
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)


def _queue_url(sqs: Any, arn: str) -> str:
    name = arn.rsplit(":", 1)[-1]
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def fire_due_schedules(now: datetime | None = None) -> int:
    """Send the input of every due schedule of the stage's campaign group to its queue and delete the
    schedule; how many fired."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    now = now or datetime.now(UTC)
    group = get_settings().campaign_schedules_group
    scheduler, sqs = client("scheduler"), client("sqs")
    names: list[str] = []
    for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group):
        names.extend(s["Name"] for s in page.get("Schedules", []) if s.get("GroupName", group) == group)
    fired = 0
    for name in names:
        schedule = scheduler.get_schedule(Name=name, GroupName=group)
        at = due_at(schedule.get("ScheduleExpression", ""))
        if at is None or at > now or schedule.get("State", "ENABLED") != "ENABLED":
            continue
        target = schedule["Target"]
        sqs.send_message(QueueUrl=_queue_url(sqs, target["Arn"]), MessageBody=target.get("Input", "{}"))
        scheduler.delete_schedule(Name=name, GroupName=group)
        logger.info("schedule fired", extra={"schedule": name, "at": at.isoformat()})
        fired += 1
    return fired
