"""Ports of retention: the due index of subjects and purge records, and the materials to delete."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from chalicelib.retention.domain import PurgeRecord, Subject


class RetentionStore(ABC):
    """Subjects keyed by party, indexed by due date (sparse: only subjects out of service), and purge
    records."""

    @abstractmethod
    def hold(self, party_id: str, registration_ids: Sequence[str]) -> None:
        """The registrations' materials belong to ``party_id``'s service (idempotent)."""

    @abstractmethod
    def ended(self, party_id: str, iccid: str, at: datetime, reason: str, due_at: datetime) -> None:
        """The service of ``iccid`` to ``party_id`` ended at ``at``: the subject is due at ``due_at``."""

    @abstractmethod
    def get(self, party_id: str) -> Subject | None: ...

    @abstractmethod
    def due(self, now: datetime, limit: int) -> list[Subject]:
        """Subjects due at or before ``now``, read from the due index (never a scan)."""

    @abstractmethod
    def rearm(self, subject: Subject, due_at: datetime) -> bool:
        """The subject due again at ``due_at`` (after its face images went), unless it changed since."""

    @abstractmethod
    def cancel(self, subject: Subject) -> bool:
        """The subject is in service again: out of the due index, unless it changed since it was read."""

    @abstractmethod
    def merge(self, subject: Subject, into: str) -> bool:
        """The same person holds a card again as ``into``: the subject's materials and party join that
        subject (kept with its service) and the subject goes, unless it changed since it was read."""

    @abstractmethod
    def begin_purge(self, record: PurgeRecord) -> PurgeRecord | None:
        """Write the purge record if none exists for its id (a conditional write); else the existing."""

    @abstractmethod
    def finish_purge(self, record: PurgeRecord, subject: Subject) -> None:
        """The record completed, and the subject gone unless a later end re-armed it meanwhile."""

    @abstractmethod
    def records(self, party_id: str) -> list[PurgeRecord]: ...


@dataclass(frozen=True)
class FlowPurge:
    objects: int = 0
    evidence_entries: int = 0
    flow: bool = False


class Materials(ABC):
    """The materials of registrations, as retention reads and deletes them."""

    @abstractmethod
    def flows_of(self, registration_id: str) -> list[str]:
        """The verification flows of a registration (its own, a delegation owner's); none when gone."""

    @abstractmethod
    def purge_flow(self, flow_id: str, reason: str) -> FlowPurge:
        """Every stored object (each version), the flow's sealed identity and documents, and its evidence
        entries' sealed personal facts; the evidence chain stays verifiable, ending with a ``purged``
        entry."""

    @abstractmethod
    def purge_faces(self, flow_id: str, reason: str) -> int:
        """The flow's face images (live capture, on-site photo; every version) deleted; how many objects."""

    @abstractmethod
    def purge_registration(self, registration_id: str) -> bool:
        """The registration's sealed fields and document references removed (its status stays)."""

    @abstractmethod
    def cards_held(self, party_id: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` cards that refer to the party (its holder's cards in service)."""

    def in_service(self, party_id: str) -> bool:
        """Whether any card refers to the party."""
        return bool(self.cards_held(party_id, 1))

    @abstractmethod
    def holders(self, iccids: Iterable[str]) -> dict[str, str]:
        """The party each of these cards is held by now, where one is."""

    @abstractmethod
    def same_person(self, party_id: str, other: str) -> bool:
        """Whether two parties are the same person (their keyed ID hashes are equal)."""

    @abstractmethod
    def delete_party(self, party_id: str) -> bool: ...
