"""The operator's answers applied to the card, over the fakes."""

from __future__ import annotations

from chalicelib.cards.domain.inventory import CardFunction, CardState
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.operators.domain.outbox import CallbackNote, OutboxStatus
from tests.unit.cards.world import MOBILE, World, holder


def test_an_acceptance_registers_the_card_with_the_functions_opened() -> None:
    # given a pending card
    world = World()
    (card,) = world.vehicle(1)
    outcome = world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    # when the operator accepts it, opening emergency and telematics only
    opened = [CardFunction.EMERGENCY, CardFunction.TELEMATICS]
    result = world.lifecycle.apply_callback(world.answer(card.iccid, functions=opened))
    # then the card is registered with those functions and the record is accepted
    assert (result.note, result.state) == (CallbackNote.APPLIED, CardState.REGISTERED)
    assert world.card(card.iccid).functions == opened
    record = world.store.get(outcome.record_id or "")
    assert record is not None
    assert record.status is OutboxStatus.ACCEPTED
    assert not world.store.lifecycle(card.iccid).awaiting


def test_a_refusal_keeps_its_reason_and_frees_the_slot() -> None:
    # given a pending card
    world = World()
    (card,) = world.vehicle(1)
    outcome = world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    # when the operator refuses it with a reason
    refusal = world.answer(card.iccid, CallbackOutcome.REJECTED, reason_code="cards_per_id_exceeded")
    result = world.lifecycle.apply_callback(refusal)
    # then the card is back to unregistered, the user sees the reason, the ID slot is free
    assert result.state is CardState.UNREGISTERED
    status = world.lifecycle.status(card.iccid)
    assert status.last_refusal is not None
    assert status.last_refusal.code == "cards_per_id_exceeded"
    assert world.store.cards_per_id("hash-1", MOBILE) == 0
    record = world.store.get(outcome.record_id or "")
    assert record is not None
    assert record.status is OutboxStatus.REJECTED
    assert record.reason is not None
    assert "cards_per_id_exceeded" in record.reason


def test_a_duplicate_callback_changes_nothing() -> None:
    # given an accepted card
    world = World()
    (card,) = world.vehicle(1)
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    answer = world.answer(card.iccid)
    world.lifecycle.apply_callback(answer)
    version = world.card(card.iccid).version
    # when the same callback comes again
    result = world.lifecycle.apply_callback(answer)
    # then it is noted a duplicate and the card is unchanged
    assert result.note is CallbackNote.DUPLICATE
    assert world.card(card.iccid).version == version


def test_a_second_answer_to_a_decided_push_is_already_decided() -> None:
    # given an accepted card
    world = World()
    (card,) = world.vehicle(1)
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    world.lifecycle.apply_callback(world.answer(card.iccid))
    # when a refusal of the same push arrives afterwards (out of order)
    late = world.answer(card.iccid, CallbackOutcome.REJECTED, callback_id="cb-late")
    result = world.lifecycle.apply_callback(late)
    # then it changes nothing
    assert result.note is CallbackNote.ALREADY_DECIDED
    assert world.card(card.iccid).state is CardState.REGISTERED


def test_an_answer_to_an_older_push_is_stale_but_settles_its_record() -> None:
    # given a card whose first registration was refused and which was submitted again
    world = World()
    (card,) = world.vehicle(1)
    first = world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    world.lifecycle.apply_callback(world.answer(card.iccid, CallbackOutcome.REJECTED))
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    # when another answer to the first push arrives
    stale = world.answer_to(first.record_id or "", card.iccid, callback_id="cb-old")
    result = world.lifecycle.apply_callback(stale)
    # then the card keeps waiting for its current push
    assert result.note is CallbackNote.STALE
    assert world.card(card.iccid).state is CardState.PENDING
    assert world.store.lifecycle(card.iccid).awaiting


def test_an_answer_naming_no_known_push_is_unknown() -> None:
    world = World()
    (card,) = world.vehicle(1)
    result = world.lifecycle.apply_callback(world.answer_to("f" * 32, card.iccid))
    assert result.note is CallbackNote.UNKNOWN
    assert world.card(card.iccid).state is CardState.UNREGISTERED


def test_a_spot_check_is_written_to_the_history_only() -> None:
    # given a registered card
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    # when the operator asks for a spot check
    check = world.answer(card.iccid, CallbackOutcome.SPOT_CHECK, callback_id="cb-check")
    result = world.lifecycle.apply_callback(check)
    # then it is recorded in the history and the registration is unchanged
    assert (result.note, result.state) == (CallbackNote.RECORDED, CardState.REGISTERED)
    assert world.inventory.history(card.iccid)[-1].event == "spot_check"
