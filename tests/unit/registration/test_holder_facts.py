"""Who the cards are registered to (第五条 如实登记): an owner's own registration needs the owner's
address; a delegated one pushes the owner's phone as the contact, not the trustee's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.registration.domain.registrations import (
    Delegation,
    Registration,
    RegistrationKind,
    RegistrationStatus,
)
from chalicelib.registration.domain.submission import holder_party, holds
from chalicelib.sms.domain import subject_for
from chalicelib.verification.domain.flows import TypedIdentity
from tests.unit.registration.world import ME, NAME, NUMBER, World
from tests.unit.stories import refusal

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def world() -> World:
    return World()


def registration(delegation: Delegation | None = None) -> Registration:
    return Registration(
        registration_id="r1",
        owner="trustee",
        kind=RegistrationKind.REGISTRATION,
        delegated=delegation is not None,
        vin="LSVAB2BR5LN000001",
        iccids=[],
        status=RegistrationStatus.OPEN,
        version=1,
        phone="13912345678",
        delegation=delegation,
        created_at=NOW,
        updated_at=NOW,
    )


def test_an_owners_own_registration_without_their_address_is_refused_and_nothing_pushed(
    world: World,
) -> None:
    # given an owner's registration whose verified identity carries no address
    reg_id = world.ready_to_submit(world.vins[0])
    stored = world.registrations.get(reg_id)
    assert stored is not None
    assert stored.flow_id is not None
    flow = world.flows.get(stored.flow_id)
    assert flow is not None
    assert flow.identity is not None
    bare = flow.identity.model_copy(update={"address": None})
    world.flows.save(flow.model_copy(update={"identity": bare, "version": flow.version + 1}))
    # when it is submitted
    err = refusal(world.service.submit, reg_id, ME)
    # then 第五条's address is asked for, and no card was pushed nor party kept
    assert (err.code, err.status, err.field) == ("identity.address_required", 422, "address")
    assert len(world.outbox.records) == 0
    assert [c.state for c in world.cards(world.vins[0])] == [CardState.UNREGISTERED]


def test_a_delegated_holder_is_the_owner_with_the_owners_phone_as_contact() -> None:
    owner = Delegation(
        owner_id_type="resident_id",
        owner_id_number="31010119800101001X",
        owner_name="李四",
        owner_address="上海市浦东新区世纪大道100号",
        owner_phone="13700001111",
        owner_phone_hash="hash-of-owner-phone",
    )
    trustee = TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME, address="北京市")
    party = holder_party(registration(owner), trustee, NOW)
    assert (party.id_number, party.name, party.phone) == ("31010119800101001X", "李四", "13700001111")
    # and the cards are the owner's (signed in with that phone), never the trustee's
    reg = registration(owner)
    assert holds(reg, subject_for("hash-of-owner-phone"))
    assert not holds(reg, "trustee")
