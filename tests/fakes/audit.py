"""An in-memory read log (``ReadLogStore``): newest first, paged by position; it can be told to fail."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from chalicelib.audit.domain import ReadEntry, RecordKind, cursor_invalid
from chalicelib.audit.ports import ReadLogStore


class FakeReadLogStore(ReadLogStore):
    def __init__(self) -> None:
        self.entries: list[ReadEntry] = []
        self.expiries: dict[str, datetime] = {}
        self.failing = False

    def add(self, entries: Sequence[ReadEntry], expires_at: datetime) -> None:
        if self.failing:
            raise ConnectionError("the table cannot be reached")
        for entry in entries:
            self.entries.append(entry)
            self.expiries[entry.read_id] = expires_at

    def _page(
        self,
        keep: Callable[[ReadEntry], bool],
        since: datetime,
        until: datetime,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[ReadEntry], str | None]:
        found = sorted(
            (e for e in self.entries if keep(e) and since <= e.at <= until), key=lambda e: e.at, reverse=True
        )
        if cursor is not None and not cursor.isdigit():
            raise cursor_invalid()
        start = int(cursor or 0)
        page = found[start : start + limit]
        return page, str(start + limit) if start + limit < len(found) else None

    def by_actor(
        self, actor: str, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        return self._page(lambda e: e.actor == actor, since, until, limit, cursor)

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
        def keep(e: ReadEntry) -> bool:
            return (e.record_kind, e.record_id) == (kind, record_id) and actor in (None, e.actor)

        return self._page(keep, since, until, limit, cursor)

    def by_time(
        self, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        return self._page(lambda e: True, since, until, limit, cursor)
