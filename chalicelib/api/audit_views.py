"""The model of the auditors' search of the read log (``chalicelib.api.audit``). Loaded on its first use: a
cold start neither builds it nor imports the read log's domain."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel
from chalicelib.audit.domain import MAX_PAGE, RecordKind


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
