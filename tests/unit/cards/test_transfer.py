"""过户 over the fakes: every card of a vehicle in one transaction, the reason of a correction kept in
the history, the seller's service end readable from the ``transferred`` entry (retention, 第十八条), and
a transfer the OEM opens for a dealer (the buyer's phone becomes the sales contact)."""

from __future__ import annotations

import pytest

from chalicelib.cards.domain.inventory import CardEvent, CardState
from chalicelib.cards.domain.lifecycle import LifecycleEvent, transferred_from, transferred_reason
from chalicelib.kernel.errors import Conflict
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.registration.domain.registrations import (
    Possession,
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
)
from chalicelib.registration.domain.submission import card_outcome, holder_events, was_pushed
from tests.unit.cards.world import MOBILE, World, holder


def test_the_transferred_reason_names_the_old_party_and_reads_back() -> None:
    reason = transferred_reason("party-7", "party-9")
    assert transferred_from(reason) == "party-7"
    assert transferred_from(transferred_reason(None, "party-9")) is None
    assert transferred_from("to party x") is None
    assert transferred_from(None) is None


def test_every_card_of_a_vehicle_is_transferred_in_one_push_each_and_the_seller_end_is_recorded() -> None:
    # given a vehicle whose two cards are registered to the seller
    world = World()
    cards = world.vehicle(1, cards=2)
    for card in cards:
        world.registered(card.iccid, holder(1))
    # when the buyer's transfer is pushed for both, with why
    outcomes = world.lifecycle.transfer_cards([c.iccid for c in cards], holder(2), "owner-b", "buyer's")
    # then both stay the seller's, the buyer counted for both, each with its own transfer push
    assert [o.events for o in outcomes] == [["transfer_requested"], ["transfer_requested"]]
    assert len({o.record_id for o in outcomes}) == 2
    assert world.store.cards_per_id("hash-2", MOBILE) == 2
    requested = world.inventory.history(cards[0].iccid)[-1]
    assert requested.reason == "to party party-2; buyer's"
    # when the operator accepts both
    for card in cards:
        world.clock.advance(seconds=5)
        world.lifecycle.apply_callback(world.answer(card.iccid))
    # then both are the buyer's; the seller's end is the ``transferred`` entry: when, and whose
    for card in cards:
        assert world.card(card.iccid).holder_id == "party-2"
        ended = world.inventory.history(card.iccid)[-1]
        assert ended.event == LifecycleEvent.TRANSFERRED
        assert transferred_from(ended.reason) == "party-1"
    assert world.store.cards_per_id("hash-1", MOBILE) == 0


def test_a_transfer_refused_for_one_card_pushes_none() -> None:
    world = World()
    (registered, idle) = world.vehicle(1, cards=2)
    world.registered(registered.iccid, holder(1))
    with pytest.raises(Conflict) as refused:
        world.lifecycle.transfer_cards([registered.iccid, idle.iccid], holder(2), "owner-b")
    assert refused.value.code == "card.not_registered"
    assert world.store.lifecycle(registered.iccid).awaiting is False
    assert world.store.cards_per_id("hash-2", MOBILE) == 0
    assert world.inventory.history(registered.iccid)[-1].event == "registration_accepted"


def test_the_oem_opens_a_transfer_only_of_a_registered_vehicle_with_nothing_pending() -> None:
    world = World()
    (card,) = world.vehicle(1)
    # an unregistered vehicle: nothing to transfer
    with pytest.raises(Conflict) as refused:
        world.lifecycle.open_transfer(card.vin, "phone-hash-b", "D-1", "admin-1")
    assert refused.value.code == "transfer.not_transferable"
    # a registration still with the operator: not transferable either
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    with pytest.raises(Conflict):
        world.lifecycle.open_transfer(card.vin, "phone-hash-b", "D-1", "admin-1")
    world.lifecycle.apply_callback(world.answer(card.iccid))
    # registered: the buyer's phone becomes the sales contact, the history notes who and for which dealer
    opened = world.lifecycle.open_transfer(card.vin, "phone-hash-b", "D-1", "admin-1")
    assert opened.cards[0].events == ["transfer_opened"]
    vehicle = world.inventory.get_vehicle(card.vin)
    assert vehicle is not None
    assert vehicle.owner_phone_hash == "phone-hash-b"
    noted = world.inventory.history(card.iccid)[-1]
    assert (noted.event, noted.actor, noted.to_state) == ("transfer_opened", "admin-1", CardState.REGISTERED)
    assert "D-1" in (noted.reason or "")
    assert world.card(card.iccid).holder_id == "party-1"


def _reg(party_id: str, submitted: CardEvent, *, transfer: bool = False) -> Registration:
    at = submitted.at
    return Registration(
        registration_id="r1",
        owner="o",
        kind=RegistrationKind.REGISTRATION,
        vin="V",
        iccids=[submitted.iccid],
        status=RegistrationStatus.SUBMITTED,
        version=1,
        party_id=party_id,
        possession=Possession(transfer=transfer),
        submitted_at=at,
        created_at=at,
        updated_at=at,
    )


def test_a_transfer_reads_as_the_buyers_registration_and_ends_the_sellers_holding() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.clock.advance(seconds=60)
    world.registered(card.iccid, holder(1))
    world.clock.advance(seconds=60)
    world.lifecycle.transfer(card.iccid, holder(2), "owner-b")
    history = world.inventory.history(card.iccid)
    seller = _reg("party-1", history[1])
    buyer = _reg("party-2", history[-1], transfer=True)
    # pushed, and pending until the operator answers
    assert was_pushed(buyer, {card.iccid: history})
    assert card_outcome(RegistrationKind.REGISTRATION, holder_events(history, buyer)).step is Step.PENDING
    world.lifecycle.apply_callback(world.answer(card.iccid))
    history = world.inventory.history(card.iccid)
    # the buyer's registration is registered; the seller's history ends at the transfer
    assert card_outcome(RegistrationKind.REGISTRATION, holder_events(history, buyer)).step is Step.REGISTERED
    assert holder_events(history, seller)[-1].event == "transferred"
    assert card_outcome(RegistrationKind.REGISTRATION, holder_events(history, seller)).step is Step.REGISTERED


def test_a_refused_transfer_reads_as_the_buyers_refusal_with_its_reason() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.registered(card.iccid, holder(1))
    world.clock.advance(seconds=60)
    world.lifecycle.transfer(card.iccid, holder(2), "owner-b")
    buyer = _reg("party-2", world.inventory.history(card.iccid)[-1], transfer=True)
    answer = world.answer(card.iccid, CallbackOutcome.REJECTED, reason_code="limit")
    world.lifecycle.apply_callback(answer)
    outcome = card_outcome(
        RegistrationKind.REGISTRATION, holder_events(world.inventory.history(card.iccid), buyer)
    )
    assert outcome.step is Step.REJECTED
    assert "一证多卡超限" in (outcome.reason_zh or "")
