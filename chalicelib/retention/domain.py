"""Retention of registration materials (第十八条): what is kept, until when, and what a purge leaves.

第十八条: 入网资料、合同协议、查验日志 are kept while the card is in service to its holder and for two
years after that service ends (实名注销, 过户, 报废, 更换零部件, or a refused registration), then purged.
A holder (party) is the subject: its registrations' materials are due together, when the last of its
cards' service has ended ``years`` ago. Pure: no I/O.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The due index is split over this many partitions (``due_shard``): a purge reads each one's due slice.
DUE_SHARDS = 8
#: A purge record that started this long ago and never completed is taken over by the next run.
PURGE_LEASE = timedelta(minutes=15)


class RetentionPolicy(BaseModel):
    """How long materials are kept after a service ends (第十八条: two years)."""

    model_config = ConfigDict(frozen=True)

    years: int = Field(default=2, ge=2)
    #: Face images (live capture, on-site photo) may be purged sooner, if the biometric consent in force
    #: says so; None: with the other materials (biometric consent v3 states the two years).
    face_years: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _faces_not_longer(self) -> RetentionPolicy:
        if self.face_years is not None and self.face_years > self.years:
            raise ValueError("face images are kept no longer than the other materials")
        return self

    def due(self, ended_at: datetime) -> datetime:
        """When materials whose service ended at ``ended_at`` are purged (calendar years; 29 Feb → 1 Mar)."""
        return _years_after(ended_at, self.years)

    def faces_due(self, ended_at: datetime) -> datetime:
        """When the face images of a service that ended at ``ended_at`` are purged."""
        return _years_after(ended_at, self.years if self.face_years is None else self.face_years)

    def first_due(self, ended_at: datetime) -> datetime:
        return min(self.due(ended_at), self.faces_due(ended_at))


def _years_after(at: datetime, years: int) -> datetime:
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, month=3, day=1)


def due_shard(party_id: str) -> str:
    return str(zlib.crc32(party_id.encode()) % DUE_SHARDS)


class Subject(BaseModel):
    """A holder's retained materials: its registrations (and parties merged into it), the cards whose
    service to it ended, and when they are due (None while in service)."""

    model_config = ConfigDict(frozen=True)

    party_id: str
    registrations: frozenset[str] = frozenset()
    parties: frozenset[str] = frozenset()  # earlier parties of the same person, merged in
    iccids: frozenset[str] = frozenset()
    ended_at: datetime | None = None
    reason: str | None = None
    due_at: datetime | None = None


class PurgeCounts(BaseModel):
    """What a purge deleted (counts only: no personal data)."""

    registrations: int = 0
    flows: int = 0
    objects: int = 0
    evidence_entries: int = 0
    parties: int = 0


class PurgeRecord(BaseModel):
    """The record a purge leaves (what, when, why; no personal data): one per subject and due date, so
    two purges of the same due subject write the same record."""

    model_config = ConfigDict(frozen=True)

    party_id: str  # an opaque id: the party itself is deleted
    reason: str  # the event that ended the service (deregistration_confirmed, transferred, scrapped...)
    ended_at: datetime | None
    due_at: datetime
    started_at: datetime
    completed_at: datetime | None = None
    registration_ids: tuple[str, ...] = ()
    counts: PurgeCounts = Field(default_factory=PurgeCounts)


class PurgeReport(BaseModel):
    """One run of the purge schedule."""

    due: int = 0
    purged: int = 0
    kept_in_service: int = 0
    merged: int = 0
    faces_purged: int = 0  # subjects whose face images went before the rest (a shorter face period)
    skipped_concurrent: int = 0
    counts: PurgeCounts = Field(default_factory=PurgeCounts)
