"""Retention on DynamoDB: the due index of holders (``retention``), the purge records
(``retention-purges``), and the materials a purge deletes (registrations, flows, evidence, parties,
stored objects)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.adapters.dynamo.models import CardModel, FlowModel, PartyModel, RegistrationModel
from chalicelib.adapters.dynamo.models_retention import PurgeRecordModel, RetentionModel
from chalicelib.retention.domain import DUE_SHARDS, PurgeCounts, PurgeRecord, Subject, due_shard
from chalicelib.retention.ports import FlowPurge, Materials, RetentionStore
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.ports import DocumentStore, EvidenceLog

_CONDITION_FAILED = "ConditionalCheckFailedException"
#: The face images a shorter face period purges first (the ID photos stay with the other materials).
FACE_KINDS = tuple(k for k in DocumentKind if k.needs_face)


def _failed(exc: PutError | UpdateError | DeleteError) -> bool:
    return exc.cause_response_code == _CONDITION_FAILED


def _subject(m: RetentionModel) -> Subject:
    return Subject(
        party_id=m.party_id,
        registrations=frozenset(m.registrations or ()),
        parties=frozenset(m.parties or ()),
        iccids=frozenset(m.iccids or ()),
        ended_at=m.ended_at,
        reason=m.reason,
        due_at=m.due_at,
    )


def _record(m: PurgeRecordModel) -> PurgeRecord:
    return PurgeRecord(
        party_id=m.party_id,
        reason=m.reason,
        ended_at=m.ended_at,
        due_at=m.due_at,
        started_at=m.started_at,
        completed_at=m.completed_at,
        registration_ids=tuple(sorted(m.registration_ids or ())),
        counts=PurgeCounts.model_validate_json(m.counts_json) if m.counts_json else PurgeCounts(),
    )


class DynamoRetentionStore(RetentionStore):
    def hold(self, party_id: str, registration_ids: Sequence[str]) -> None:
        RetentionModel(party_id).update(
            actions=[
                RetentionModel.registrations.add(set(registration_ids)),
                RetentionModel.version.add(1),
            ]
        )

    def ended(self, party_id: str, iccid: str, at: datetime, reason: str, due_at: datetime) -> None:
        RetentionModel(party_id).update(
            actions=[
                RetentionModel.iccids.add({iccid}),
                RetentionModel.ended_at.set(at),
                RetentionModel.reason.set(reason),
                RetentionModel.due_shard.set(due_shard(party_id)),
                RetentionModel.due_at.set(due_at),
                RetentionModel.version.add(1),
            ]
        )

    def get(self, party_id: str) -> Subject | None:
        try:
            return _subject(RetentionModel.get(party_id, consistent_read=True))
        except RetentionModel.DoesNotExist:
            return None

    def due(self, now: datetime, limit: int) -> list[Subject]:
        found: list[Subject] = []
        for shard in range(DUE_SHARDS):
            if len(found) >= limit:
                break
            query = RetentionModel.by_due.query(
                str(shard), RetentionModel.due_at <= now, limit=limit - len(found), page_size=100
            )
            found += [_subject(m) for m in query]
        return found

    @staticmethod
    def _unchanged(subject: Subject) -> Condition:
        assert subject.due_at is not None
        guard: Condition = RetentionModel.due_at == subject.due_at
        return guard

    def rearm(self, subject: Subject, due_at: datetime) -> bool:
        try:
            RetentionModel(subject.party_id).update(
                actions=[RetentionModel.due_at.set(due_at)], condition=self._unchanged(subject)
            )
        except UpdateError as exc:
            if _failed(exc):
                return False
            raise
        return True

    def cancel(self, subject: Subject) -> bool:
        try:
            RetentionModel(subject.party_id).update(
                actions=[RetentionModel.due_shard.remove(), RetentionModel.due_at.remove()],
                condition=self._unchanged(subject),
            )
        except UpdateError as exc:
            if _failed(exc):
                return False
            raise
        return True

    def merge(self, subject: Subject, into: str) -> bool:
        if not self.cancel(subject):
            return False
        self.hold(into, sorted(subject.registrations))
        RetentionModel(into).update(
            actions=[RetentionModel.parties.add({subject.party_id, *subject.parties})]
        )
        try:
            RetentionModel(subject.party_id).delete(condition=RetentionModel.due_at.does_not_exist())
        except DeleteError as exc:
            if not _failed(exc):
                raise
            # A new end re-armed it meanwhile: it stays due; what it shares is purged idempotently.
        return True

    def begin_purge(self, record: PurgeRecord) -> PurgeRecord | None:
        item = PurgeRecordModel(
            record.party_id,
            record.due_at,
            reason=record.reason,
            ended_at=record.ended_at,
            started_at=record.started_at,
            registration_ids=set(record.registration_ids) or None,
        )
        try:
            item.save(condition=PurgeRecordModel.party_id.does_not_exist())
        except PutError as exc:
            if _failed(exc):
                return _record(PurgeRecordModel.get(record.party_id, record.due_at, consistent_read=True))
            raise
        return None

    def finish_purge(self, record: PurgeRecord, subject: Subject) -> None:
        assert record.completed_at is not None
        PurgeRecordModel(record.party_id, record.due_at).update(
            actions=[
                PurgeRecordModel.completed_at.set(record.completed_at),
                PurgeRecordModel.counts_json.set(record.counts.model_dump_json()),
            ]
        )
        try:
            RetentionModel(subject.party_id).delete(condition=self._unchanged(subject))
        except DeleteError as exc:
            if not _failed(exc):
                raise
            # A later end re-armed it: what was purged is gone from it, the rest stays due then.
            actions: list[Action] = []
            if subject.registrations:
                actions.append(RetentionModel.registrations.delete(set(subject.registrations)))
            if subject.parties:
                actions.append(RetentionModel.parties.delete(set(subject.parties)))
            if actions:
                RetentionModel(subject.party_id).update(actions=actions)

    def records(self, party_id: str) -> list[PurgeRecord]:
        return [_record(m) for m in PurgeRecordModel.query(party_id, consistent_read=True)]


class DynamoMaterials(Materials):
    """Registrations, flows and their evidence, parties and stored documents, as a purge deletes them."""

    def __init__(self, documents: DocumentStore, evidence: EvidenceLog) -> None:
        self._documents = documents
        self._evidence = evidence

    def flows_of(self, registration_id: str) -> list[str]:
        try:
            reg = RegistrationModel.get(registration_id, attributes_to_get=["flow_id", "owner_flow_id"])
        except RegistrationModel.DoesNotExist:
            return []
        return [f for f in (reg.flow_id, reg.owner_flow_id) if f]

    def purge_flow(self, flow_id: str, reason: str) -> FlowPurge:
        objects = self._documents.delete_under(f"documents/{flow_id}/") + self._documents.delete_under(
            f"raw/{flow_id}/"
        )
        flow = False
        try:
            FlowModel(flow_id).update(
                actions=[
                    FlowModel.identity_enc.remove(),
                    FlowModel.data_key.remove(),
                    FlowModel.documents.remove(),
                    FlowModel.person_hash.remove(),
                ],
                condition=FlowModel.flow_id.exists(),
            )
            flow = True
        except UpdateError as exc:
            if not _failed(exc):
                raise
        entries = self._evidence.purge_personal(flow_id)
        self._evidence.append(
            flow_id, EvidenceKind.PURGED, "system", {"reason": reason, "objects": objects, "entries": entries}
        )
        return FlowPurge(objects=objects, evidence_entries=entries, flow=flow)

    def purge_faces(self, flow_id: str, reason: str) -> int:
        objects = 0
        for kind in FACE_KINDS:
            objects += self._documents.delete_under(f"documents/{flow_id}/{kind.value}/")
            objects += self._documents.delete_under(f"raw/{flow_id}/{kind.value}/")
        self._evidence.append(
            flow_id, EvidenceKind.PURGED, "system", {"reason": reason, "faces": True, "objects": objects}
        )
        return objects

    def purge_registration(self, registration_id: str) -> bool:
        try:
            RegistrationModel(registration_id).update(
                actions=[
                    RegistrationModel.sealed.remove(),
                    RegistrationModel.data_key.remove(),
                    RegistrationModel.phone_hash.remove(),
                    RegistrationModel.owner_phone_hash.remove(),
                    RegistrationModel.letter_key.remove(),
                    RegistrationModel.owner_id_key.remove(),
                    RegistrationModel.onsite_photo.remove(),
                    RegistrationModel.possession_json.remove(),
                ],
                condition=RegistrationModel.registration_id.exists(),
            )
        except UpdateError as exc:
            if _failed(exc):
                return False
            raise
        return True

    def cards_held(self, party_id: str, limit: int = 2) -> list[str]:
        return [c.iccid for c in CardModel.by_holder.query(party_id, limit=limit)]

    def holders(self, iccids: Iterable[str]) -> dict[str, str]:
        keys = sorted(set(iccids))
        if not keys:
            return {}
        cards = CardModel.batch_get(keys, attributes_to_get=["iccid", "holder_id"])
        return {c.iccid: c.holder_id for c in cards if c.holder_id}

    def _id_hash(self, party_id: str) -> str | None:
        try:
            return str(PartyModel.get(party_id, attributes_to_get=["id_hash"]).id_hash)
        except PartyModel.DoesNotExist:
            return None

    def same_person(self, party_id: str, other: str) -> bool:
        mine = self._id_hash(party_id)
        return mine is not None and mine == self._id_hash(other)

    def delete_party(self, party_id: str) -> bool:
        try:
            PartyModel(party_id).delete(condition=PartyModel.party_id.exists())
        except DeleteError as exc:
            if _failed(exc):
                return False
            raise
        return True
