"""Entry points of the campaign queues (补登记): the ``run_campaign_waves`` and ``send_campaign_messages``
Lambdas (SQS event source mappings with ``ReportBatchItemFailures``, in infra) and the local worker's
consumers, which hand the same records over and delete what was handled, as the mapping does.

``campaign-waves`` carries a wave's start (its schedule fired) and one plan message per shard; a planner
out of time queues its own message again (a paused campaign's shards are queued again by its resume).
``campaign-sends`` carries batches of targets; a batch deferred (quiet hours, a paused campaign) is hidden
until then and reported failed, so SQS hands it back at that time; one received often already is queued
afresh instead, so that deferrals never walk it to the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalicelib.core import deps
from chalicelib.core.observability import logger

#: A Lambda stops taking new messages of its batch with less than this left (they come back later): a
#: message of ten targets takes up to 20 s at the lowest rate (1/s) shared by two senders.
RESERVE_MILLIS = 25_000
#: SQS's longest message delay (a message queued again waits at most this long before it is received).
MAX_DELAY_SECONDS = 900

Failures = dict[str, list[dict[str, str]]]


def _remaining_millis(context: Any) -> Callable[[], float]:
    probe = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: float(probe())) if callable(probe) else (lambda: float("inf"))


def _receives(record: dict[str, Any]) -> int:
    try:
        return int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def handle_wave_messages(records: list[dict[str, Any]], context: Any = None) -> Failures:
    """A batch of ``campaign-waves`` records: waves started, shards planned."""
    from chalicelib.campaigns.messages import PLAN_SHARD, read_wave_message
    from chalicelib.campaigns.planner import PlanOutcome
    from chalicelib.kernel.errors import DomainError

    remaining = _remaining_millis(context)
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record["messageId"])
        if remaining() < RESERVE_MILLIS:
            failures.append({"itemIdentifier": message_id})
            continue
        try:
            message = read_wave_message(json.loads(record["body"]))
        except (ValueError, DomainError):
            logger.error("malformed campaign waves message dropped", extra={"message_id": message_id})
            continue
        try:
            if message.kind == PLAN_SHARD:
                assert message.shard is not None
                outcome = deps.wave_planner().plan_shard(message.campaign_id, message.wave, message.shard)
                if outcome is PlanOutcome.CONTINUE:  # out of time: the next run carries on from the cursor
                    deps.campaign_waves_queue().send(json.loads(record["body"]))
            else:
                deps.campaigns().start_wave(message.campaign_id, message.wave)
        except DomainError as err:
            # the campaign changed meanwhile, or a dependency could not answer (503): try again
            if err.status == 409 or err.status >= 500:
                failures.append({"itemIdentifier": message_id})
            else:
                logger.warning(
                    "campaign waves message refused",
                    extra={"code": err.code, "campaign_id": message.campaign_id, "wave": message.wave},
                )
        except Exception:
            logger.exception(
                "campaign waves message failed",
                extra={"campaign_id": message.campaign_id, "wave": message.wave, "kind": message.kind},
            )
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def handle_send_messages(records: list[dict[str, Any]], context: Any = None) -> Failures:
    """A batch of ``campaign-sends`` records: each batch of targets sent, skipped or deferred."""
    from chalicelib.campaigns.messages import read_send_batch
    from chalicelib.core.resources import CAMPAIGN_SENDS_MAX_RECEIVES
    from chalicelib.kernel.errors import DomainError

    remaining = _remaining_millis(context)
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record["messageId"])
        if remaining() < RESERVE_MILLIS:
            failures.append({"itemIdentifier": message_id})
            continue
        try:
            body = json.loads(record["body"])
            batch = read_send_batch(body)
        except (ValueError, DomainError):
            logger.error("malformed campaign sends message dropped", extra={"message_id": message_id})
            continue
        try:
            outcome = deps.wave_sender().handle(batch)
            if outcome.defer_seconds is None:
                continue
            if _receives(record) >= CAMPAIGN_SENDS_MAX_RECEIVES - 2:
                deps.campaign_sends_queue().send(
                    body, delay_seconds=min(MAX_DELAY_SECONDS, outcome.defer_seconds)
                )
            else:
                deps.campaign_sends_queue().defer(str(record["receiptHandle"]), outcome.defer_seconds)
                failures.append({"itemIdentifier": message_id})
        except Exception:
            logger.exception("campaign sends message failed", extra={"campaign_id": batch.campaign_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": dict(m.get("Attributes") or {}),
        }
        for m in messages
    ]


def _acknowledge(queue_url: str, records: list[dict[str, Any]], result: Failures) -> None:
    from chalicelib.core.aws import client

    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    done = [r for r in records if r["messageId"] not in failed]
    if done:
        client("sqs").delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
        )


def received_wave_messages(messages: list[dict[str, Any]]) -> Failures:
    """The local worker's consumer of ``campaign-waves`` (messages from ``receive_message``)."""
    records = _records(messages)
    result = handle_wave_messages(records)
    _acknowledge(deps.campaign_waves_queue().url, records, result)
    return result


def received_send_messages(messages: list[dict[str, Any]]) -> Failures:
    """The local worker's consumer of ``campaign-sends`` (messages from ``receive_message``)."""
    records = _records(messages)
    result = handle_send_messages(records)
    _acknowledge(deps.campaign_sends_queue().url, records, result)
    return result


def plan_wave(campaign_id: str, wave: int) -> int:
    """Plan every shard of a started wave here and now, each to its end, without the waves queue (the
    benchmark's way to time a plan); the planner runs it took."""
    from chalicelib.campaigns.planner import PlanOutcome
    from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES

    runs = 0
    for shard in BACKFILL_SHARD_NAMES:
        while True:
            runs += 1
            if deps.wave_planner().plan_shard(campaign_id, wave, shard) is not PlanOutcome.CONTINUE:
                break
    return runs


def drain_sends(limit: int | None = None) -> int:
    """Receive and handle ``campaign-sends`` messages as the worker does until none is visible (or
    ``limit`` were handled): the benchmark's sender at the campaign's rate. Messages handled."""
    from chalicelib.core.aws import client

    sqs = client("sqs")
    url = deps.campaign_sends_queue().url
    handled = 0
    while limit is None or handled < limit:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not messages:
            break
        received_send_messages(messages)
        handled += len(messages)
    return handled
