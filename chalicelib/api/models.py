"""The models every part of the API shares: the base of the request and response models, a page query,
the error body, a captcha answer and the query of a route that can show personal data in clear.

A cold start imports none of them (nor pydantic's model machinery): the route modules name their models
through their ``*_views`` modules, loaded on a route's first call, and those (and the OpenAPI document)
import them from here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.audit import REASON_DESCRIPTION
from chalicelib.api.http import Refusal


class ApiModel(BaseModel):
    """Base of the API's request and response models: their validators are built on first use, not at
    import, so a cold start pays only for the routes it serves."""

    model_config = ConfigDict(defer_build=True)


class PageQuery(ApiModel):
    """A list read a page at a time (queues, the enterprise's action log, a dealer's vehicles…)."""

    limit: Annotated[
        int,
        Field(ge=1, le=100, description="1–100"),
        Refusal("request.limit", "每页数量应为 1–100", "limit must be 1–100"),
    ] = 20
    cursor: str | None = Field(default=None, max_length=2000, description="next_cursor of the last page")


class ErrorBody(ApiModel):
    """Every error response."""

    code: str
    message_zh: str
    message_en: str
    field: str | None = None
    details: dict[str, Any] | None = None


class CaptchaAnswer(ApiModel):
    """A captcha answer an ask for a code may carry (needed after a few asks from one client)."""

    captcha_id: str | None = Field(
        default=None, max_length=64, description="The challenge_id of captcha.required's challenge"
    )
    captcha_answer: str | None = Field(
        default=None, max_length=16, description="The characters in the challenge's picture"
    )


class ReasonQuery(ApiModel):
    """The query of a route that can show personal data in clear."""

    reason: str | None = Field(default=None, max_length=1000, description=REASON_DESCRIPTION)
