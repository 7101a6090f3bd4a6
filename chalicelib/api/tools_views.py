"""The models of the tools' routes (``chalicelib.api.tools``): a value to check, who the caller is.
Loaded on their first use: a cold start builds none of them."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from chalicelib.api.models import ApiModel


class ValueToCheck(ApiModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    value: str = Field(max_length=64)


class Me(ApiModel):
    subject: str
    roles: list[str]
