"""更换零部件 in the owner's flow (a retired card is never offered, pushed or shown) and a
de-registration that is done only when the operator says so (its refusal shown and told)."""

from __future__ import annotations

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.sms.domain import SmsPurpose
from tests.unit.registration.world import ME, World

DEREG = RegistrationKind.DEREGISTRATION


@pytest.fixture
def world() -> World:
    world = World()
    world.clock.advance(minutes=1)  # every step after the import, as it is in life
    return world


def swap_in_spare(world: World) -> tuple[str, str]:
    """The card of vehicle 0 replaced by vehicle 2's card (a spare part); (old, new) ICCIDs."""
    old = world.cards(world.vins[0])[0].iccid
    new = world.cards(world.vins[2])[0].iccid
    world.lifecycle.swap(world.vins[0], old, new, "admin:a1")
    world.clock.advance(minutes=1)
    return old, new


def deregistration_submitted(world: World) -> str:
    view, _ = world.service.start(ME, DEREG, world.vins[0])
    flow_id = world.verify_phone(view.registration_id, purpose=SmsPurpose.DEREGISTRATION)
    world.verify_person(flow_id)
    world.service.submit(view.registration_id, ME)
    return view.registration_id


def test_after_a_swap_the_owner_registers_the_new_card_never_the_retired_one(world: World) -> None:
    old, new = swap_in_spare(world)
    reg_id = world.ready_to_submit(world.vins[0])
    done = world.service.submit(reg_id, ME)
    assert done.step is Step.PENDING
    pushed = [r.iccid for r in world.outbox.records.values()]
    assert pushed == [new]
    world.operator_answers(new, CallbackOutcome.ACCEPTED)
    assert world.inventory.get_card(new).state is CardState.REGISTERED  # type: ignore[union-attr]
    assert world.inventory.get_card(old).state is CardState.UNREGISTERED  # type: ignore[union-attr]
    vehicles = world.service.my_vehicles(ME).vehicles
    assert [(v.step, len(v.cards), v.cards[0].state) for v in vehicles] == [
        (Step.REGISTERED, 1, CardState.REGISTERED)
    ]
    assert vehicles[0].cards[0].iccid_masked.endswith(new[-4:])


def test_a_swap_after_possession_was_shown_pushes_the_fitted_card(world: World) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    _, new = swap_in_spare(world)
    world.service.submit(reg_id, ME)
    assert [r.iccid for r in world.outbox.records.values()] == [new]


def test_a_swapped_out_registered_card_leaves_my_vehicles(world: World) -> None:
    world.registered(world.vins[0])
    swap_in_spare(world)
    assert world.service.my_vehicles(ME).vehicles == []


def test_a_deregistration_waits_for_the_operator_and_my_vehicles_shows_it(world: World) -> None:
    world.registered(world.vins[0])
    world.clock.advance(minutes=1)
    dereg_id = deregistration_submitted(world)
    sent = len(world.sms.sent)  # the code SMS only: nothing said of the result yet
    assert "验证码" in world.sms.sent[-1][1]
    (mine,) = world.service.my_vehicles(ME).vehicles
    assert (mine.step, mine.deregistration and mine.deregistration.step) == (Step.PENDING, Step.PENDING)
    assert mine.cards[0].state is CardState.REGISTERED
    assert len(world.sms.sent) == sent
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.ACCEPTED)
    assert world.service.get(dereg_id, ME, DEREG).step is Step.DEREGISTERED
    (mine,) = world.service.my_vehicles(ME).vehicles
    assert mine.step is Step.DEREGISTERED
    assert mine.cards[0].state is CardState.UNREGISTERED
    assert len(world.sms.sent) == sent + 1
    assert "注销" in world.sms.sent[-1][1]


def test_a_refused_deregistration_is_shown_and_told_with_the_operators_reason(world: World) -> None:
    world.registered(world.vins[0])
    world.clock.advance(minutes=1)
    dereg_id = deregistration_submitted(world)
    sent = len(world.sms.sent)  # the code SMS only: nothing said of the result yet
    assert "验证码" in world.sms.sent[-1][1]
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.REJECTED, "欠费未结清")
    shown = world.service.get(dereg_id, ME, DEREG)
    assert shown.step is Step.REJECTED
    assert shown.result is not None
    assert shown.result.reason_zh == "欠费未结清"
    assert len(world.sms.sent) == sent + 1
    assert "注销未获电信企业同意" in world.sms.sent[-1][1]
    assert "欠费未结清" in world.sms.sent[-1][1]
    # and the card stays registered, as the operator keeps it
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.REGISTERED]
    (mine,) = world.service.my_vehicles(ME).vehicles
    assert (mine.step, mine.cards[0].state) == (Step.REGISTERED, CardState.REGISTERED)
    assert mine.deregistration is not None
    assert mine.deregistration.reason_zh == "欠费未结清"
