"""The models of the health route (``chalicelib.api.system``): each dependency's check and the answer.
Loaded on their first use: a cold start builds none of them."""

from __future__ import annotations

from typing import Literal

from chalicelib.api.models import ApiModel


class DependencyHealth(ApiModel):
    ok: bool
    ms: float
    error: str | None = None
    #: False for a dependency the API serves without (an operator not configured: its pushes wait).
    required: bool = True


class Health(ApiModel):
    """``status`` for everyone (``down``: a required dependency failed, 503); an admin also gets the
    stage and each dependency's check."""

    status: Literal["ok", "down"]
    stage: str | None = None
    checks: dict[str, DependencyHealth] | None = None
