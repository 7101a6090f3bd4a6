"""Retention (第十八条) as a use case over in-memory ports: when materials are due, what a purge keeps
and deletes, and the one record per purge."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from chalicelib.cards.commit import ServiceEnd
from chalicelib.retention.domain import PurgeRecord, RetentionPolicy, Subject
from chalicelib.retention.ports import FlowPurge, Materials, RetentionStore
from chalicelib.retention.service import Retention
from chalicelib.verification.domain.flows import Flow
from chalicelib.verification.domain.gates import GateVerdict
from chalicelib.verification.ports import FaceGate
from tests.fakes.clock import FakeClock

ENDED = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


class MemoryRetentionStore(RetentionStore):
    def __init__(self) -> None:
        self.subjects: dict[str, Subject] = {}
        self.purges: dict[tuple[str, datetime], PurgeRecord] = {}
        self.lock = threading.Lock()

    def hold(self, party_id: str, registration_ids: Sequence[str]) -> None:
        s = self.subjects.get(party_id, Subject(party_id=party_id))
        self.subjects[party_id] = s.model_copy(
            update={"registrations": s.registrations | set(registration_ids)}
        )

    def ended(self, party_id: str, iccid: str, at: datetime, reason: str, due_at: datetime) -> None:
        s = self.subjects.get(party_id, Subject(party_id=party_id))
        self.subjects[party_id] = s.model_copy(
            update={"iccids": s.iccids | {iccid}, "ended_at": at, "reason": reason, "due_at": due_at}
        )

    def get(self, party_id: str) -> Subject | None:
        return self.subjects.get(party_id)

    def due(self, now: datetime, limit: int) -> list[Subject]:
        found = [s for s in self.subjects.values() if s.due_at is not None and s.due_at <= now]
        return sorted(found, key=lambda s: s.due_at or now)[:limit]

    def rearm(self, subject: Subject, due_at: datetime) -> bool:
        current = self.subjects.get(subject.party_id)
        if current is None or current.due_at != subject.due_at:
            return False
        self.subjects[subject.party_id] = current.model_copy(update={"due_at": due_at})
        return True

    def cancel(self, subject: Subject) -> bool:
        current = self.subjects.get(subject.party_id)
        if current is None or current.due_at != subject.due_at:
            return False
        self.subjects[subject.party_id] = current.model_copy(update={"due_at": None})
        return True

    def merge(self, subject: Subject, into: str) -> bool:
        if not self.cancel(subject):
            return False
        self.hold(into, sorted(subject.registrations))
        target = self.subjects[into]
        self.subjects[into] = target.model_copy(
            update={"parties": target.parties | {subject.party_id} | subject.parties}
        )
        del self.subjects[subject.party_id]
        return True

    def begin_purge(self, record: PurgeRecord) -> PurgeRecord | None:
        with self.lock:
            key = (record.party_id, record.due_at)
            if key in self.purges:
                return self.purges[key]
            self.purges[key] = record
            return None

    def finish_purge(self, record: PurgeRecord, subject: Subject) -> None:
        self.purges[(record.party_id, record.due_at)] = record
        current = self.subjects.get(subject.party_id)
        if current is not None and current.due_at == subject.due_at:
            del self.subjects[subject.party_id]

    def records(self, party_id: str) -> list[PurgeRecord]:
        return [r for (p, _), r in self.purges.items() if p == party_id]


class MemoryMaterials(Materials):
    def __init__(self) -> None:
        self.flows: dict[str, list[str]] = {}  # registration -> flows
        self.objects: dict[str, int] = {}  # flow -> stored objects
        self.faces: dict[str, int] = {}  # flow -> stored face images (among its objects)
        self.registrations: set[str] = set()
        self.parties: dict[str, str] = {}  # party -> id hash
        self.cards: dict[str, str] = {}  # iccid -> holder party

    def flows_of(self, registration_id: str) -> list[str]:
        return self.flows.get(registration_id, [])

    def purge_flow(self, flow_id: str, reason: str) -> FlowPurge:
        return FlowPurge(objects=self.objects.pop(flow_id, 0), evidence_entries=1, flow=True)

    def purge_faces(self, flow_id: str, reason: str) -> int:
        return self.faces.pop(flow_id, 0)

    def purge_registration(self, registration_id: str) -> bool:
        if registration_id not in self.registrations:
            return False
        self.registrations.discard(registration_id)
        return True

    def cards_held(self, party_id: str, limit: int = 2) -> list[str]:
        return sorted(i for i, p in self.cards.items() if p == party_id)[:limit]

    def holders(self, iccids: Iterable[str]) -> dict[str, str]:
        return {i: self.cards[i] for i in iccids if i in self.cards}

    def same_person(self, party_id: str, other: str) -> bool:
        mine = self.parties.get(party_id)
        return mine is not None and mine == self.parties.get(other)

    def delete_party(self, party_id: str) -> bool:
        return self.parties.pop(party_id, None) is not None


def world(at: datetime) -> tuple[Retention, MemoryRetentionStore, MemoryMaterials]:
    store, materials = MemoryRetentionStore(), MemoryMaterials()
    materials.flows = {"r1": ["f1", "f1-owner"], "d1": ["f2"]}
    materials.objects = {"f1": 3, "f1-owner": 1, "f2": 2}
    materials.registrations = {"r1", "d1"}
    materials.parties = {"p1": "hash-a", "p2": "hash-a", "p3": "hash-b"}
    service = Retention(store, materials, clock=FakeClock(at))
    service.hold("r1", ["p1"])
    service.hold("d1", ["p1"])
    return service, store, materials


def test_materials_are_due_two_calendar_years_after_the_service_ends() -> None:
    policy = RetentionPolicy()
    assert policy.due(ENDED) == datetime(2028, 3, 2, 2, 0, tzinfo=UTC)
    assert policy.due(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2030, 3, 1, tzinfo=UTC)
    assert RetentionPolicy(years=3).due(ENDED).year == 2029


def test_an_end_marks_the_holder_due_and_nothing_is_purged_before() -> None:
    service, store, materials = world(ENDED + timedelta(days=729))
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "deregistration_confirmed")])
    assert store.subjects["p1"].due_at == datetime(2028, 3, 2, 2, 0, tzinfo=UTC)
    report = service.purge_due()
    assert report.due == 0
    assert materials.parties["p1"] == "hash-a"


def test_a_due_holder_is_purged_once_with_a_record_of_counts() -> None:
    service, store, materials = world(ENDED + timedelta(days=731))
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "scrapped")])
    report = service.purge_due()
    assert (report.purged, report.counts.flows, report.counts.objects) == (1, 3, 6)
    assert report.counts.registrations == 2
    assert "p1" not in materials.parties
    assert materials.registrations == set()
    (record,) = store.records("p1")
    assert record.reason == "scrapped"
    assert record.registration_ids == ("d1", "r1")
    assert record.completed_at == ENDED + timedelta(days=731)
    assert "p1" not in store.subjects
    assert service.purge_due().due == 0


def test_a_party_a_card_refers_to_again_is_kept_and_leaves_the_due_index() -> None:
    service, store, materials = world(ENDED + timedelta(days=731))
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "deregistration_confirmed")])
    materials.cards["8986002"] = "p1"  # another card of the holder is still in service
    report = service.purge_due()
    assert (report.purged, report.kept_in_service) == (0, 1)
    assert materials.objects["f1"] == 3
    assert store.subjects["p1"].due_at is None
    assert store.records("p1") == []


def test_the_same_person_back_on_the_card_keeps_the_materials_with_the_new_service() -> None:
    service, store, materials = world(ENDED + timedelta(days=731))
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "deregistration_confirmed")])
    materials.cards["8986001"] = "p2"  # registered again by the same person (same ID hash)
    report = service.purge_due()
    assert (report.purged, report.merged) == (0, 1)
    assert materials.objects == {"f1": 3, "f1-owner": 1, "f2": 2}
    assert store.subjects["p2"].parties == {"p1"}
    assert store.subjects["p2"].registrations == {"r1", "d1"}
    # When the new service ends too, everything goes two years after that
    later = ENDED + timedelta(days=1000)
    service.record_ends([ServiceEnd("8986001", "p2", later, "deregistration_confirmed")])
    del materials.cards["8986001"]
    done = Retention(store, materials, clock=FakeClock(later + timedelta(days=731))).purge_due()
    assert done.purged == 1
    assert done.counts.parties == 2
    assert set(materials.parties) == {"p3"}
    assert materials.objects == {}


def test_another_person_on_the_card_does_not_keep_the_sellers_materials() -> None:
    service, _store, materials = world(ENDED + timedelta(days=731))
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "transferred")])
    materials.cards["8986001"] = "p3"  # the buyer
    report = service.purge_due()
    assert report.purged == 1
    assert "p3" in materials.parties
    assert "p1" not in materials.parties


def test_a_purge_whose_record_another_run_holds_deletes_nothing() -> None:
    at = ENDED + timedelta(days=731)
    service, store, materials = world(at)
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "scrapped")])
    subject = store.subjects["p1"]
    assert subject.due_at is not None
    store.purges[("p1", subject.due_at)] = PurgeRecord(
        party_id="p1", reason="scrapped", ended_at=ENDED, due_at=subject.due_at, started_at=at
    )
    report = service.purge_due()
    assert (report.purged, report.skipped_concurrent) == (0, 1)
    assert materials.objects["f1"] == 3


def test_a_purge_that_died_half_way_is_finished_under_its_record_after_the_lease() -> None:
    at = ENDED + timedelta(days=731)
    service, store, _materials = world(at)
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "scrapped")])
    subject = store.subjects["p1"]
    assert subject.due_at is not None
    store.purges[("p1", subject.due_at)] = PurgeRecord(
        party_id="p1",
        reason="scrapped",
        ended_at=ENDED,
        due_at=subject.due_at,
        started_at=at - timedelta(hours=1),
    )
    report = service.purge_due()
    assert report.purged == 1
    (record,) = store.records("p1")
    assert record.completed_at == at
    assert record.counts.objects == 6


class RecordingGate(FaceGate):
    name: ClassVar[str] = "recording"

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def admit(self, flow: Flow, caller: str, live_capture: bytes) -> GateVerdict:
        raise AssertionError("not asked here")

    def purged(self, flow_id: str) -> None:
        self.forgotten.append(flow_id)


def test_the_holders_last_card_ending_forgets_the_face_templates_of_its_flows() -> None:
    store, materials, gate = MemoryRetentionStore(), MemoryMaterials(), RecordingGate()
    materials.flows = {"r1": ["f1", "f1-owner"]}
    materials.cards = {"8986001": "p1", "8986002": "p1"}
    service = Retention(store, materials, gates=[gate], clock=FakeClock(ENDED))
    service.hold("r1", ["p1"])
    # One of two cards ends (a part replaced): the holder is still in service, templates kept
    service.record_ends([ServiceEnd("8986001", "p1", ENDED, "swapped_out")])
    del materials.cards["8986001"]
    assert gate.forgotten == []
    # The last one ends: the templates bound to the registration's flows are forgotten at once
    service.record_ends([ServiceEnd("8986002", "p1", ENDED, "deregistration_confirmed")])
    assert gate.forgotten == ["f1", "f1-owner"]


def test_a_shorter_face_period_purges_the_face_images_first_and_the_rest_at_two_years() -> None:
    store, materials = MemoryRetentionStore(), MemoryMaterials()
    materials.flows = {"r1": ["f1"]}
    materials.objects, materials.faces = {"f1": 3}, {"f1": 1}
    materials.registrations, materials.parties = {"r1"}, {"p1": "hash-a"}
    policy = RetentionPolicy(years=2, face_years=1)

    def at(days: int) -> Retention:
        return Retention(store, materials, policy=policy, clock=FakeClock(ENDED + timedelta(days=days)))

    at(0).hold("r1", ["p1"])
    at(0).record_ends([ServiceEnd("8986001", "p1", ENDED, "deregistration_confirmed")])
    # A year after the end: only the face images go; the subject is due again at two years
    report = at(366).purge_due()
    assert (report.faces_purged, report.purged, report.counts.objects) == (1, 0, 1)
    assert materials.faces == {}
    assert materials.objects == {"f1": 3}
    assert store.subjects["p1"].due_at == policy.due(ENDED)
    assert at(400).purge_due().due == 0
    # Two years after: the rest
    assert at(731).purge_due().purged == 1
    assert materials.parties == {}


def test_face_images_are_never_kept_longer_than_the_other_materials() -> None:
    with pytest.raises(ValueError, match="no longer"):
        RetentionPolicy(years=2, face_years=3)
