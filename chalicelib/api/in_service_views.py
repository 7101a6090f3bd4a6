"""Request models of the in-service feed's upload (loaded on first use: ``chalicelib.api.in_service``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel


class InServiceQuery(ApiModel):
    format: Annotated[
        Literal["csv", "json"] | None,
        Field(description="csv | json (default: from the Content-Type, else csv)"),
        Refusal("import.format", "文件格式应为 csv 或 json", "format must be csv or json", status=400),
    ] = None
