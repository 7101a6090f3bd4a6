"""Transfer, scrap and part replacement, over the fakes."""

from __future__ import annotations

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import PushKind, Retirement
from chalicelib.kernel.errors import Conflict, InvalidField, NotFound
from chalicelib.operators.domain.messages import CallbackOutcome
from tests.unit.cards.world import MOBILE, World, holder


def test_a_transfer_takes_effect_when_the_operator_accepts_it() -> None:
    # given a card registered to one person
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    # when it is transferred to another
    outcome = world.lifecycle.transfer(card.iccid, holder(2), "admin")
    # then it stays the old holder's, with both counted, until the operator accepts
    assert world.card(card.iccid).holder_id == "party-1"
    assert world.store.cards_per_id("hash-2", MOBILE) == 1
    record = world.store.get(outcome.record_id or "")
    assert record is not None
    assert record.kind is PushKind.TRANSFER
    world.lifecycle.apply_callback(world.answer(card.iccid))
    assert world.card(card.iccid).holder_id == "party-2"
    assert world.store.cards_per_id("hash-1", MOBILE) == 0
    assert world.store.lifecycle(card.iccid).holder_id_hash == "hash-2"


def test_a_refused_transfer_leaves_the_old_holder() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    world.lifecycle.transfer(card.iccid, holder(2), "admin")
    world.lifecycle.apply_callback(world.answer(card.iccid, CallbackOutcome.REJECTED, callback_id="cb-no"))
    assert world.card(card.iccid).holder_id == "party-1"
    assert world.store.cards_per_id("hash-2", MOBILE) == 0
    assert world.store.cards_per_id("hash-1", MOBILE) == 1


def test_a_transfer_to_the_same_holder_or_of_an_unregistered_card_is_refused() -> None:
    world = World()
    (card, spare) = world.vehicle(1, cards=2)
    world.registered(card.iccid, holder(1))
    with pytest.raises(InvalidField):
        world.lifecycle.transfer(card.iccid, holder(1), "admin")
    with pytest.raises(Conflict) as refused:
        world.lifecycle.transfer(spare.iccid, holder(2), "admin")
    assert refused.value.code == "card.not_registered"


def test_scrap_retires_every_card_and_pushes_the_registered_ones() -> None:
    # given a vehicle with one registered and one unregistered card
    world = World()
    (registered, idle) = world.vehicle(1, cards=2)
    world.registered(registered.iccid, holder(1))
    # when the vehicle is scrapped
    result = world.lifecycle.scrap(registered.vin, "admin")
    # then both are retired; only the registered one is pushed; the slot is free
    by_iccid = {c.iccid: c for c in result.cards}
    assert {c.retired for c in result.cards} == {Retirement.SCRAPPED}
    assert by_iccid[registered.iccid].record_id is not None
    assert by_iccid[idle.iccid].record_id is None
    assert world.store.cards_per_id("hash-1", MOBILE) == 0
    # and a second run finds them already retired, and they cannot be registered again
    assert world.lifecycle.scrap(registered.vin, "admin").already_retired == sorted(
        [registered.iccid, idle.iccid]
    )
    with pytest.raises(Conflict) as refused:
        world.lifecycle.submit_registration(idle.iccid, holder(2), "owner")
    assert refused.value.code == "card.scrapped"


def test_a_swap_retires_the_old_card_and_fits_the_new_one_in_one_transaction() -> None:
    # given a vehicle with a registered card, and a spare card on another vehicle
    world = World()
    (old,) = world.vehicle(1)
    (new,) = world.vehicle(2)
    world.registered(old.iccid, holder(1))
    commits = len(world.store.commits)
    # when the part is replaced
    result = world.lifecycle.swap(old.vin, old.iccid, new.iccid, "admin")
    # then one commit retired the old card (pushed) and moved the new one onto the vehicle
    assert len(world.store.commits) == commits + 1
    assert result.old.retired is Retirement.SWAPPED_OUT
    assert result.old.record_id is not None
    assert (world.card(new.iccid).vin, world.card(new.iccid).state) == (old.vin, CardState.UNREGISTERED)


def test_a_swap_to_an_unknown_card_is_not_found() -> None:
    world = World()
    (old,) = world.vehicle(1)
    with pytest.raises(NotFound) as missing:
        world.lifecycle.swap(old.vin, old.iccid, "89860000000000000000", "admin")
    assert (missing.value.code, missing.value.field) == ("card.not_found", "new_iccid")
