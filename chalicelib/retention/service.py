"""Retention (第十八条): service ends recorded against the holder, and the scheduled purge of what is due.

- ``record_ends``: told by the card lifecycle of every service end (before its change commits), it marks
  the holder's subject due ``policy.years`` after the end; at the holder's last card's end the face
  templates bound to its flows are forgotten (biometric consent v3: templates go at the service's end).
- ``hold``: told by a submission which holders its materials belong to.
- ``purge_due``: reads the due slice of the index (never the cards table), and for each subject either
  keeps it (a card refers to the party again: nothing deleted), hands it to the same person's newer
  registration (a card of theirs back in service: kept with it), or purges it: the registrations'
  objects (every version), the flows' sealed identity and documents, the evidence entries' sealed
  personal facts, the registrations' sealed fields, the parties. A purge record (counts, no personal
  data) is written first by a conditional put: two purges at once make one record, and only the one that
  wrote it deletes (a run that died half way is taken over after ``PURGE_LEASE``).
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.cards.commit import ServiceEnd
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.retention.domain import (
    PURGE_LEASE,
    PurgeCounts,
    PurgeRecord,
    PurgeReport,
    RetentionPolicy,
    Subject,
)
from chalicelib.retention.ports import Materials, RetentionStore
from chalicelib.verification.ports import FaceGate


class Retention:
    def __init__(
        self,
        store: RetentionStore,
        materials: Materials,
        *,
        policy: RetentionPolicy | None = None,
        gates: Sequence[FaceGate] = (),
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._materials = materials
        self._policy = policy or RetentionPolicy()
        self._gates = tuple(gates)
        self._clock = clock

    # -- recording -----------------------------------------------------------------------------------

    def record_ends(self, ends: Sequence[ServiceEnd]) -> None:
        """Each end marks its holder due; the holder's last card ending also forgets the face templates
        bound to its registrations' flows (the biometric consent says so: kept for the comparisons
        only while the card is in service; the photos stay with the materials)."""
        for end in ends:
            self._store.ended(end.party_id, end.iccid, end.at, end.event, self._policy.first_due(end.at))
            if self._gates and not set(self._materials.cards_held(end.party_id)) - {end.iccid}:
                self._forget_faces(end.party_id)

    def _forget_faces(self, party_id: str) -> None:
        subject = self._store.get(party_id)
        for registration_id in sorted(subject.registrations if subject else ()):
            for flow_id in self._materials.flows_of(registration_id):
                for gate in self._gates:
                    gate.purged(flow_id)

    def hold(self, registration_id: str, party_ids: Sequence[str]) -> None:
        for party_id in party_ids:
            self._store.hold(party_id, [registration_id])

    # -- the purge schedule --------------------------------------------------------------------------

    def purge_due(self, limit: int = 100) -> PurgeReport:
        now = self._clock()
        report = PurgeReport()
        for subject in self._store.due(now, limit):
            report.due += 1
            self._purge_one(subject, report)
        if report.purged:
            emit(Metric.RETENTION_PURGED, report.purged, outcome="purged")
        if report.kept_in_service:
            emit(Metric.RETENTION_PURGED, report.kept_in_service, outcome="kept_in_service")
        logger.info("retention purge", extra=report.model_dump(exclude={"counts"}))
        return report

    def _purge_one(self, subject: Subject, report: PurgeReport) -> None:
        parties = {subject.party_id, *subject.parties}
        if any(self._materials.in_service(p) for p in parties):
            # A card refers to the party again (e.g. a de-registration refused after all): kept.
            if self._store.cancel(subject):
                report.kept_in_service += 1
            return
        for iccid, holder in self._materials.holders(subject.iccids).items():
            if holder not in parties and self._materials.same_person(subject.party_id, holder):
                # The same person registered the card again before the due date: the materials are
                # kept with that service and purged with it.
                if self._store.merge(subject, holder):
                    report.merged += 1
                logger.info("retention kept with a newer service", extra={"iccid_tail": iccid[-4:]})
                return
        now = self._clock()
        assert subject.due_at is not None
        if subject.ended_at is not None and now < self._policy.due(subject.ended_at):
            self._purge_faces(subject, report)
            return
        record = PurgeRecord(
            party_id=subject.party_id,
            reason=subject.reason or "ended",
            ended_at=subject.ended_at,
            due_at=subject.due_at,
            started_at=now,
            registration_ids=tuple(sorted(subject.registrations)),
        )
        existing = self._store.begin_purge(record)
        if existing is not None:
            if existing.completed_at is not None or now - existing.started_at < PURGE_LEASE:
                report.skipped_concurrent += 1
                return
            record = existing  # a purge that died half way: finished here, under its record
        counts = self._delete(subject, parties)
        done = record.model_copy(update={"completed_at": self._clock(), "counts": counts})
        self._store.finish_purge(done, subject)
        report.purged += 1
        for name, value in counts.model_dump().items():
            setattr(report.counts, name, getattr(report.counts, name) + value)

    def _purge_faces(self, subject: Subject, report: PurgeReport) -> None:
        """A shorter face period ended: the face images go now, the rest when its period ends."""
        assert subject.ended_at is not None
        why = f"retention of face images: {subject.reason or 'ended'} at {subject.ended_at.isoformat()}"
        objects = 0
        for registration_id in sorted(subject.registrations):
            for flow_id in self._materials.flows_of(registration_id):
                objects += self._materials.purge_faces(flow_id, why)
        if self._store.rearm(subject, self._policy.due(subject.ended_at)):
            report.faces_purged += 1
            report.counts.objects += objects

    def _delete(self, subject: Subject, parties: set[str]) -> PurgeCounts:
        counts = PurgeCounts()
        ended = subject.ended_at.isoformat() if subject.ended_at else "?"
        why = f"retention: {subject.reason or 'ended'} at {ended}"
        for registration_id in sorted(subject.registrations):
            for flow_id in self._materials.flows_of(registration_id):
                for gate in self._gates:
                    gate.purged(flow_id)
                done = self._materials.purge_flow(flow_id, why)
                counts.flows += int(done.flow)
                counts.objects += done.objects
                counts.evidence_entries += done.evidence_entries
            counts.registrations += int(self._materials.purge_registration(registration_id))
        for party_id in sorted(parties):
            counts.parties += int(self._materials.delete_party(party_id))
        return counts
