"""The models of the enterprise-portal accounts' routes (``chalicelib.api.accounts``) and the answers
they build, loaded on their first use: a cold start of the app builds none of them, nor imports the
accounts' domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.accounts.domain import AccountKind, AccountStatus, RealNameKind
from chalicelib.api.models import ApiModel, CaptchaAnswer
from chalicelib.consents.account_models import AcceptedAccountText
from chalicelib.core import deps
from chalicelib.core.auth import Role, issue_token
from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.accounts.domain import Account
    from chalicelib.sessions.domain import IssuedSession

KIND_ZH = {
    AccountKind.UNVERIFIED: "未实名认证",
    AccountKind.NATURAL: "自然人",
    AccountKind.LEGAL: "法人",
    AccountKind.DEALER: "经销商",
}


# -- models ------------------------------------------------------------------------------------------


class SignUpPhone(CaptchaAnswer):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=20, description="Mainland mobile number to bind, 11 digits (+86 allowed)")


class AccountSignUp(ApiModel):
    model_config = ConfigDict(extra="forbid")

    login_name: str = Field(max_length=64, description="4–32 letters, digits, _ . -, starting with a letter")
    password: str = Field(max_length=128, description="9–16 characters mixing letters, digits and symbols")
    password_confirm: str = Field(max_length=128, description="The password again")
    email: str = Field(max_length=254)
    phone: str = Field(max_length=20, description="Mainland mobile number, 11 digits (+86 allowed)")
    code: str = Field(max_length=8, description="The sign-up SMS code sent to the phone")
    accepted: list[AcceptedAccountText] = Field(
        max_length=4, description="用户协议 and 隐私政策 accepted (GET /v1/account-texts)"
    )


class AccountRealName(ApiModel):
    kind: RealNameKind
    verified_at: AwareDatetime
    name_masked: str
    uscc: str | None = None
    company_name: str | None = None


class AccountView(ApiModel):
    account_id: str
    login_name: str
    kind: AccountKind
    kind_zh: str
    status: AccountStatus
    phone_masked: str
    email_masked: str
    real_name_done: bool
    real_name: AccountRealName | None = None
    enterprise_uscc: str | None = Field(
        default=None, description="The enterprise a legal-person account holds"
    )
    agent_of: str | None = Field(default=None, description="The enterprise (USCC) an approved agent acts for")
    dealer_code: str | None = None
    roles: list[Role]
    created_at: AwareDatetime


class AccountLogin(CaptchaAnswer):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(min_length=1, max_length=64, description="登录名, 统一社会信用代码 or 身份证号")
    password: str = Field(min_length=1, max_length=128)


class AccountLoginChallenge(ApiModel):
    challenge_id: str
    phone_masked: str = Field(description="Where the login code went")
    expires_in: int = Field(description="Seconds the challenge waits for the code")


class AccountLoginVerify(ApiModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=8, description="The SMS code sent to the bound phone")


class AccountSignedIn(ApiModel):
    token: str = Field(description="The access token (Bearer), short-lived")
    expires_in: int
    refresh_token: str = Field(description="Opaque; trade it at /v1/accounts/refresh (once: rotated)")
    refresh_expires_in: int
    account: AccountView


class AccountRefresh(ApiModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=256)


class AccountSignedOut(ApiModel):
    signed_out: bool


class AccountSession(ApiModel):
    session_id: str
    kind: str
    created_at: AwareDatetime
    last_used_at: AwareDatetime
    expires_at: AwareDatetime
    current: bool


class AccountSessions(ApiModel):
    sessions: list[AccountSession]


class AccountSessionsEnded(ApiModel):
    ended: int


class AccountPatch(ApiModel):
    model_config = ConfigDict(extra="forbid")

    login_name: str | None = Field(default=None, max_length=64, description="Refused: fixed at sign-up")
    email: str | None = Field(default=None, max_length=254)


class AccountPasswordChange(ApiModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=128)
    new: str = Field(max_length=128)


class AccountPasswordChanged(ApiModel):
    changed: bool
    other_sessions_ended: int


class AccountPasswordReset(CaptchaAnswer):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(min_length=1, max_length=64, description="登录名, 统一社会信用代码 or 身份证号")


class AccountResetSent(ApiModel):
    sent: bool = Field(description="Always true: nothing says whether the identifier names an account")


class AccountResetConfirm(ApiModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=8)
    new: str = Field(max_length=128)


class AccountResetDone(ApiModel):
    reset: bool


# -- answers -----------------------------------------------------------------------------------------


def account_view(account: Account) -> AccountView:
    """The account as its owner sees it: phone and e-mail masked, the roles it holds now."""
    accounts = deps.accounts()
    record = account.real_name
    real_name = (
        AccountRealName(
            kind=record.kind,
            verified_at=record.verified_at,
            name_masked=record.display_name_masked,
            uscc=record.uscc,
            company_name=record.company_name,
        )
        if record is not None
        else None
    )
    return AccountView(
        account_id=account.account_id,
        login_name=account.login_name,
        kind=account.kind,
        kind_zh=KIND_ZH[account.kind],
        status=account.status,
        phone_masked=account.phone_masked,
        email_masked=account.email_masked,
        real_name_done=record is not None,
        real_name=real_name,
        enterprise_uscc=account.enterprise_uscc,
        agent_of=accounts.agent_enterprise(account),
        dealer_code=account.dealer_code,
        roles=sorted(accounts.roles_of(account)),
        created_at=account.created_at,
    )


def signed_in(account: Account, issued: IssuedSession) -> AccountSignedIn:
    """The tokens of a new or refreshed session, minted from the account as it stands now."""
    settings = get_settings()
    roles, claims = deps.accounts().token_grant(account, issued.session.session_id)
    ttl = settings.account_token_ttl_seconds
    return AccountSignedIn(
        token=issue_token(settings, account.account_id, roles, ttl_seconds=ttl, claims=claims),
        expires_in=ttl,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        account=account_view(account),
    )
