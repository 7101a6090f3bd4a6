"""The purge of abandoned registrations and flows, and a registration waiting for a reviewer."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus
from tests.unit.registration.world import ME, World


def test_an_abandoned_registration_and_its_flow_are_purged() -> None:
    # given a registration abandoned after its phone was verified, with a photo in its flow
    world = World()
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    world.upload(flow_id, "id_back")
    assert world.documents.keys(f"documents/{flow_id}/")
    # when both have expired and the purge runs
    world.clock.advance(hours=25)
    counts = world.service.purge_abandoned()
    # then both are deleted, photos with them
    assert counts == {"registrations": 1, "flows": 1, "finished": 0, "released": 0}
    assert world.registrations.get(reg_id) is None
    assert world.flows.get(flow_id) is None
    assert world.documents.keys(f"documents/{flow_id}/") == []
    assert world.service.purge_abandoned()["flows"] == 0


def test_an_unexpired_registration_is_kept_by_the_purge() -> None:
    world = World()
    reg_id = world.start(world.vins[0])
    assert world.service.purge_abandoned()["registrations"] == 0
    assert world.registrations.get(reg_id) is not None


def test_a_registration_waiting_for_review_outlives_its_expiry() -> None:
    # given a registration whose flow a reviewer has (face attempts ran out)
    world = World()
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    flow = world.flows.get(flow_id)
    assert flow is not None
    world.flows.save(
        flow.model_copy(
            update={
                "status": FlowStatus.IN_REVIEW,
                "checks": {CheckName.FACE: CheckVerdict.IN_REVIEW},
                "expires_at": world.clock() + timedelta(days=14),
                "version": flow.version + 1,
            }
        )
    )
    # when a day and more has passed and the purge runs
    world.clock.advance(hours=25)
    counts = world.service.purge_abandoned()
    # then both are kept, and the person finds the registration waiting for the review
    assert (counts["registrations"], counts["flows"]) == (0, 0)
    assert world.service.get(reg_id, ME, RegistrationKind.REGISTRATION).step is Step.REVIEW
