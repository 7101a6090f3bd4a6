"""The read log on DynamoDB: one item per read, searched through its time-sorted indexes (never scanned).

A cursor is the page's last key with the search it belongs to (base64 JSON; the filters, not the time
range, which defaults to "until now"): a cursor given to another search is refused (``audit.cursor``)
rather than answered from the wrong place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.pagination import ResultIterator

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_audit import ReadLogModel
from chalicelib.audit.domain import ReadEntry, RecordKind, cursor_invalid
from chalicelib.audit.ports import ReadLogStore


def _utc_day(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def _entry(item: ReadLogModel) -> ReadEntry:
    return ReadEntry(
        read_id=item.read_id,
        actor=item.actor,
        roles=tuple(item.roles or ()),
        issuer=item.issuer,
        at=utc_aware(item.at),
        record_kind=RecordKind(item.record_kind),
        record_id=item.record_id,
        fields=tuple(item.fields or ()),
        reason=item.reason,
        route=item.route or "",
        correlation_id=item.correlation_id or "",
    )


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def _encode(search: str, position: dict[str, Any]) -> str:
    doc = json.dumps({"q": search, **position}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def _decode(search: str, cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise cursor_invalid() from exc
    if not isinstance(doc, dict) or doc.get("q") != search:
        raise cursor_invalid()
    key = doc.get("key")
    if key is not None and not (
        isinstance(key, dict) and all(isinstance(v, dict) and set(v) == {"S"} for v in key.values())
    ):
        raise cursor_invalid()
    return doc


def _page(results: ResultIterator[ReadLogModel], limit: int) -> tuple[list[ReadEntry], dict[str, Any] | None]:
    found = [_entry(item) for item in results]
    key = results.last_evaluated_key if len(found) >= limit else None
    return found, key


class DynamoReadLogStore(ReadLogStore):
    def add(self, entries: Sequence[ReadEntry], expires_at: datetime) -> None:
        epoch = int(expires_at.timestamp())
        items = [
            ReadLogModel(
                e.read_id,
                actor=e.actor,
                roles=list(e.roles),
                issuer=e.issuer,
                at=e.at,
                day=_utc_day(e.at),
                record_kind=e.record_kind.value,
                record_id=e.record_id,
                record_key=f"{e.record_kind.value}#{e.record_id}",
                fields=list(e.fields),
                reason=e.reason,
                route=e.route or None,
                correlation_id=e.correlation_id or None,
                expires_epoch=epoch,
            )
            for e in entries
        ]
        if len(items) == 1:
            items[0].save()
            return
        with ReadLogModel.batch_write() as batch:
            for item in items:
                batch.save(item)

    def _query(
        self,
        index: Any,
        hash_key: str,
        search: str,
        since: datetime,
        until: datetime,
        limit: int,
        cursor: str | None,
        actor: str | None = None,
    ) -> tuple[list[ReadEntry], str | None]:
        start = _decode(search, cursor)["key"] if cursor else None
        results = index.query(
            hash_key,
            ReadLogModel.at.between(since, until),
            filter_condition=(ReadLogModel.actor == actor) if actor else None,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
        )
        found, key = _page(results, limit)
        return found, _encode(search, {"key": key}) if key else None

    def by_actor(
        self, actor: str, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        search = _fingerprint("actor", actor)
        return self._query(ReadLogModel.by_actor, actor, search, since, until, limit, cursor)

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
        search = _fingerprint("record", kind.value, record_id, actor)
        record_key = f"{kind.value}#{record_id}"
        return self._query(ReadLogModel.by_record, record_key, search, since, until, limit, cursor, actor)

    def by_time(
        self, since: datetime, until: datetime, limit: int, cursor: str | None
    ) -> tuple[list[ReadEntry], str | None]:
        search = _fingerprint("time")
        days = list(_days_back(until, since))
        day: str = days[0]
        start: dict[str, Any] | None = None
        if cursor:
            position = _decode(search, cursor)
            if position.get("day") not in days:
                raise cursor_invalid()
            day, start = str(position["day"]), position.get("key")
        found: list[ReadEntry] = []
        for index in range(days.index(day), len(days)):
            results = ReadLogModel.by_day.query(
                days[index],
                ReadLogModel.at.between(since, until),
                scan_index_forward=False,
                limit=limit - len(found),
                last_evaluated_key=start,
            )
            page, key = _page(results, limit - len(found))
            found.extend(page)
            start = None
            if len(found) >= limit:
                if key:
                    return found, _encode(search, {"day": days[index], "key": key})
                if index + 1 < len(days):
                    return found, _encode(search, {"day": days[index + 1], "key": None})
                return found, None
        return found, None


def _days_back(until: datetime, since: datetime) -> Iterator[str]:
    """The UTC days from ``until``'s back to ``since``'s."""
    day = until.astimezone(UTC).date()
    first = since.astimezone(UTC).date()
    while day >= first:
        yield day.isoformat()
        day -= timedelta(days=1)
