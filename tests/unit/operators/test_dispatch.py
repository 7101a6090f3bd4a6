"""The outbox dispatcher over the fakes: push, retry with backoff, dead letters, sweep."""

from __future__ import annotations

import random

from chalicelib.operators.dispatch import Dispatcher, DispatchOutcome
from chalicelib.operators.domain.outbox import OutboxStatus, RetryPolicy
from tests.fakes.operators import FakeOperatorGateway, FakePushQueue
from tests.unit.cards.world import World, holder

POLICY = RetryPolicy(base_seconds=2, cap_seconds=60, max_attempts=3)


def setup() -> tuple[World, FakeOperatorGateway, FakePushQueue, Dispatcher, str]:
    """A pending registration push, and a dispatcher over the same store."""
    world = World()
    (card,) = world.vehicle(1)
    record_id = world.lifecycle.submit_registration(card.iccid, holder(1), "owner").record_id
    assert record_id is not None
    gateway, dead = FakeOperatorGateway(), FakePushQueue()
    dispatcher = Dispatcher(
        world.store,
        gateway,
        world.queue,
        dead_letters=dead,
        policy=POLICY,
        clock=world.clock,
        rng=random.Random(1),
    )
    return world, gateway, dead, dispatcher, record_id


def test_a_due_record_is_pushed_once_and_marked_sent() -> None:
    # given a pending push
    world, gateway, _, dispatcher, record_id = setup()
    # when it is dispatched twice (a message delivered twice)
    first = dispatcher.dispatch(record_id)
    second = dispatcher.dispatch(record_id)
    # then it was pushed once and is sent with the operator's reference
    assert (first, second) == (DispatchOutcome.SENT, DispatchOutcome.SKIPPED)
    assert [m.message_id for m in gateway.pushed] == [record_id]
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.operator_ref) == (
        OutboxStatus.SENT,
        f"ref-{record_id}",
    )


def test_an_unavailable_operator_means_a_retry_with_backoff() -> None:
    # given an operator that is down
    world, gateway, _, dispatcher, record_id = setup()
    gateway.be_unavailable()
    sent_before = len(world.queue.sent)
    # when the record is dispatched
    outcome = dispatcher.dispatch(record_id)
    # then it stays pending, due later within the backoff ceiling, and is re-queued with that delay
    assert outcome is DispatchOutcome.RETRY
    record = world.store.get(record_id)
    assert record is not None
    assert record.status is OutboxStatus.PENDING
    assert record.attempts == 1
    _body, delay = world.queue.sent[sent_before]
    assert 0 <= delay <= POLICY.ceiling(1)
    assert (record.next_attempt_at - world.clock()).total_seconds() == delay
    # and once due, with the operator back, it is sent
    world.clock.advance(seconds=delay)
    gateway.recover()
    assert dispatcher.dispatch(record_id) is DispatchOutcome.SENT


def test_a_refusal_is_dead_at_once_and_copied_to_the_dead_letters() -> None:
    world, gateway, dead, dispatcher, record_id = setup()
    gateway.refuse("bad_signature", "no")
    assert dispatcher.dispatch(record_id) is DispatchOutcome.DEAD
    record = world.store.get(record_id)
    assert record is not None
    assert record.status is OutboxStatus.DEAD
    assert record.last_error is not None
    assert "bad_signature" in record.last_error
    assert dead.record_ids() == [record_id]


def test_a_record_is_dead_after_its_attempts_are_spent() -> None:
    # given an operator that stays down
    world, gateway, dead, dispatcher, record_id = setup()
    gateway.be_unavailable()
    outcomes = []
    # when the record is tried as often as the policy allows
    for _ in range(POLICY.max_attempts):
        outcomes.append(dispatcher.dispatch(record_id))
        world.clock.advance(seconds=POLICY.cap_seconds)
    # then the last attempt makes it dead
    assert outcomes == [DispatchOutcome.RETRY, DispatchOutcome.RETRY, DispatchOutcome.DEAD]
    assert dead.record_ids() == [record_id]
    assert gateway.attempts == POLICY.max_attempts


def test_a_push_made_moot_by_a_later_change_is_superseded_not_sent() -> None:
    # given a pending registration, then the vehicle scrapped before it was pushed
    world, gateway, _, dispatcher, record_id = setup()
    record = world.store.get(record_id)
    assert record is not None
    world.lifecycle.scrap(world.card(record.iccid).vin, "admin")
    # when the registration push is dispatched
    outcome = dispatcher.dispatch(record_id)
    # then it is superseded and never reaches the operator
    assert outcome is DispatchOutcome.SUPERSEDED
    assert gateway.pushed == []


def test_the_sweep_enqueues_records_nobody_pushed_in_time_once() -> None:
    # given a committed record whose queue message was lost
    world, _, _, dispatcher, record_id = setup()
    world.queue.sent.clear()
    # when the sweep runs before and after its grace period, twice
    early = dispatcher.sweep()
    world.clock.advance(seconds=POLICY.sweep_grace_seconds)
    late = dispatcher.sweep()
    again = dispatcher.sweep()
    # then it is enqueued once, after the grace period
    assert (early.enqueued, late.enqueued, again.enqueued) == (0, 1, 0)
    assert world.queue.record_ids() == [record_id]


def test_a_push_to_an_unconfigured_operator_waits_without_spending_attempts() -> None:
    # given a stage without this operator's URL, and a policy of three attempts
    world, gateway, dead, dispatcher, record_id = setup()
    gateway.be_unconfigured("url")
    sent_before = len(world.queue.sent)
    # when it is tried more often than the attempts allow, each time the sweep brings it back
    outcomes = []
    for _ in range(POLICY.max_attempts + 2):
        outcomes.append(dispatcher.dispatch(record_id))
        world.clock.advance(seconds=POLICY.unconfigured_wait_seconds)
        dispatcher.sweep()
    # then it waited every time: pending, no attempt spent, its reason kept, never dead-lettered
    assert outcomes == [DispatchOutcome.WAITING] * (POLICY.max_attempts + 2)
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.PENDING, 0)
    assert record.last_error is not None
    assert "operator not configured" in record.last_error
    assert dead.sent == []
    # and only the sweep re-queued it (a waiting push sends no message of its own)
    assert len(world.queue.sent) - sent_before == POLICY.max_attempts + 2
    # when the operator is configured, the next dispatch sends it on its first attempt
    gateway.recover()
    assert dispatcher.dispatch(record_id) is DispatchOutcome.SENT
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.SENT, 1)
