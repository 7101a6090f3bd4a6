"""Enterprise-portal accounts (账号, seed 001): sign-up, the two-step login, sessions and passwords.

Sign-up and a login's first step need no token. Every access token of an account is minted — at the
login's second step and at every refresh — from the account as it stands then (``Accounts.roles_of`` and
``claims_of``): an account that just finished real-name authentication, or was approved as an agent,
gets its new role at the next refresh, and a disabled one gets none. Account tokens are short-lived and
the routes below also check that the token's session (``sid``) is not revoked, so signing out
everywhere stops them at once. The login name is fixed at sign-up: no route changes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.accounts.domain import AccountKind, AccountStatus, RealNameKind
from chalicelib.api.clients import CaptchaAnswer, asking_for_codes
from chalicelib.api.http import ApiModel, Blueprint, Call, route
from chalicelib.consents.account_models import AcceptedAccountText
from chalicelib.core import deps
from chalicelib.core.auth import Principal, Role, issue_token
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.clock import utc_now
from chalicelib.sms.domain import SentCode

if TYPE_CHECKING:
    from chalicelib.accounts.domain import Account
    from chalicelib.sessions.domain import IssuedSession

bp = Blueprint(__name__)

#: Any signed-in portal account, whatever else it may be.
ACCOUNT = frozenset({Role.ACCOUNT})

KIND_ZH = {
    AccountKind.UNVERIFIED: "未实名认证",
    AccountKind.NATURAL: "自然人",
    AccountKind.LEGAL: "法人",
    AccountKind.DEALER: "经销商",
}


def require_live_session(principal: Principal) -> None:
    """A portal account's token is honoured only while its sign-in session lives (one read)."""
    deps.accounts().require_live_session(principal)


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


# -- views -------------------------------------------------------------------------------------------


def _view(account: Account) -> AccountView:
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


def _signed_in(account: Account, issued: IssuedSession) -> AccountSignedIn:
    settings = get_settings()
    roles, claims = deps.accounts().token_grant(account, issued.session.session_id)
    ttl = settings.account_token_ttl_seconds
    return AccountSignedIn(
        token=issue_token(settings, account.account_id, roles, ttl_seconds=ttl, claims=claims),
        expires_in=ttl,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        account=_view(account),
    )


def _me(call: Call) -> Account:
    require_live_session(call.user)
    account = deps.accounts().get(call.user.subject)
    if account is None or not account.active:
        from chalicelib.accounts.domain import account_disabled

        raise account_disabled()
    return account


# -- sign-up -----------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/sms-codes",
    method="POST",
    summary="Send a sign-up SMS code to the phone to bind (no token; the same answer for every phone)",
    roles=None,
    body=SignUpPhone,
    response=SentCode,
    status=202,
    errors=(428, 429, 503),
    tags=("accounts",),
)
def send_signup_code(call: Call) -> SentCode:
    body: SignUpPhone = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        return deps.accounts().send_signup_code(body.phone)


@route(
    bp,
    "/v1/accounts",
    method="POST",
    summary="Sign up: login name (fixed afterwards), password, e-mail, phone + SMS code, the texts accepted",
    roles=None,
    body=AccountSignUp,
    response=AccountView,
    status=201,
    errors=(409, 429),
    tags=("accounts",),
)
def sign_up(call: Call) -> AccountView:
    from chalicelib.accounts.domain import SignUp
    from chalicelib.consents.account import check_account_texts  # the texts: not at a cold start
    from chalicelib.kernel.errors import InvalidField

    body: AccountSignUp = call.body
    errors: list[InvalidField] = []
    try:
        check_account_texts(body.accepted)
    except InvalidField as exc:
        errors.append(exc)
    form = SignUp(
        login_name=body.login_name, password=body.password, email=body.email, phone=body.phone, code=body.code
    )
    account = deps.accounts().sign_up(form, body.password_confirm, errors=errors)
    deps.account_consents().record(account.account_id, body.accepted, utc_now())
    logger.info("account signed up", extra={"account_id": account.account_id})
    return _view(account)


# -- login -------------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/login",
    method="POST",
    summary="Login, step one: identifier + password; when right, a code goes to the bound phone",
    roles=None,
    body=AccountLogin,
    response=AccountLoginChallenge,
    status=202,
    errors=(401, 423, 428, 429, 503),
    tags=("accounts",),
)
def login(call: Call) -> AccountLoginChallenge:
    body: AccountLogin = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        challenge, phone_masked = deps.accounts().start_login(body.identifier, body.password)
    logger.info("account password accepted", extra={"account_id": challenge.account_id})
    return AccountLoginChallenge(
        challenge_id=challenge.challenge_id,
        phone_masked=phone_masked,
        expires_in=int((challenge.expires_at - challenge.created_at).total_seconds()),
    )


@route(
    bp,
    "/v1/accounts/login/verify",
    method="POST",
    summary="Login, step two: the SMS code of the challenge; an access token, a refresh token, the account",
    roles=None,
    body=AccountLoginVerify,
    response=AccountSignedIn,
    errors=(401, 423),
    tags=("accounts",),
)
def login_verify(call: Call) -> AccountSignedIn:
    body: AccountLoginVerify = call.body
    account, issued = deps.accounts().verify_login(body.challenge_id, body.code)
    logger.info(
        "account signed in", extra={"account_id": account.account_id, "session_id": issued.session.session_id}
    )
    return _signed_in(account, issued)


@route(
    bp,
    "/v1/accounts/refresh",
    method="POST",
    summary="Trade the refresh token for new tokens minted from the account's current roles",
    roles=None,
    body=AccountRefresh,
    response=AccountSignedIn,
    errors=(401,),
    tags=("accounts",),
)
def refresh(call: Call) -> AccountSignedIn:
    body: AccountRefresh = call.body
    account, issued = deps.accounts().refresh(body.refresh_token)
    return _signed_in(account, issued)


@route(
    bp,
    "/v1/accounts/logout",
    method="POST",
    summary="Sign out: the session of the refresh token ends (answers the same for any token)",
    roles=None,
    body=AccountRefresh,
    response=AccountSignedOut,
    tags=("accounts",),
)
def logout(call: Call) -> AccountSignedOut:
    body: AccountRefresh = call.body
    deps.accounts().logout(body.refresh_token)
    return AccountSignedOut(signed_out=True)


# -- the signed-in account ---------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/me",
    summary="The signed-in account: login name, kind, masked phone and e-mail, real-name status, roles",
    roles=ACCOUNT,
    response=AccountView,
    tags=("accounts",),
)
def me(call: Call) -> AccountView:
    return _view(_me(call))


@route(
    bp,
    "/v1/accounts/me",
    method="PATCH",
    summary="Change the e-mail (the login name is fixed: 422 account.login_name_immutable)",
    roles=ACCOUNT,
    body=AccountPatch,
    response=AccountView,
    errors=(422,),
    tags=("accounts",),
)
def patch_me(call: Call) -> AccountView:
    body: AccountPatch = call.body
    account = _me(call)
    if body.login_name is not None:
        from chalicelib.accounts.domain import login_name_immutable

        raise login_name_immutable()
    if body.email is not None:
        account = deps.accounts().change_email(account.account_id, body.email)
    return _view(account)


@route(
    bp,
    "/v1/accounts/me/sessions",
    summary="The account's open sessions (kind, created, last used, the current one flagged; no token)",
    roles=ACCOUNT,
    response=AccountSessions,
    tags=("accounts",),
)
def my_sessions(call: Call) -> AccountSessions:
    _me(call)
    current = call.user.session_id
    return AccountSessions(
        sessions=[
            AccountSession(
                session_id=s.session_id,
                kind=s.kind.value,
                created_at=s.created_at,
                last_used_at=s.rotated_at,
                expires_at=s.ends_at(),
                current=s.session_id == current,
            )
            for s in deps.accounts().sessions_of(call.user.subject)
        ]
    )


@route(
    bp,
    "/v1/accounts/me/sessions/{session_id}",
    method="DELETE",
    summary="End one of the account's sessions (another device)",
    roles=ACCOUNT,
    response=AccountSignedOut,
    errors=(404,),
    tags=("accounts",),
)
def end_session(call: Call, session_id: str) -> AccountSignedOut:
    _me(call)
    deps.accounts().revoke_session(call.user.subject, session_id)
    logger.info("account session ended", extra={"account_id": call.user.subject, "session_id": session_id})
    return AccountSignedOut(signed_out=True)


@route(
    bp,
    "/v1/accounts/me/sessions/revoke-all",
    method="POST",
    summary="Sign out everywhere: every session of the account ends, this one too",
    roles=ACCOUNT,
    response=AccountSessionsEnded,
    tags=("accounts",),
)
def revoke_all(call: Call) -> AccountSessionsEnded:
    _me(call)
    ended = deps.accounts().revoke_all(call.user.subject)
    logger.info("account signed out everywhere", extra={"account_id": call.user.subject, "ended": ended})
    return AccountSessionsEnded(ended=ended)


# -- passwords ---------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/me/password",
    method="POST",
    summary="Change the password (the current one proves it); every other session ends",
    roles=ACCOUNT,
    body=AccountPasswordChange,
    response=AccountPasswordChanged,
    errors=(423,),
    tags=("accounts",),
)
def change_password(call: Call) -> AccountPasswordChanged:
    body: AccountPasswordChange = call.body
    _me(call)
    ended = deps.accounts().change_password(call.user, body.current, body.new)
    logger.info("account password changed", extra={"account_id": call.user.subject, "ended": ended})
    return AccountPasswordChanged(changed=True, other_sessions_ended=ended)


@route(
    bp,
    "/v1/accounts/password-reset",
    method="POST",
    summary="Forgotten password: a reset code to the bound phone (the same answer whether it exists)",
    roles=None,
    body=AccountPasswordReset,
    response=AccountResetSent,
    status=202,
    errors=(428, 429),
    tags=("accounts",),
)
def start_reset(call: Call) -> AccountResetSent:
    body: AccountPasswordReset = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        deps.accounts().start_reset(body.identifier)
    return AccountResetSent(sent=True)


@route(
    bp,
    "/v1/accounts/password-reset/confirm",
    method="POST",
    summary="Set a new password with the reset code: every session ends and the lock is lifted",
    roles=None,
    body=AccountResetConfirm,
    response=AccountResetDone,
    tags=("accounts",),
)
def confirm_reset(call: Call) -> AccountResetDone:
    body: AccountResetConfirm = call.body
    account = deps.accounts().confirm_reset(body.identifier, body.code, body.new)
    logger.info("account password reset", extra={"account_id": account.account_id})
    return AccountResetDone(reset=True)
