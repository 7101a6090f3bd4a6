"""The outbox dispatcher against moto's DynamoDB and SQS: retries with backoff and jitter, dead letters,
redeliveries pushed once, and the sweeper pushing what a crash left behind."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.kernel.errors import BadRequest, Conflict, InvalidField, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.operators.dispatch import DispatchOutcome, list_records, message_body, retry_record
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.operators.domain.outbox import OutboxStatus, RetryPolicy
from chalicelib.operators.ports import PushQueue
from tests.integration.test_lifecycle import (
    World,
    answer,
    card_now,
    drain,
    import_cards,
    make_world,
    person,
    receive_all,
)


class Ceiling(random.Random):
    """Full jitter at its upper bound, so the test can see the ceilings grow."""

    def uniform(self, a: float, b: float) -> float:
        return b


class BrokenQueue(PushQueue):
    """The process dies (or SQS fails) right after the commit: nothing is enqueued."""

    def send_message(self, body: str, delay_seconds: int = 0) -> None:
        raise ConnectionError("process killed between commit and enqueue")

    def acknowledge(self, receipt_handles: Any) -> None:  # pragma: no cover - never called
        raise ConnectionError


def lambda_record(message: dict[str, Any]) -> dict[str, Any]:
    """A message as Lambda's SQS event source delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSource": "aws:sqs",
    }


def submit(world: World, seed: int) -> str:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=seed)
    outcome = world.lifecycle.submit_registration(card.iccid, person(seed), "owner:u1")
    assert outcome.record_id is not None
    return outcome.record_id


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


def test_operator_down_retries_with_growing_delays_then_dead_nothing_lost(aws: None) -> None:
    # Given an operator that is down, and a policy of five attempts
    world = make_world(RetryPolicy(base_seconds=2, cap_seconds=20, max_attempts=5), rng=Ceiling())
    world.operator.unavailable = 1000
    record_id = submit(world, 1)
    original = world.store.get(record_id)
    assert original is not None
    world.queue.sent.clear()
    # When the dispatcher tries, each time the retry falls due
    outcomes = []
    for _ in range(5):
        outcomes.append(world.dispatcher.dispatch(record_id))
        record = world.store.get(record_id)
        assert record is not None
        world.clock.now = record.next_attempt_at
    # Then it retried four times with growing delays (capped), each re-enqueued with its delay
    assert outcomes == [DispatchOutcome.RETRY] * 4 + [DispatchOutcome.DEAD]
    assert [delay for _, delay in world.queue.sent] == [2, 4, 8, 16]
    assert world.operator.calls == 5
    # And then it is dead: listed, copied to the dead-letter queue, its message intact, the card pending
    dead = world.store.get(record_id)
    assert dead is not None
    assert (dead.status, dead.attempts) == (OutboxStatus.DEAD, 5)
    assert dead.last_error is not None
    assert "503" in dead.last_error
    assert dead.message == original.message
    assert [s.record_id for s in list_records(world.store, "dead", 10, None).items] == [record_id]
    (letter,) = receive_all(world.dead_letters)
    assert json.loads(letter["Body"])["record_id"] == record_id
    assert card_now(dead.iccid).state is CardState.PENDING
    # When the operator is back and an admin retries it, it goes through
    world.operator.unavailable = 0
    revived = retry_record(world.store, world.queue, record_id, clock=world.clock)
    assert (revived.status, revived.attempts) == (OutboxStatus.PENDING, 0)
    assert drain(world) >= 1
    sent = world.store.get(record_id)
    assert sent is not None
    assert sent.status is OutboxStatus.SENT
    assert world.operator.received[record_id] == original.message


def test_full_jitter_delays_stay_within_their_ceiling(aws: None) -> None:
    world = make_world(RetryPolicy(base_seconds=1, cap_seconds=900, max_attempts=12), rng=random.Random(7))
    world.operator.unavailable = 1000
    record_id = submit(world, 2)
    world.queue.sent.clear()
    for attempt in range(1, 12):
        assert world.dispatcher.dispatch(record_id) is DispatchOutcome.RETRY
        record = world.store.get(record_id)
        assert record is not None
        _, delay = world.queue.sent[-1]
        assert 0 <= delay <= min(900, 2 ** (attempt - 1))
        assert (record.next_attempt_at - world.clock.now).total_seconds() == delay
        world.clock.now = record.next_attempt_at
    # And a dispatch before the retry is due does nothing
    world.clock.advance(-1000)
    assert world.dispatcher.dispatch(record_id) is DispatchOutcome.SKIPPED


def test_a_refused_request_is_dead_at_once(world: World) -> None:
    world.operator.refuse = True
    record_id = submit(world, 3)
    assert world.dispatcher.dispatch(record_id) is DispatchOutcome.DEAD
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.DEAD, 1)
    assert record.last_error is not None
    assert "signature.invalid" in record.last_error
    assert len(receive_all(world.dead_letters)) == 1


def test_a_redelivered_message_is_pushed_once(world: World) -> None:
    record_id = submit(world, 4)
    # Given SQS delivering the same message twice (its visibility timeout ran out)
    sqs = client("sqs")
    first = sqs.receive_message(QueueUrl=world.queue.url, VisibilityTimeout=0)["Messages"]
    second = sqs.receive_message(QueueUrl=world.queue.url, VisibilityTimeout=0)["Messages"]
    assert [m["MessageId"] for m in first] == [m["MessageId"] for m in second]
    # When both deliveries are handled
    one = world.dispatcher.handle_batch([lambda_record(m) for m in first])
    two = world.dispatcher.handle_batch([lambda_record(m) for m in second])
    # Then the operator got one push, and neither delivery is reported failed
    assert one == two == {"batchItemFailures": []}
    assert world.operator.calls == 1
    assert list(world.operator.received) == [record_id]


def test_a_redelivery_during_the_push_does_not_push_again(world: World) -> None:
    record_id = submit(world, 5)
    seen: list[DispatchOutcome] = []
    world.operator.during_push = lambda: seen.append(world.dispatcher.dispatch(record_id))
    assert world.dispatcher.dispatch(record_id) is DispatchOutcome.SENT
    assert seen == [DispatchOutcome.SKIPPED]
    assert world.operator.calls == 1


def test_a_crash_between_commit_and_enqueue_is_swept_and_pushed(world: World) -> None:
    # Given a registration committed by a process that died before enqueueing it
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=6)
    crashed = Lifecycle(
        deps.inventory_repo(), world.store, BrokenQueue(), policy=world.policy, clock=world.clock
    )
    outcome = crashed.submit_registration(card.iccid, person(6), "owner:u1")
    assert outcome.record_id is not None
    assert receive_all(world.queue) == []
    # When the sweeper runs within the grace period: nothing yet (a live enqueue may be on its way)
    assert world.dispatcher.sweep().enqueued == 0
    # When it runs after the grace period
    world.clock.advance(world.policy.sweep_grace_seconds + 1)
    report = world.dispatcher.sweep()
    # Then it enqueues the record, which is pushed, once
    assert report.enqueued == 1
    assert world.dispatcher.sweep().enqueued == 0  # re-armed: not enqueued again on the next run
    drain(world)
    assert list(world.operator.received) == [outcome.record_id]
    world.clock.advance(3600)
    assert world.dispatcher.sweep().enqueued == 0  # sent: no longer pending


def test_a_dispatcher_that_died_mid_push_is_covered_by_the_sweeper(world: World) -> None:
    record_id = submit(world, 7)
    receive_all(world.queue)  # the message was taken by the dispatcher that died
    now = world.clock()
    lease_until = now + timedelta(seconds=world.policy.lease_seconds)
    sweep_at = lease_until + timedelta(seconds=world.policy.sweep_grace_seconds)
    assert world.store.claim(record_id, now, lease_until, sweep_at) is not None  # its claim, never settled
    # While its lease runs, nobody else pushes it, and the sweeper leaves it alone
    world.clock.advance(world.policy.lease_seconds / 2)
    assert world.dispatcher.dispatch(record_id) is DispatchOutcome.SKIPPED
    assert world.dispatcher.sweep().enqueued == 0
    # Once the lease and the grace are over, the sweeper enqueues it and it is pushed
    world.clock.now = sweep_at + timedelta(seconds=1)
    assert world.dispatcher.sweep().enqueued == 1
    drain(world)
    assert list(world.operator.received) == [record_id]
    record = world.store.get(record_id)
    assert record is not None
    assert record.status is OutboxStatus.SENT


def test_only_failed_messages_are_reported_for_redelivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = submit(world, 8)
    broken = submit(world, 9)
    messages = receive_all(world.queue)
    records = [lambda_record(m) for m in messages]
    records.append({"messageId": "m-bad", "receiptHandle": "h", "body": "not json"})
    real_claim = world.store.claim

    def claim(record_id: str, *args: Any) -> Any:
        if record_id == broken:
            raise ConnectionError("DynamoDB unreachable")
        return real_claim(record_id, *args)

    monkeypatch.setattr(world.store, "claim", claim)
    result = world.dispatcher.handle_batch(records)
    by_record = {json.loads(m["Body"])["record_id"]: m["MessageId"] for m in messages}
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        [by_record[broken], "m-bad"]
    )
    assert list(world.operator.received) == [good]


def test_the_local_worker_path_deletes_handled_messages(world: World) -> None:
    submit(world, 10)
    submit(world, 11)
    assert drain(world) == 2
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=world.queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_dead_records_are_listed_a_page_at_a_time(world: World) -> None:
    world.operator.refuse = True
    ids = {submit(world, 20 + i) for i in range(5)}
    for record_id in ids:
        world.dispatcher.dispatch(record_id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = list_records(world.store, "dead", 2, cursor)
        assert len(page.items) <= 2
        seen += [s.record_id for s in page.items]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert pages >= 3
    assert list_records(world.store, "pending", 10, None).items == []
    assert world.store.count(OutboxStatus.DEAD) == 5
    with pytest.raises(InvalidField):
        list_records(world.store, "accepted", 10, None)
    with pytest.raises(BadRequest):
        list_records(world.store, "dead", 10, "garbage!")


def test_admin_retry_refuses_what_is_not_dead(world: World) -> None:
    record_id = submit(world, 30)
    with pytest.raises(Conflict) as info:
        retry_record(world.store, world.queue, record_id)
    assert info.value.code == "outbox.not_dead"
    with pytest.raises(NotFound):
        retry_record(world.store, world.queue, "0" * 32)
    with pytest.raises(InvalidField):
        retry_record(world.store, world.queue, "../etc")


def test_accepted_before_marked_sent_is_not_overwritten(world: World) -> None:
    # The operator may answer before the dispatcher records the receipt: the answer wins.
    (card,) = import_cards(Operator.CHINA_TELECOM, 1, seed=40)
    outcome = world.lifecycle.submit_registration(card.iccid, person(40), "owner:u1")
    assert outcome.record_id is not None
    record_id = outcome.record_id
    world.operator.during_push = lambda: world.lifecycle.apply_callback(
        answer(record_id, card, CallbackOutcome.ACCEPTED)
    )
    assert world.dispatcher.dispatch(record_id) is DispatchOutcome.SENT
    record = world.store.get(record_id)
    assert record is not None
    assert record.status is OutboxStatus.ACCEPTED
    assert record.kind is PushKind.REGISTER
    assert card_now(card.iccid).state is CardState.REGISTERED
    assert message_body(record_id) == json.dumps({"record_id": record_id})
