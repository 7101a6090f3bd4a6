"""The waves' schedules on EventBridge Scheduler: one one-time schedule per wave (``at(...)`` in UTC) in
the stage's campaign group, whose target sends the wave's start message to the campaign-waves queue and
which deletes itself once it has fired. Locally the worker plays the scheduler
(``chalicelib.local.scheduler``)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.campaigns.ports import WaveScheduler

#: How long the scheduler keeps trying to deliver a start message (then the wave can be run by hand).
_RETRY_POLICY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}


def schedule_name(campaign_id: str, wave: int) -> str:
    """The schedule of one wave (letters, digits, ``-`` and ``_``; at most 64 characters)."""
    return f"{campaign_id}-w{wave:02d}"


def at_expression(at: datetime) -> str:
    """EventBridge Scheduler's one-time expression for ``at`` (UTC, to the second)."""
    return f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


def start_input(campaign_id: str, wave: int) -> str:
    """The start message the schedule sends (the body the waves consumer reads)."""
    return json.dumps({"kind": "start_wave", "campaign_id": campaign_id, "wave": wave})


class EventBridgeWaveScheduler(WaveScheduler):
    """The port over a boto3 ``scheduler`` client; the queue's ARN is looked up once by its name."""

    def __init__(
        self,
        scheduler: Any,
        sqs: Any,
        *,
        group: str,
        queue_name: str,
        role_arn: str,
        dead_letter_queue_name: str | None = None,
    ):
        self._scheduler = scheduler
        self._sqs = sqs
        self._group = group
        self._queue_name = queue_name
        self._dead_letter_queue_name = dead_letter_queue_name
        self._role_arn = role_arn
        self._queue_arn: str | None = None
        self._lock = threading.Lock()

    @property
    def queue_arn(self) -> str:
        with self._lock:
            if self._queue_arn is None:
                url = self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
                attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                self._queue_arn = str(attributes["Attributes"]["QueueArn"])
            return self._queue_arn

    def schedule(self, campaign_id: str, wave: int, at: datetime) -> str:
        name = schedule_name(campaign_id, wave)
        request: dict[str, Any] = {
            "Name": name,
            "GroupName": self._group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self.queue_arn,
                "RoleArn": self._role_arn,
                "Input": start_input(campaign_id, wave),
                "RetryPolicy": dict(_RETRY_POLICY),
                **self._dead_letter_config(),
            },
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Description": f"backfill campaign {campaign_id} wave {wave}",
        }
        try:
            self._scheduler.create_schedule(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            # the wave had a schedule already: an update replaces every field of it
            self._scheduler.update_schedule(**request)
        return name

    def _dead_letter_config(self) -> dict[str, Any]:
        """Where the scheduler puts a start it could not deliver after its retries (the waves queue's
        dead-letter queue, alarmed): a wave whose schedule fired is never lost without a trace. Its ARN is
        the waves queue's with the other name (same account, region and partition)."""
        if not self._dead_letter_queue_name:
            return {}
        prefix = self.queue_arn.rsplit(":", 1)[0]
        return {"DeadLetterConfig": {"Arn": f"{prefix}:{self._dead_letter_queue_name}"}}

    def cancel(self, campaign_id: str, wave: int) -> None:
        try:
            self._scheduler.delete_schedule(Name=schedule_name(campaign_id, wave), GroupName=self._group)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
