"""Submitting registrations and de-registering, over the fakes."""

from __future__ import annotations

import pytest

from chalicelib.cards.domain.inventory import CardFunction, CardState
from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT, HolderKind
from chalicelib.kernel.errors import Conflict
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.operators.domain.outbox import OutboxStatus
from tests.unit.cards.world import MOBILE, UNICOM, World, holder


def test_a_submission_is_one_transaction_with_its_outbox_records() -> None:
    # given a vehicle with two cards
    world = World()
    cards = world.vehicle(1, cards=2)
    # when both are submitted for one person
    outcomes = world.lifecycle.submit_registrations([c.iccid for c in cards], holder(1), "owner")
    # then one commit moved both to pending, each with a pending push record, and the dispatcher was woken
    assert len(world.store.commits) == 1
    assert [o.state for o in outcomes] == [CardState.PENDING, CardState.PENDING]
    records = [world.store.get(o.record_id or "") for o in outcomes]
    assert [r.status if r else None for r in records] == [OutboxStatus.PENDING, OutboxStatus.PENDING]
    assert world.queue.record_ids() == [o.record_id for o in outcomes]
    assert world.store.cards_per_id("hash-1", MOBILE) == 2
    life = world.store.lifecycle(cards[0].iccid)
    assert (life.awaiting, life.holder_id_hash) == (True, "hash-1")


def test_the_eleventh_card_of_one_id_with_one_operator_is_refused() -> None:
    # given a person holding the limit of cards with one operator
    world = World()
    for n in range(CARDS_PER_ID_LIMIT):
        (card,) = world.vehicle(n)
        world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    (eleventh,) = world.vehicle(99)
    # when the eleventh is submitted
    with pytest.raises(Conflict) as refused:
        world.lifecycle.submit_registration(eleventh.iccid, holder(1), "owner")
    # then it is refused with the limit code, and the card and the count are unchanged
    assert refused.value.code == "registration.cards_per_id_exceeded"
    assert world.card(eleventh.iccid).state is CardState.UNREGISTERED
    assert world.store.cards_per_id("hash-1", MOBILE) == CARDS_PER_ID_LIMIT


def test_the_limit_counts_per_operator_and_not_for_companies() -> None:
    # given a person at the limit with one operator
    world = World()
    for n in range(CARDS_PER_ID_LIMIT):
        (card,) = world.vehicle(n)
        world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    (other,) = world.vehicle(50, operator=UNICOM)
    (fleet,) = world.vehicle(51)
    # when a card of another operator, and a company's card, are submitted
    world.lifecycle.submit_registration(other.iccid, holder(1), "owner")
    world.lifecycle.submit_registration(fleet.iccid, holder(2, HolderKind.ENTERPRISE), "owner")
    # then both pass; the company is not counted
    assert world.store.cards_per_id("hash-1", UNICOM) == 1
    assert world.store.cards_per_id("hash-2", MOBILE) == 0


def test_two_cards_that_would_cross_the_limit_are_both_refused() -> None:
    # given a person one card short of the limit
    world = World()
    for n in range(CARDS_PER_ID_LIMIT - 1):
        (card,) = world.vehicle(n)
        world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    pair = world.vehicle(70, cards=2)
    # when a vehicle with two cards is submitted
    with pytest.raises(Conflict):
        world.lifecycle.submit_registrations([c.iccid for c in pair], holder(1), "owner")
    # then neither card moved
    assert [world.card(c.iccid).state for c in pair] == [CardState.UNREGISTERED] * 2


def test_a_pending_card_cannot_be_submitted_again() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    with pytest.raises(Conflict) as refused:
        world.lifecycle.submit_registration(card.iccid, holder(2), "owner")
    assert refused.value.code == "registration.pending"


def test_deregistering_pushes_it_and_the_card_stays_registered_until_the_operator_accepts() -> None:
    # given a registered card
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    # when its owner de-registers it
    outcome = world.lifecycle.deregister(card.iccid, "owner", "实名注销")
    # then the de-registration is pushed, and the card stays registered (and counted) meanwhile
    assert outcome.state is CardState.REGISTERED
    assert outcome.events == ["deregistration_requested"]
    record = world.store.get(outcome.record_id or "")
    assert record is not None
    assert record.message.previous_holder_id_hash == "hash-1"
    assert world.store.cards_per_id("hash-1", MOBILE) == 1
    # and once the operator accepts, it is back to emergency only and the ID slot is free
    world.lifecycle.apply_callback(world.answer(card.iccid))
    now = world.card(card.iccid)
    assert (now.state, now.holder_id, now.functions) == (
        CardState.UNREGISTERED,
        None,
        [CardFunction.EMERGENCY],
    )
    assert world.store.cards_per_id("hash-1", MOBILE) == 0


def test_a_refused_deregistration_leaves_the_card_registered_with_the_reason() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    before = world.card(card.iccid)
    world.lifecycle.deregister(card.iccid, "owner", "实名注销")
    world.lifecycle.apply_callback(world.answer(card.iccid, CallbackOutcome.REJECTED, reason_code="debt"))
    now = world.card(card.iccid)
    assert (now.state, now.holder_id, now.functions) == (
        CardState.REGISTERED,
        before.holder_id,
        before.functions,
    )
    life = world.store.lifecycle(card.iccid)
    assert (life.awaiting, life.reason_code, life.reason_zh) == (False, "debt", "一证多卡超限")
    assert world.store.cards_per_id("hash-1", MOBILE) == 1
    # and it can be de-registered again
    assert world.lifecycle.deregister(card.iccid, "owner", "实名注销").record_id is not None


def test_a_card_being_deregistered_cannot_be_submitted_or_deregistered_until_the_operator_answers() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    world.lifecycle.deregister(card.iccid, "owner", "实名注销")
    with pytest.raises(Conflict) as refused:
        world.lifecycle.submit_registration(card.iccid, holder(2), "owner")
    assert refused.value.code == "registration.already_registered"
    with pytest.raises(Conflict) as again:
        world.lifecycle.deregister(card.iccid, "owner", "实名注销")
    assert again.value.code == "deregistration.in_progress"


def test_an_unregistered_card_cannot_be_deregistered() -> None:
    world = World()
    (card,) = world.vehicle(1)
    with pytest.raises(Conflict) as refused:
        world.lifecycle.deregister(card.iccid, "owner", "实名注销")
    assert refused.value.code == "card.illegal_transition"


def test_a_committed_submission_survives_a_broken_queue() -> None:
    # given a queue that cannot be reached
    world = World()
    world.queue.broken = True
    (card,) = world.vehicle(1)
    # when a card is submitted
    outcome = world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    # then the record is committed (the sweeper will push it)
    assert world.store.get(outcome.record_id or "") is not None
    assert world.card(card.iccid).state is CardState.PENDING
