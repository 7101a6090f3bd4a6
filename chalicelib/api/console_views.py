"""The models of the review console's routes (``chalicelib.api.console``), loaded on their first use: a
cold start of the app builds none of them and imports neither the document links nor their
watermark."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field

from chalicelib.api.models import ApiModel
from chalicelib.audit.document_views import DocumentRecord


class DocumentLinkBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    record_kind: Annotated[
        DocumentRecord,
        Field(description="fleet_case | review_case | spot_check"),
    ]
    record_id: str = Field(min_length=1, max_length=128)
    document: str = Field(
        min_length=1,
        max_length=64,
        description="the document's kind (id_front, business_licence, live_capture…; a fleet case's slot)",
    )
    flow_id: str | None = Field(
        default=None, max_length=64, description="spot checks: which of the registration's flows"
    )
    reason: str | None = Field(
        default=None,
        max_length=1000,
        description="查阅原因 recorded at each view (4–200 characters, no phone or ID numbers); "
        "default: reviewing the case",
    )


class DocumentLinkView(ApiModel):
    url: str = Field(description="/v1/console/documents/{token}: follow it within 60 seconds")
    expires_at: datetime
