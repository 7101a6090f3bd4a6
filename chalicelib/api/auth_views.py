"""The models of the phone login's routes (``chalicelib.api.auth``): the SMS code asks, the owner's
login and sessions, the local SMS drop. Loaded on their first use: a cold start builds none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, CaptchaAnswer
from chalicelib.consents.account_models import AcceptedAccountText
from chalicelib.core.auth import Role, issue_token
from chalicelib.sms.domain import SmsPurpose
from chalicelib.sms.views import DroppedSms

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings
    from chalicelib.sessions.domain import IssuedSession

#: Messages the dev SMS drop lists at most.
MAX_DROP_MESSAGES = 100


class SmsCodeRequest(CaptchaAnswer):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=20, description="Mainland mobile number, 11 digits (+86 allowed)")
    purpose: SmsPurpose


class LoginRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=20, description="Mainland mobile number, 11 digits (+86 allowed)")
    code: str = Field(min_length=4, max_length=8, pattern=r"^[0-9]+$", description="The SMS code")
    accepted: list[AcceptedAccountText] | None = Field(
        default=None,
        max_length=4,
        description="用户协议 and 隐私政策 accepted (GET /v1/account-texts): checked, then recorded",
    )


class LoginResult(ApiModel):
    token: str = Field(description="The access token (Bearer), short-lived")
    expires_in: int = Field(description="Seconds the access token is valid")
    subject: str
    refresh_token: str = Field(
        description="Opaque; trade it at /v1/auth/refresh for a new pair (once: each is rotated)"
    )
    refresh_expires_in: int = Field(description="Seconds the session lasts unless refreshed or ended")


def signed_in(settings: Settings, issued: IssuedSession) -> LoginResult:
    """An owner's tokens for the session ``issued``."""
    session = issued.session
    roles = [Role(r) for r in session.roles]
    return LoginResult(
        token=issue_token(settings, session.subject, roles),
        expires_in=settings.token_ttl_seconds,
        subject=session.subject,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
    )


class RefreshRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=256, description="The refresh token last given")


class SignedOut(ApiModel):
    signed_out: bool


class SessionsEnded(ApiModel):
    ended: int = Field(description="How many sessions ended")


class SmsDropView(ApiModel):
    messages: list[DroppedSms]


class SmsDropQuery(ApiModel):
    limit: Annotated[
        int,
        Field(ge=1, le=MAX_DROP_MESSAGES, description=f"1–{MAX_DROP_MESSAGES} (default 20)"),
        Refusal(
            "request.limit", f"每页数量应为 1–{MAX_DROP_MESSAGES}", f"limit must be 1–{MAX_DROP_MESSAGES}"
        ),
    ] = 20
