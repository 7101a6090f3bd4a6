"""The models of the platform's own texts accepted at login (用户协议, 隐私政策), apart from the texts and
their rules (``account``): the login request and the texts' route declare them, and a cold start
imports neither the files nor the consent rules."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class AccountTextKind(StrEnum):
    USER_AGREEMENT = "user_agreement"  # 用户协议
    PRIVACY_POLICY = "privacy_policy"  # 隐私政策


class AccountText(BaseModel):
    """A versioned platform text as served."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: AccountTextKind
    version: str
    title: str
    sha256: str
    text: str


class AcceptedAccountText(BaseModel):
    """What the client says the person accepted at login."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    kind: AccountTextKind
    version: str = Field(min_length=1, max_length=16)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
