"""Entry points of the fleet tasks queue: the ``run_fleet_tasks`` Lambda (event source mapping with
``ReportBatchItemFailures``, in infra) and the local worker's consumer, both through
``chalicelib.fleet.tasks.handle_records`` with the stage's workflow."""

from __future__ import annotations

from typing import Any

from chalicelib.core import deps


def dispatch_fleet_tasks(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The Lambda's handler: an SQS batch, failed messages reported for redelivery."""
    from chalicelib.fleet.tasks import handle_records

    return handle_records(list(event.get("Records", [])), deps.workflow())


def fleet_tasks_queue_name() -> str:
    from chalicelib.core.resources import FLEET_TASKS_QUEUE_ID, declare
    from chalicelib.core.settings import get_settings

    return declare(get_settings()).queue(FLEET_TASKS_QUEUE_ID).name


def handle_received(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Messages from ``receive_message`` (the local worker): handled as a Lambda batch, then the handled
    ones deleted, as the event source mapping does; the failed ones come back after their visibility."""
    from chalicelib.core.aws import client

    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
        for m in messages
    ]
    result = dispatch_fleet_tasks({"Records": records}, None)
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    done = [r for r in records if r["messageId"] not in failed]
    if done:
        sqs = client("sqs")
        url = sqs.get_queue_url(QueueName=fleet_tasks_queue_name())["QueueUrl"]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
        )
    return result
