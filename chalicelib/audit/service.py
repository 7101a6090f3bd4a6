"""Recording reads of personal data in clear, and the auditors' search.

``ReadLog.record`` is called before an answer carrying personal data in clear leaves: if the item cannot
be written, it raises ``audit.unavailable`` (503) and the caller answers that instead, never an
unrecorded read. Items are kept ``retention_years`` (a TTL): longer than the records they name may live
(第十八条: the card's service plus two years), see ``Settings.read_log_retention_years``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from chalicelib.audit.domain import (
    SELF_REASON,
    Read,
    ReadEntry,
    ReadPage,
    ReadSearch,
    RecordKind,
    check_time_only_range,
    read_log_unavailable,
    reason_text,
)
from chalicelib.audit.ports import ReadLogStore
from chalicelib.core.auth import Principal
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import DomainError


def _years_after(at: datetime, years: int) -> datetime:
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, month=3, day=1)


class ReadLog:
    """Records who read which record's personal fields in clear, when and why; searched by auditors."""

    def __init__(self, store: ReadLogStore, *, retention_years: int, clock: Clock = utc_now) -> None:
        self._store = store
        self._years = retention_years
        self._clock = clock

    def record(
        self,
        principal: Principal,
        record_kind: RecordKind,
        record_id: str,
        fields: Sequence[str],
        reason: str,
        *,
        route: str = "",
        correlation_id: str = "",
    ) -> ReadEntry:
        """Record one read in clear (see ``record_many``)."""
        read = Read(record_kind=record_kind, record_id=record_id, fields=tuple(fields))
        return self.record_many(principal, [read], reason, route=route, correlation_id=correlation_id)[0]

    def record_many(
        self,
        principal: Principal,
        reads: Sequence[Read],
        reason: str,
        *,
        route: str = "",
        correlation_id: str = "",
    ) -> list[ReadEntry]:
        """Record the reads of one answer, one item per record, all before the answer leaves; raises
        ``audit.reason_*`` (422) for a reason that is not one, ``audit.unavailable`` (503) when the items
        cannot be written."""
        if not reads:
            return []
        why = reason if reason == SELF_REASON else reason_text(reason)
        now = self._clock()
        entries = [
            ReadEntry(
                read_id=uuid.uuid4().hex,
                actor=principal.subject,
                roles=tuple(sorted(r.value for r in principal.roles)),
                issuer=principal.issuer,
                at=now,
                record_kind=read.record_kind,
                record_id=read.record_id,
                fields=tuple(sorted(set(read.fields))),
                reason=why,
                route=route[:200],
                correlation_id=correlation_id[:64],
            )
            for read in reads
        ]
        try:
            self._store.add(entries, _years_after(now, self._years))
        except DomainError:
            raise
        except Exception as exc:
            logger.exception(
                "read log write failed",
                extra={"reads": len(entries), "record_kind": reads[0].record_kind.value},
            )
            raise read_log_unavailable() from exc
        for kind, count in Counter(entry.record_kind.value for entry in entries).items():
            emit(Metric.PERSONAL_DATA_READ, float(count), record_kind=kind)
        return entries

    def search(self, query: ReadSearch) -> ReadPage:
        """Newest first: by record (and actor), by actor, or by time alone (at most ``MAX_RANGE``)."""
        if query.record_kind is not None and query.record_id:
            found, cursor = self._store.by_record(
                query.record_kind,
                query.record_id,
                query.since,
                query.until,
                query.limit,
                query.cursor,
                actor=query.actor,
            )
        elif query.actor:
            found, cursor = self._store.by_actor(
                query.actor, query.since, query.until, query.limit, query.cursor
            )
        else:
            check_time_only_range(query.since, query.until)
            found, cursor = self._store.by_time(query.since, query.until, query.limit, query.cursor)
        return ReadPage(reads=found, next_cursor=cursor)
