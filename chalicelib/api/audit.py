"""The personal-data read log (查阅日志): how a route shows personal data in clear, and the auditors' search.

The rule, the same on every route that can show personal data in clear: staff whose role may read in
clear get it only when they give ``?reason=`` (4–200 characters, no phone or ID numbers); without one
they get the masked answer and nothing is recorded. Every read in clear writes one read-log item per
record before the answer leaves (``record_reads``); when it cannot be written the answer is 503
``audit.unavailable`` and nothing is shown. A person reading their own data back (the OCR reading of
their ID card) is recorded with the reason ``self``.

``GET /v1/audit/reads`` lets auditors search the log by actor, by record or by time, a page at a time;
the log holds no personal value, so the answer masks nothing, and reading it is not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.api.middleware import correlation_id_of
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role

if TYPE_CHECKING:
    from chalicelib.api import audit_views as views
    from chalicelib.audit import domain
    from chalicelib.audit.domain import Read, ReadPage, RecordKind
else:
    views = lazy.module("chalicelib.api.audit_views")
    domain = lazy.module("chalicelib.audit.domain")

bp = Blueprint(__name__)

AUDIT_ROLES = frozenset({Role.AUDITOR})

REASON_DESCRIPTION = (
    "查阅原因: personal data is shown in clear only with a reason (4–200 characters, no phone or ID "
    "numbers), and the read is recorded; without one the answer is masked"
)


def reveal_reason(call: Call, may_reveal: bool = True) -> str | None:
    """The caller's checked reason to read in clear, or None for the masked answer (no reason given, or a
    role that never reads in clear). A reason that is not one is refused (422 ``audit.reason_*``)."""
    given = getattr(call.query, "reason", None)
    if given is None:
        return None
    from chalicelib.audit.domain import reason_text

    reason = reason_text(given)
    return reason if may_reveal else None


def record_reads(call: Call, reads: Sequence[Read], reason: str) -> None:
    """Record the reads in clear of this answer, before it leaves (503 when they cannot be recorded)."""
    request = call.request
    deps.read_log().record_many(
        call.user,
        reads,
        reason,
        route=f"{request.method} {request.path}",
        correlation_id=correlation_id_of(request),
    )


def read_of(record_kind: RecordKind, record_id: str, fields: Sequence[str]) -> Read | None:
    """One record read in clear, or None when no field of it was shown in clear."""
    from chalicelib.audit.domain import Read

    return Read(record_kind=record_kind, record_id=record_id, fields=tuple(fields)) if fields else None


@route(
    bp,
    "/v1/audit/reads",
    summary="The personal-data read log (查阅日志): reads in clear by actor, by record or by time, newest "
    "first, paginated",
    roles=AUDIT_ROLES,
    response=lambda: domain.ReadPage,
    query=lambda: views.ReadsQuery,
    errors=(422,),
    tags=("audit",),
)
def search_reads(call: Call) -> ReadPage:
    from chalicelib.audit.domain import ReadSearch, search_range
    from chalicelib.kernel.clock import utc_now
    from chalicelib.kernel.errors import InvalidField

    query: views.ReadsQuery = call.query
    if (query.record_kind is None) != (not query.record_id):
        raise InvalidField(
            "audit.record_incomplete",
            "按记录查询时请同时提供记录类型和记录编号",
            "Give record_kind and record_id together",
            field="record_id" if query.record_kind is not None else "record_kind",
        )
    since, until = search_range(query.since, query.until, utc_now())
    search = ReadSearch(
        actor=query.actor or None,
        record_kind=query.record_kind,
        record_id=query.record_id or None,
        since=since,
        until=until,
        limit=query.limit,
        cursor=query.cursor or None,
    )
    return deps.read_log().search(search)
