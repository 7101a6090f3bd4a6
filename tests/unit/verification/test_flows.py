"""Flows: open one, find it, type the identity, keep or reopen it, purge the abandoned ones."""

from __future__ import annotations

import pytest

from chalicelib.kernel.errors import Conflict, DomainError, Forbidden, InvalidField, NotFound
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    FlowPurpose,
    FlowStatus,
    TypedIdentity,
)
from tests.fakes.crypto import FakeHasher
from tests.unit.verification.world import NAME, NUMBER, OWNER, World


def test_opening_a_flow_stores_an_open_flow_of_the_caller_expiring_after_the_ttl() -> None:
    world = World()
    # when
    flow = world.service.open_flow(OWNER, FlowPurpose.DEREGISTRATION)
    # then
    assert world.flows.get(flow.flow_id) == flow
    assert flow.owner == OWNER
    assert flow.purpose is FlowPurpose.DEREGISTRATION
    assert flow.status is FlowStatus.OPEN
    assert flow.version == 1
    assert flow.expires_at == world.clock() + world.policy.flow_ttl


def test_another_callers_flow_is_forbidden_and_an_expired_one_is_not_found() -> None:
    # given a flow of OWNER
    world = World()
    flow_id = world.open()
    # when someone else asks for it, then
    with pytest.raises(Forbidden) as other:
        world.service.flow(flow_id, "someone-else")
    assert other.value.code == "flow.not_yours"
    # when the owner asks after it expired, then
    world.clock.advance(hours=24)
    with pytest.raises(NotFound) as gone:
        world.service.flow(flow_id, OWNER)
    assert gone.value.code == "flow.not_found"


def test_setting_the_identity_validates_the_number_and_keeps_the_person_hash() -> None:
    # given an open flow
    world = World()
    flow_id = world.open()
    # when the person types their identity (with spaces, which are dropped)
    world.type_identity(flow_id, number=f" {NUMBER[:6]} {NUMBER[6:]} ")
    # then the number is stored clean and hashed for the per-person quota
    flow = world.service.flow(flow_id, OWNER)
    assert flow.identity == TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME)
    assert flow.person_hash == FakeHasher().digest(f"resident_id:{NUMBER}")
    assert flow.version == 2


def test_an_invalid_id_number_is_refused_and_nothing_changes() -> None:
    world = World()
    flow_id = world.open()
    # when
    with pytest.raises(InvalidField) as refused:
        world.type_identity(flow_id, number="110101199003076633")
    # then
    assert refused.value.field == "id_number"
    assert world.service.flow(flow_id, OWNER).identity is None


def test_a_new_identity_drops_the_id_front_reading_checked_against_the_old_one() -> None:
    # given a flow whose ID front was read against the typed identity
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    # when the identity is typed again
    world.type_identity(flow_id)
    # then the reading must be made again
    assert CheckName.OCR_ID_FRONT not in world.service.flow(flow_id, OWNER).checks


def test_the_identity_is_locked_once_a_face_check_started() -> None:
    # given a flow with one face attempt made
    world = World()
    flow_id = world.ready()
    world.liveness.live = False
    world.attempt(flow_id)
    # when the person tries to change the identity, then
    with pytest.raises(Conflict) as locked:
        world.type_identity(flow_id)
    assert locked.value.code == "flow.identity_locked"


def test_a_concurrent_change_is_a_version_conflict() -> None:
    # given a flow read by two requests
    world = World()
    flow_id = world.open()
    stale = world.service.flow(flow_id, OWNER)
    world.type_identity(flow_id)
    # when the stale copy is saved, then
    with pytest.raises(Conflict) as changed:
        world.service.flows.save(stale, status=FlowStatus.VERIFIED)
    assert changed.value.code == "flow.changed"


def test_keeping_a_submitted_flow_closes_it_and_moves_its_expiry() -> None:
    world = World()
    flow = world.service.flow(world.open(), OWNER)
    until = world.clock() + world.policy.flow_ttl * 365
    # when
    kept = world.service.keep(flow, until)
    # then
    assert kept.status is FlowStatus.VERIFIED
    assert kept.expires_at == until
    # and keeping it again until the same time changes nothing
    assert world.service.keep(kept, until) is kept


def test_reopening_a_refused_submission_opens_the_flow_unless_a_reviewer_approved_it() -> None:
    # given a kept flow
    world = World()
    flow = world.service.flow(world.open(), OWNER)
    kept = world.service.keep(flow, world.clock() + world.policy.flow_ttl * 10)
    at = world.clock() + world.policy.flow_ttl
    # when the submission is refused
    reopened = world.service.reopen(kept.flow_id, OWNER, at)
    # then it takes changes again and expires as it would have
    assert reopened.status is FlowStatus.OPEN
    assert reopened.expires_at == at
    # given a reviewer approved the face check
    approved = world.service.flows.save(reopened, checks={CheckName.FACE: CheckVerdict.APPROVED})
    # when it is reopened, then it stays verified
    assert world.service.reopen(approved.flow_id, OWNER, at).status is FlowStatus.VERIFIED


def test_purging_deletes_expired_flows_with_their_photos_and_leaves_a_purged_entry() -> None:
    # given an abandoned flow with a stored photo and a raw upload, and a fresh flow
    world = World()
    abandoned = world.open()
    world.upload(abandoned, DocumentKind.ID_BACK)
    world.raw_upload(abandoned, DocumentKind.ID_FRONT, b"not yet completed")
    world.clock.advance(hours=12)
    fresh = world.open()
    world.clock.advance(hours=12, seconds=1)
    # when
    purged = world.service.purge_expired()
    # then only the abandoned flow goes, with every object under it
    assert purged == 1
    assert world.flows.get(abandoned) is None
    assert world.flows.get(fresh) is not None
    assert world.store.keys(f"documents/{abandoned}/") == []
    assert world.store.keys(f"raw/{abandoned}/") == []
    last = world.evidence.entries(abandoned)[-1]
    assert last.kind is EvidenceKind.PURGED
    assert last.public["documents"] == [DocumentKind.ID_BACK.value]
    assert last.public["objects"] == 2
    assert world.evidence.verify(abandoned).ok


def test_purging_skips_a_flow_in_review() -> None:
    # given an expired flow a reviewer has
    world = World()
    flow = world.service.flow(world.open(), OWNER)
    world.service.flows.save(flow, status=FlowStatus.IN_REVIEW)
    world.clock.advance(days=2)
    # when
    purged = world.service.purge_expired()
    # then
    assert purged == 0
    assert world.flows.get(flow.flow_id) is not None


def test_a_note_goes_into_the_flows_evidence() -> None:
    world = World()
    flow_id = world.open()
    # when
    world.service.note(flow_id, EvidenceKind.SMS_CHECKED, OWNER, {"purpose": "registration"})
    # then
    [entry] = world.evidence.entries(flow_id)
    assert (entry.kind, entry.actor, entry.public) == (
        EvidenceKind.SMS_CHECKED,
        OWNER,
        {"purpose": "registration"},
    )


def test_checks_cannot_run_on_a_flow_that_is_not_open() -> None:
    # given a verified flow
    world = World()
    flow = world.service.flow(world.open(), OWNER)
    world.service.keep(flow, world.clock() + world.policy.flow_ttl)
    # when, then
    with pytest.raises(DomainError) as closed:
        world.type_identity(flow.flow_id)
    assert closed.value.code == "flow.not_open"
