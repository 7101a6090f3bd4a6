"""Submission (claim → holder → push → complete), its refusals and the recovery of a submit whose
request died, over fakes."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.registration.domain.registrations import RegistrationKind, RegistrationStatus, Step
from tests.unit.registration.world import ME, NUMBER, SOMEONE, World
from tests.unit.stories import refusal

REG = RegistrationKind.REGISTRATION
DEREG = RegistrationKind.DEREGISTRATION


@pytest.fixture
def world() -> World:
    return World()


def timed_out(*_: Any) -> Any:
    """Stands for a request that dies at this point (a Lambda timeout)."""
    raise RuntimeError("the Lambda timed out")


def test_a_submit_pushes_every_card_once_and_a_second_submit_changes_nothing(world: World) -> None:
    # given a registration ready to submit
    reg_id = world.ready_to_submit(world.vins[0])
    # when it is submitted twice
    first = world.service.submit(reg_id, ME)
    again = world.service.submit(reg_id, ME)
    # then the card is pending with exactly one push, and both answers show the same registration
    assert (first.step, again.step) == (Step.PENDING, Step.PENDING)
    assert again.registration_id == first.registration_id
    assert len(world.outbox.records) == 1
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.PENDING]
    # and the holder is the verified person, the live capture kept with the registration
    stored = world.registrations.get(reg_id)
    assert stored is not None
    assert stored.status is RegistrationStatus.SUBMITTED
    holder = world.parties.get(stored.party_id or "")
    assert holder is not None
    assert holder.id_number == NUMBER
    assert stored.onsite_photo is not None


def test_the_flow_of_a_submitted_registration_is_kept_for_the_evidence(world: World) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    view = world.service.submit(reg_id, ME)
    assert view.flow_id is not None
    flow = world.flows.get(view.flow_id)
    assert flow is not None
    assert (flow.expires_at - world.clock()).days > 365


def test_the_eleventh_card_of_one_id_is_refused_and_the_registration_reopened(world: World) -> None:
    # given the person already holds ten cards with the card's operator
    reg_id = world.ready_to_submit(world.vins[0])
    world.holds_ten_cards(NUMBER, world.vins[0])
    # when they submit
    err = refusal(world.service.submit, reg_id, ME)
    # then it is refused with the way to a business hall, and nothing changed
    assert (err.code, err.status) == ("registration.cards_per_id_exceeded", 409)
    assert "营业厅" in err.message_zh
    assert "business hall" in err.message_en
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.UNREGISTERED]
    assert world.outbox.records == {}
    assert world.parties.parties == {}  # the holder's personal data is not kept for a refused push
    # and the registration is open again at its submit step, expiring as before
    view = world.service.get(reg_id, ME, REG)
    assert view.step is Step.SUBMIT
    assert view.expires_at is not None


def test_a_submit_that_dies_after_the_push_is_finished_by_the_recovery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a submit whose request dies right after the push committed
    reg_id = world.ready_to_submit(world.vins[0])
    monkeypatch.setattr(world.service.submission, "_finish", timed_out)
    with pytest.raises(RuntimeError):
        world.service.submit(reg_id, ME)
    monkeypatch.undo()
    # then the person sees it pending, with its one push
    assert world.service.get(reg_id, ME, REG).step is Step.PENDING
    assert len(world.outbox.records) == 1
    # and the operator's answer before anything recorded the submission tells nobody yet
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.ACCEPTED)
    assert world.sms.texts_to("13912345678")[-1].startswith("【车联网卡实名登记】验证码")
    # when the recovery runs after the claim went stale
    world.clock.advance(minutes=5)
    counts = world.service.recover_stuck()
    # then the submission is finished without a second push, and the person hears the result
    assert counts == {"finished": 1, "released": 0}
    assert len(world.outbox.records) == 1
    assert "实名登记成功" in world.sms.sent[-1][1]
    stored = world.registrations.get(reg_id)
    assert stored is not None
    assert stored.status is RegistrationStatus.SUBMITTED


def test_a_submit_that_dies_before_the_push_is_opened_again_by_the_recovery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    monkeypatch.setattr(world.lifecycle, "submit_registrations", timed_out)
    with pytest.raises(RuntimeError):
        world.service.submit(reg_id, ME)
    monkeypatch.undo()
    world.clock.advance(minutes=5)
    assert world.service.recover_stuck() == {"finished": 0, "released": 1}
    # the person can submit again, and this time it goes through once
    assert world.service.submit(reg_id, ME).step is Step.PENDING
    assert len(world.outbox.records) == 1


def test_a_fresh_claim_is_not_taken_by_a_second_submit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a submit that died before its push, moments ago
    reg_id = world.ready_to_submit(world.vins[0])
    monkeypatch.setattr(world.lifecycle, "submit_registrations", timed_out)
    with pytest.raises(RuntimeError):
        world.service.submit(reg_id, ME)
    monkeypatch.undo()
    # when it is submitted again within the claim's lease
    view = world.service.submit(reg_id, ME)
    # then nothing is pushed: the claim is still the first request's
    assert view.step is Step.SUBMIT
    assert world.outbox.records == {}


# --------------------------------------------------------------------------- de-registration


def test_the_registered_person_deregisters_and_hears_it(world: World) -> None:
    # given my registered vehicle
    world.registered(world.vins[0])
    # when I de-register it with my phone and my face
    view, created = world.service.start(ME, DEREG, world.vins[0])
    assert (created, view.step) == (True, Step.VERIFY_PHONE)
    from chalicelib.sms.domain import SmsPurpose

    flow_id = world.verify_phone(view.registration_id, purpose=SmsPurpose.DEREGISTRATION)
    world.verify_person(flow_id)
    sent = len(world.sms.sent)
    done = world.service.submit(view.registration_id, ME)
    # then the de-registration waits for the operator: the card still registered, no SMS yet
    assert done.step is Step.PENDING
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.REGISTERED]
    assert len(world.sms.sent) == sent
    # and once the operator accepts it, the card is back to emergency only and the SMS says so
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.ACCEPTED)
    assert world.service.get(view.registration_id, ME, DEREG).step is Step.DEREGISTERED
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.UNREGISTERED]
    assert "注销" in world.sms.sent[-1][1]
    assert len(world.sms.sent) == sent + 1


def test_deregistration_by_someone_else_is_refused(world: World) -> None:
    # given my registered vehicle
    world.registered(world.vins[0])
    # when someone else starts de-registering it
    err = refusal(world.service.start, SOMEONE, DEREG, world.vins[0])
    # then it is not theirs
    assert (err.code, err.status) == ("vehicle.not_yours", 403)


def test_deregistration_by_another_verified_person_on_my_account_is_refused(world: World) -> None:
    from chalicelib.sms.domain import SmsPurpose
    from tests.unit.registration.world import OTHER_NUMBER

    # given my registered vehicle, and a de-registration whose face check verified another person
    world.registered(world.vins[0])
    view, _ = world.service.start(ME, DEREG, world.vins[0])
    flow_id = world.verify_phone(view.registration_id, purpose=SmsPurpose.DEREGISTRATION)
    world.verify_person(flow_id, number=OTHER_NUMBER)
    # when it is submitted
    err = refusal(world.service.submit, view.registration_id, ME)
    # then the verified person is not the card's holder: nothing is de-registered
    assert (err.code, err.status) == ("deregistration.not_holder", 403)
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.REGISTERED]
