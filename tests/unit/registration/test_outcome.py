"""The operator's answers: the outcome read from the cards' history, one result SMS, my vehicles."""

from __future__ import annotations

import pytest

from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.verification.domain.evidence import EvidenceKind
from tests.unit.registration.world import ME, PHONE, SOMEONE, World

REG = RegistrationKind.REGISTRATION


def results(world: World) -> list[str]:
    return [t for t in world.sms.texts_to(PHONE) if "验证码" not in t]


def test_an_accepted_push_registers_and_sends_exactly_one_result_sms() -> None:
    # given a submitted registration
    world = World()
    reg_id = world.ready_to_submit(world.vins[0])
    view = world.service.submit(reg_id, ME)
    assert results(world) == []
    # when the operator accepts, and the same answer is reported again
    iccid = world.cards(world.vins[0])[0].iccid
    world.operator_answers(iccid, CallbackOutcome.ACCEPTED)
    record_id = world.outbox.lifecycle(iccid).message_id
    assert record_id is not None
    world.service.on_push_result(record_id)
    # then the registration is registered, the person told once, the answer in the flow's evidence
    shown = world.service.get(reg_id, ME, REG)
    assert shown.step is Step.REGISTERED
    assert shown.result is not None
    assert len(results(world)) == 1
    assert "实名登记成功" in results(world)[0]
    assert world.vins[0][-6:] in results(world)[0]
    assert view.flow_id is not None
    assert EvidenceKind.PUSH_RESULT in [e.kind for e in world.evidence.entries(view.flow_id)]


def test_a_refusal_is_shown_and_told_with_the_operators_reason() -> None:
    world = World()
    reg_id = world.ready_to_submit(world.vins[0])
    world.service.submit(reg_id, ME)
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.REJECTED, "该证件在黑名单中")
    shown = world.service.get(reg_id, ME, REG)
    assert shown.step is Step.REJECTED
    assert shown.result is not None
    assert shown.result.reason_zh == "该证件在黑名单中"
    assert [r for r in results(world) if "未通过" in r and "该证件在黑名单中" in r]


def test_a_two_card_vehicle_is_decided_only_when_both_cards_are() -> None:
    # given a vehicle with two cards, submitted together
    world = World(vehicles=1, cards_per_vehicle=2)
    reg_id = world.ready_to_submit(world.vins[0])
    world.service.submit(reg_id, ME)
    first, second = (c.iccid for c in world.cards(world.vins[0]))
    # when one is refused while the other is still with the operator: it waits, and nobody is told
    world.operator_answers(first, CallbackOutcome.REJECTED, "该证件在黑名单中")
    assert world.service.get(reg_id, ME, REG).step is Step.PENDING
    assert results(world) == []
    # and once the second is answered it is decided, with the refusal's reason, told once
    world.operator_answers(second, CallbackOutcome.ACCEPTED)
    shown = world.service.get(reg_id, ME, REG)
    assert shown.step is Step.REJECTED
    assert shown.result is not None
    assert shown.result.reason_zh == "该证件在黑名单中"
    assert len(results(world)) == 1


def test_a_result_sms_the_provider_refuses_does_not_fail_the_answer() -> None:
    world = World()
    reg_id = world.ready_to_submit(world.vins[0])
    world.service.submit(reg_id, ME)
    world.sms.fail()
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.ACCEPTED)
    assert world.service.get(reg_id, ME, REG).step is Step.REGISTERED


# --------------------------------------------------------------------------- my vehicles


@pytest.fixture
def world() -> World:
    return World()


def test_my_vehicles_show_only_my_own_part_of_a_cards_history(world: World) -> None:
    # given someone else registered the car first and was refused
    theirs = world.ready_to_submit(world.vins[0], SOMEONE)
    world.service.submit(theirs, SOMEONE)
    iccid = world.cards(world.vins[0])[0].iccid
    world.operator_answers(iccid, CallbackOutcome.REJECTED, "该证件在黑名单中")
    # when I register it and the operator accepts
    world.clock.advance(seconds=1)
    world.registered(world.vins[0])
    # then my vehicles show my registration's history only, masked
    mine = world.service.my_vehicles(ME)
    assert len(mine.vehicles) == 1
    card = mine.vehicles[0].cards[0]
    assert [h.to_state.value for h in card.history] == ["pending", "registered"]
    assert "黑名单" not in mine.model_dump_json()
    assert "*" in card.iccid_masked
    assert mine.vehicles[0].step is Step.REGISTERED
    # and the person refused before no longer sees the car, registered to someone else now
    assert world.service.my_vehicles(SOMEONE).vehicles == []


def test_my_vehicles_are_empty_before_any_submission(world: World) -> None:
    world.start(world.vins[0])
    assert world.service.my_vehicles(ME).vehicles == []
