"""What the read log needs from the outside world: where its items are kept and searched."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from chalicelib.audit.domain import ReadEntry, RecordKind


class ReadLogStore(ABC):
    """Read-log items, kept until ``expires_at``; searched through indexes, newest first, never scanned.

    A cursor is the store's own opaque text; one that does not belong to the search raises
    ``cursor_invalid()``."""

    @abstractmethod
    def add(self, entries: Sequence[ReadEntry], expires_at: datetime) -> None:
        """Keep every entry, or raise (the read is then not answered)."""

    @abstractmethod
    def by_actor(
        self, actor: str, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        """One reader's reads in the range."""

    @abstractmethod
    def by_record(
        self,
        kind: RecordKind,
        record_id: str,
        since: datetime,
        until: datetime,
        limit: int,
        cursor: str | None,
        actor: str | None = None,
    ) -> tuple[list[ReadEntry], str | None]:
        """The reads of one record in the range (of one reader only, with ``actor``)."""

    @abstractmethod
    def by_time(
        self, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        """Every read in the range (at most ``MAX_RANGE``)."""
