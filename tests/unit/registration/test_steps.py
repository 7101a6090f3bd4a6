"""Starting (or resuming) a registration and the steps before submission, over fakes."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.consents.domain import AcceptedConsent
from chalicelib.consents.texts import consent_documents
from chalicelib.local.synthetic import make_vin
from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import TypedIdentity
from tests.unit.registration.world import ME, NUMBER, OTHER_NUMBER, PHONE, SOMEONE, World
from tests.unit.stories import refusal
from tests.unit.verification.world import id_front_lines

REG = RegistrationKind.REGISTRATION


@pytest.fixture
def world() -> World:
    return World()


def accepted_all() -> list[AcceptedConsent]:
    return [AcceptedConsent(kind=d.kind, version=d.version, sha256=d.sha256) for d in consent_documents()]


# --------------------------------------------------------------------------- start


def test_a_new_registration_starts_at_confirming_the_vehicle(world: World) -> None:
    # when I start registering a vehicle of the inventory
    view, created = world.service.start(ME, REG, world.vins[0])
    # then a registration is opened, its first step due, the vehicle masked
    assert created is True
    assert view.step is Step.CONFIRM_VEHICLE
    assert view.vehicle.vin_masked != world.vins[0]
    assert view.vehicle.vin_masked.endswith(world.vins[0][-6:])
    assert [c.state.value for c in view.cards] == ["unregistered"]
    assert view.expires_at == world.clock() + timedelta(hours=24)


def test_starting_again_resumes_the_open_registration(world: World) -> None:
    # given a registration I started
    first, _ = world.service.start(ME, REG, world.vins[0])
    # when I start the same vehicle again
    again, created = world.service.start(ME, REG, world.vins[0])
    # then the same registration is resumed, nothing new opened
    assert created is False
    assert again.registration_id == first.registration_id
    assert len(world.registrations.items) == 1


def test_an_unknown_vin_is_not_found(world: World) -> None:
    unknown = make_vin(random.Random(99))
    assert unknown not in world.vins
    err = refusal(world.service.start, ME, REG, unknown)
    assert (err.code, err.status) == ("vehicle.not_found", 404)


def test_a_malformed_vin_is_refused_with_the_field(world: World) -> None:
    err = refusal(world.service.start, ME, REG, "NOT-A-VIN")
    assert err.field == "vin"
    assert err.code.startswith("vin.")


def test_a_vehicle_whose_cards_are_taken_cannot_be_registered_again(world: World) -> None:
    # given the vehicle's cards registered by someone
    world.registered(world.vins[0], SOMEONE)
    # when I start registering it
    err = refusal(world.service.start, ME, REG, world.vins[0])
    # then it is refused: a new owner needs a transfer
    assert (err.code, err.status) == ("registration.already_registered", 409)


# --------------------------------------------------------------------------- step order


def test_steps_cannot_run_ahead_of_the_step_due(world: World) -> None:
    # given a registration whose vehicle is not confirmed yet
    reg_id = world.start(world.vins[0])
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE)
    # when the phone, the consents or the submission come first
    attempts: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (world.service.verify_phone, (reg_id, ME, PHONE, world.sms.last_code())),
        (world.service.give_consents, (reg_id, ME, accepted_all(), {})),
        (world.service.submit, (reg_id, ME)),
    ]
    # then each is refused with the step due
    for fn, args in attempts:
        err = refusal(fn, *args)
        assert (err.code, err.status) == ("registration.step_out_of_order", 409)
        assert err.details["step"] == "confirm_vehicle"


def test_someone_elses_registration_is_forbidden_and_says_nothing(world: World) -> None:
    reg_id = world.start(world.vins[0])
    err = refusal(world.service.get, reg_id, SOMEONE, REG)
    assert (err.code, err.status) == ("registration.not_yours", 403)
    assert world.vins[0] not in str(err.details)
    assert refusal(world.service.confirm_vehicle, reg_id, SOMEONE).status == 403


def test_an_expired_registration_is_gone_for_its_owner(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.clock.advance(hours=25)
    assert refusal(world.service.get, reg_id, ME, REG).code == "registration.not_found"


# --------------------------------------------------------------------------- phone


def test_the_right_code_verifies_the_phone_and_opens_the_flow(world: World) -> None:
    # given a confirmed vehicle
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE)
    # when I type the code the phone received
    view = world.service.verify_phone(reg_id, ME, PHONE, world.sms.last_code(PHONE))
    # then the phone is verified (shown masked), a flow is open and the check is in its evidence
    assert view.step is Step.IDENTITY
    assert view.phone_masked == "139****5678"
    assert view.flow_id is not None
    assert [e.kind for e in world.evidence.entries(view.flow_id)][-1] is EvidenceKind.SMS_CHECKED


def test_a_wrong_code_is_refused_and_changes_nothing(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE)
    code = world.sms.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    err = refusal(world.service.verify_phone, reg_id, ME, PHONE, wrong)
    assert err.code == "sms.code_wrong"
    view = world.service.get(reg_id, ME, REG)
    assert (view.step, view.flow_id, view.phone_masked) == (Step.VERIFY_PHONE, None, None)


def test_a_login_code_does_not_verify_the_owners_phone(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.codes.send(PHONE, SmsPurpose.LOGIN)
    err = refusal(world.service.verify_phone, reg_id, ME, PHONE, world.sms.last_code(PHONE))
    assert err.code == "sms.no_code"


# --------------------------------------------------------------------------- delegation


def test_a_delegation_needs_the_letter_and_the_owners_id_then_the_trustee_goes_on(world: World) -> None:
    # given a delegated registration with the phone verified
    reg_id = world.start(world.vins[0], delegated=True)
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    owner = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四", address="上海市")
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION
    # when the owner is given without the letter, then without the owner's ID card
    assert refusal(world.service.delegate, reg_id, ME, owner).code == "delegation.letter_missing"
    world.upload(flow_id, "authorization_letter")
    assert refusal(world.service.delegate, reg_id, ME, owner).code == "delegation.owner_id_missing"
    # and once both photos are in the flow, the owner's ID card reading what was typed
    world.upload(flow_id, "owner_id_front")
    world.ocr.say(*id_front_lines(OTHER_NUMBER, "李四"))
    view = world.service.delegate(reg_id, ME, owner)
    # then the trustee proves their own identity next; the owner is shown masked
    assert view.step is Step.IDENTITY
    assert view.delegation is not None
    assert (view.delegation.letter, view.delegation.owner_id_photo) == (True, True)
    assert OTHER_NUMBER not in view.model_dump_json()


def test_a_delegation_whose_owner_id_card_is_someone_elses_is_refused(world: World) -> None:
    reg_id = world.start(world.vins[0], delegated=True)
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    world.upload(flow_id, "authorization_letter")
    world.upload(flow_id, "owner_id_front")
    world.ocr.say(*id_front_lines(NUMBER, "李四"))
    owner = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四")
    err = refusal(world.service.delegate, reg_id, ME, owner)
    assert (err.code, err.field) == ("ocr.mismatch", "owner.id_number")
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION


def test_a_delegation_is_locked_once_the_face_was_checked(world: World) -> None:
    reg_id = world.start(world.vins[0], delegated=True)
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    world.upload(flow_id, "authorization_letter")
    world.upload(flow_id, "owner_id_front")
    world.ocr.say(*id_front_lines(OTHER_NUMBER, "李四"))
    owner = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四")
    world.service.delegate(reg_id, ME, owner)
    world.verify_person(flow_id)
    err = refusal(world.service.delegate, reg_id, ME, owner.model_copy(update={"name": "王五"}))
    assert (err.code, err.status) == ("delegation.locked", 409)


# --------------------------------------------------------------------------- consents


def test_the_current_consents_are_recorded_in_the_registration_and_the_evidence(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    world.verify_person(flow_id)
    view = world.consent(reg_id)
    assert view.step is Step.SUBMIT
    assert {c.kind for c in view.consents} == {d.kind.value for d in consent_documents()}
    assert EvidenceKind.CONSENT_GIVEN in [e.kind for e in world.evidence.entries(flow_id)]


@pytest.mark.parametrize(
    ("change", "code"),
    [({"version": "v0"}, "consent.outdated"), ({"sha256": "0" * 64}, "consent.outdated")],
)
def test_a_consent_of_another_version_or_hash_is_refused(
    world: World, change: dict[str, str], code: str
) -> None:
    # given a registration at its consents step
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.verify_person(world.verify_phone(reg_id))
    # when one text is accepted in another version, or altered
    given = accepted_all()
    given[0] = given[0].model_copy(update=change)
    err = refusal(world.service.give_consents, reg_id, ME, given, {})
    # then it is refused and nothing is recorded
    assert (err.code, err.status) == (code, 422)
    assert world.service.get(reg_id, ME, REG).step is Step.CONSENTS


def test_a_missing_agreement_is_refused(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.verify_person(world.verify_phone(reg_id))
    err = refusal(world.service.give_consents, reg_id, ME, accepted_all()[1:], {})
    assert err.code == "consent.missing"
