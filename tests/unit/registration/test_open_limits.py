"""Open registrations and verification flows per owner (fakes): past the limit a start is refused with
nothing written; resuming an open one is no new one; expired or submitted ones do not count."""

from __future__ import annotations

import random

from chalicelib.local.synthetic import make_vin
from chalicelib.registration.domain.registrations import RegistrationKind
from chalicelib.verification.domain.flows import FlowPurpose
from tests.unit.registration.world import ME, World
from tests.unit.stories import refusal


def vins(n: int) -> list[str]:
    rng = random.Random(10)
    return [make_vin(rng) for _ in range(n)]


def test_the_sixth_open_registration_is_refused_and_nothing_is_written() -> None:
    world = World(vehicles=1)
    six = vins(6)
    for vin in six[:5]:
        world.start(vin)
    err = refusal(world.service.start, ME, RegistrationKind.REGISTRATION, six[5])
    assert (err.code, err.status, err.details) == ("registration.too_many_open", 429, {"limit": 5})
    assert err.message_zh
    assert len(world.registrations.items) == 5
    # resuming one of the five is no new one; another person is not limited by these
    _, created = world.service.start(ME, RegistrationKind.REGISTRATION, six[0])
    assert created is False
    world.start(six[5], owner="someone-else")
    # and the check asked before a dealer's hand-off is spent says the same
    assert refusal(world.service.check_room, ME).code == "registration.too_many_open"


def test_expired_registrations_do_not_count() -> None:
    world = World(vehicles=1)
    six = vins(6)
    for vin in six[:5]:
        world.start(vin)
    world.clock.advance(hours=25)  # the five expired unfinished
    world.start(six[5])
    assert len(world.registrations.items) == 6


def test_the_eleventh_open_flow_is_refused_and_not_stored() -> None:
    world = World(vehicles=1)
    flows = world.verification.flows
    for _ in range(10):
        flows.open_flow(ME, FlowPurpose.REGISTRATION)
    err = refusal(flows.open_flow, ME, FlowPurpose.REGISTRATION)
    assert (err.code, err.status) == ("flow.too_many_open", 429)
    assert len(world.flows.flows) == 10
    flows.open_flow("someone-else", FlowPurpose.REGISTRATION)


def test_submitted_registrations_do_not_count() -> None:
    world = World(vehicles=1)
    # given one registration submitted
    submitted = world.ready_to_submit(world.vins[0])
    world.service.submit(submitted, ME)
    # then five more may be open at once, and only the sixth open one is refused
    six = vins(6)
    for vin in six[:5]:
        world.start(vin)
    err = refusal(world.service.start, ME, RegistrationKind.REGISTRATION, six[5])
    assert err.code == "registration.too_many_open"
    assert len(world.registrations.items) == 6
