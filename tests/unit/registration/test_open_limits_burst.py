"""Open registrations and flows per owner when the owner index lags (fakes): what a burst of starts reads
before any of them is written. The limit is still kept, by the store's create (``create_if_room``)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from chalicelib.local.synthetic import make_vin
from chalicelib.registration.domain.registrations import Registration, RegistrationKind
from chalicelib.verification.domain.flows import FlowPurpose
from tests.unit.registration.world import ME, World
from tests.unit.stories import refusal


def test_starts_that_all_read_an_empty_owner_index_still_open_no_more_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(vehicles=1)

    def lagging_index(owner: str) -> list[Registration]:
        return []  # every start of the burst read the index before any other was written

    monkeypatch.setattr(world.registrations, "of_owner", lagging_index)
    rng = random.Random(18)
    for _ in range(5):
        world.start(make_vin(rng))
    err = refusal(world.service.start, ME, RegistrationKind.REGISTRATION, make_vin(rng))
    assert (err.code, err.status, err.details) == ("registration.too_many_open", 429, {"limit": 5})
    assert len(world.registrations.items) == 5


def test_flow_opens_that_all_read_a_zero_open_count_still_open_no_more_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(vehicles=1)

    def lagging_count(owner: str, now: datetime) -> int:
        return 0

    monkeypatch.setattr(world.flows, "open_count", lagging_count)
    flows = world.verification.flows
    for _ in range(10):
        flows.open_flow(ME, FlowPurpose.REGISTRATION)
    assert refusal(flows.open_flow, ME, FlowPurpose.REGISTRATION).code == "flow.too_many_open"
    assert len(world.flows.flows) == 10
