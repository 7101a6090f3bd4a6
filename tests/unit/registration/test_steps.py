"""Starting (or resuming) a registration and the steps before submission, over fakes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.consents.domain import AcceptedConsent
from chalicelib.consents.texts import consent_documents
from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.evidence import EvidenceKind
from tests.unit.registration.world import ME, PHONE, SOMEONE, World
from tests.unit.stories import refusal

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
    # then a registration is opened, its first step due, the VIN masked and nothing else told of the
    # vehicle until I show I hold it
    assert created is True
    assert view.step is Step.CONFIRM_VEHICLE
    assert view.vehicle.vin_masked != world.vins[0]
    assert view.vehicle.vin_masked.endswith(world.vins[0][-6:])
    assert (view.vehicle.brand, view.vehicle.model, view.cards) == ("", "", [])
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


def test_a_malformed_vin_is_refused_with_the_field(world: World) -> None:
    err = refusal(world.service.start, ME, REG, "NOT-A-VIN")
    assert err.field == "vin"
    assert err.code.startswith("vin.")


# --------------------------------------------------------------------------- step order


def test_steps_cannot_run_ahead_of_the_step_due(world: World) -> None:
    # given a registration whose vehicle is not confirmed yet
    reg_id = world.start(world.vins[0])
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE, caller=ME)
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
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE, caller=ME)
    # when I type the code the phone received
    view = world.service.verify_phone(reg_id, ME, PHONE, world.sms.last_code(PHONE))
    # then the phone is verified (shown masked), a flow is open and the check is in its evidence; the
    # phone is the sales record's, so it shows possession of the car too
    assert view.step is Step.IDENTITY
    assert view.phone_masked == "139****5678"
    assert view.flow_id is not None
    assert EvidenceKind.SMS_CHECKED in [e.kind for e in world.evidence.entries(view.flow_id)]


def test_a_wrong_code_is_refused_and_changes_nothing(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE, caller=ME)
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
