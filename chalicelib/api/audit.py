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
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, Field

from chalicelib.api.http import ApiModel, Blueprint, Call, Refusal, route
from chalicelib.api.middleware import correlation_id_of
from chalicelib.audit.domain import MAX_PAGE, ReadPage, RecordKind
from chalicelib.core import deps
from chalicelib.core.auth import Role

if TYPE_CHECKING:
    from chalicelib.audit.domain import Read

bp = Blueprint(__name__)

AUDIT_ROLES = frozenset({Role.AUDITOR})

REASON_DESCRIPTION = (
    "查阅原因: personal data is shown in clear only with a reason (4–200 characters, no phone or ID "
    "numbers), and the read is recorded; without one the answer is masked"
)


class ReasonQuery(ApiModel):
    """The query of a route that can show personal data in clear."""

    reason: str | None = Field(default=None, max_length=1000, description=REASON_DESCRIPTION)


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


class ReadsQuery(ApiModel):
    actor: str | None = Field(default=None, max_length=128, description="who read (token subject)")
    record_kind: Annotated[
        RecordKind | None,
        Field(description="flow | card | complaint | document_file (with record_id)"),
        Refusal("audit.record_kind", "记录类型无效", "Unknown record kind"),
    ] = None
    record_id: str | None = Field(
        default=None, max_length=128, description="the record's id (with record_kind)"
    )
    since: Annotated[
        AwareDatetime | None,
        Field(description="ISO 8601 with a time zone (default: 30 days before until)"),
        Refusal("audit.since", "开始时间应为带时区的 ISO 8601 时间", "since: an ISO 8601 time with a zone"),
    ] = None
    until: Annotated[
        AwareDatetime | None,
        Field(description="ISO 8601 with a time zone (default: now)"),
        Refusal("audit.until", "结束时间应为带时区的 ISO 8601 时间", "until: an ISO 8601 time with a zone"),
    ] = None
    limit: Annotated[
        int,
        Field(ge=1, le=MAX_PAGE, description=f"1–{MAX_PAGE}"),
        Refusal("request.limit", f"每页数量应为 1–{MAX_PAGE}", f"limit must be 1–{MAX_PAGE}"),
    ] = 50
    cursor: str | None = Field(default=None, max_length=2000, description="next page")


@route(
    bp,
    "/v1/audit/reads",
    summary="The personal-data read log (查阅日志): reads in clear by actor, by record or by time, newest "
    "first, paginated",
    roles=AUDIT_ROLES,
    response=ReadPage,
    query=ReadsQuery,
    errors=(422,),
    tags=("audit",),
)
def search_reads(call: Call) -> ReadPage:
    from chalicelib.audit.domain import ReadSearch, search_range
    from chalicelib.kernel.clock import utc_now
    from chalicelib.kernel.errors import InvalidField

    query: ReadsQuery = call.query
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
