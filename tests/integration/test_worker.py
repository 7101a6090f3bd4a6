"""The local worker drains its queues: a backlog is handled receive after receive, and it sleeps only
when a round finds nothing to do."""

from __future__ import annotations

import json
import threading
from typing import Any

from chalicelib.core.aws import client
from chalicelib.local.worker import Consumer, Schedule, run_forever

QUEUE = "worker-drain-test"


def test_a_backlog_is_drained_without_sleeping_between_batches(aws: None) -> None:
    # Given 45 messages waiting in a queue (five receives' worth), and a worker whose sleep is counted
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    for start in range(0, 45, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": i})} for i in range(start, min(start + 10, 45))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    handled: list[int] = []
    batches: list[int] = []
    sleeps: list[float] = []
    ticks: list[int] = []
    stop = threading.Event()

    def handle(messages: list[dict[str, Any]]) -> None:
        batches.append(len(messages))
        handled.extend(json.loads(m["Body"])["n"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        stop.set()  # the first idle round ends the test

    # When the worker runs
    run_forever(
        2.5,
        schedules=[Schedule("tick", 3600.0, lambda: ticks.append(1))],
        consumers=[Consumer(QUEUE, handle)],
        stop=stop,
        sleep=sleep,
    )
    # Then every message was handled, in full batches, with one sleep: when the queue was empty
    assert sorted(handled) == list(range(45))
    assert sum(batches) == 45
    assert len(batches) >= 5
    assert sleeps == [2.5]
    # And its schedule ran once (it is not due again within the hour)
    assert ticks == [1]


def test_an_idle_worker_sleeps_every_round(aws: None) -> None:
    sqs = client("sqs")
    sqs.create_queue(QueueName=QUEUE)
    sleeps: list[float] = []
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            stop.set()

    run_forever(1.0, schedules=[], consumers=[Consumer(QUEUE, lambda messages: None)], stop=stop, sleep=sleep)
    assert sleeps == [1.0, 1.0, 1.0]
