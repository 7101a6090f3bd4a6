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

from chalicelib.api.clients import asking_for_codes
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import utc_now

if TYPE_CHECKING:
    from chalicelib.accounts.domain import Account
    from chalicelib.api import accounts_views as views
    from chalicelib.sms import domain as sms
else:
    views = lazy.module("chalicelib.api.accounts_views")
    sms = lazy.module("chalicelib.sms.domain")

bp = Blueprint(__name__)

#: Any signed-in portal account, whatever else it may be.
ACCOUNT = frozenset({Role.ACCOUNT})


def require_live_session(principal: Principal) -> None:
    """A portal account's token is honoured only while its sign-in session lives (one read)."""
    deps.accounts().require_live_session(principal)


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
    body=lambda: views.SignUpPhone,
    response=lambda: sms.SentCode,
    status=202,
    errors=(428, 429, 503),
    tags=("accounts",),
)
def send_signup_code(call: Call) -> sms.SentCode:
    body: views.SignUpPhone = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        return deps.accounts().send_signup_code(body.phone)


@route(
    bp,
    "/v1/accounts",
    method="POST",
    summary="Sign up: login name (fixed afterwards), password, e-mail, phone + SMS code, the texts accepted",
    roles=None,
    body=lambda: views.AccountSignUp,
    response=lambda: views.AccountView,
    status=201,
    errors=(409, 429),
    tags=("accounts",),
)
def sign_up(call: Call) -> views.AccountView:
    from chalicelib.accounts.domain import SignUp
    from chalicelib.consents.account import check_account_texts  # the texts: not at a cold start
    from chalicelib.kernel.errors import InvalidField

    body: views.AccountSignUp = call.body
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
    return views.account_view(account)


# -- login -------------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/login",
    method="POST",
    summary="Login, step one: identifier + password; when right, a code goes to the bound phone",
    roles=None,
    body=lambda: views.AccountLogin,
    response=lambda: views.AccountLoginChallenge,
    status=202,
    errors=(401, 423, 428, 429, 503),
    tags=("accounts",),
)
def login(call: Call) -> views.AccountLoginChallenge:
    body: views.AccountLogin = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        challenge, phone_masked = deps.accounts().start_login(body.identifier, body.password)
    logger.info("account password accepted", extra={"account_id": challenge.account_id})
    return views.AccountLoginChallenge(
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
    body=lambda: views.AccountLoginVerify,
    response=lambda: views.AccountSignedIn,
    errors=(401, 423),
    tags=("accounts",),
)
def login_verify(call: Call) -> views.AccountSignedIn:
    body: views.AccountLoginVerify = call.body
    account, issued = deps.accounts().verify_login(body.challenge_id, body.code)
    logger.info(
        "account signed in", extra={"account_id": account.account_id, "session_id": issued.session.session_id}
    )
    return views.signed_in(account, issued)


@route(
    bp,
    "/v1/accounts/refresh",
    method="POST",
    summary="Trade the refresh token for new tokens minted from the account's current roles",
    roles=None,
    body=lambda: views.AccountRefresh,
    response=lambda: views.AccountSignedIn,
    errors=(401,),
    tags=("accounts",),
)
def refresh(call: Call) -> views.AccountSignedIn:
    body: views.AccountRefresh = call.body
    account, issued = deps.accounts().refresh(body.refresh_token)
    return views.signed_in(account, issued)


@route(
    bp,
    "/v1/accounts/logout",
    method="POST",
    summary="Sign out: the session of the refresh token ends (answers the same for any token)",
    roles=None,
    body=lambda: views.AccountRefresh,
    response=lambda: views.AccountSignedOut,
    tags=("accounts",),
)
def logout(call: Call) -> views.AccountSignedOut:
    body: views.AccountRefresh = call.body
    deps.accounts().logout(body.refresh_token)
    return views.AccountSignedOut(signed_out=True)


# -- the signed-in account ---------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/me",
    summary="The signed-in account: login name, kind, masked phone and e-mail, real-name status, roles",
    roles=ACCOUNT,
    response=lambda: views.AccountView,
    tags=("accounts",),
)
def me(call: Call) -> views.AccountView:
    return views.account_view(_me(call))


@route(
    bp,
    "/v1/accounts/me",
    method="PATCH",
    summary="Change the e-mail (the login name is fixed: 422 account.login_name_immutable)",
    roles=ACCOUNT,
    body=lambda: views.AccountPatch,
    response=lambda: views.AccountView,
    errors=(422,),
    tags=("accounts",),
)
def patch_me(call: Call) -> views.AccountView:
    body: views.AccountPatch = call.body
    account = _me(call)
    if body.login_name is not None:
        from chalicelib.accounts.domain import login_name_immutable

        raise login_name_immutable()
    if body.email is not None:
        account = deps.accounts().change_email(account.account_id, body.email)
    return views.account_view(account)


@route(
    bp,
    "/v1/accounts/me/sessions",
    summary="The account's open sessions (kind, created, last used, the current one flagged; no token)",
    roles=ACCOUNT,
    response=lambda: views.AccountSessions,
    tags=("accounts",),
)
def my_sessions(call: Call) -> views.AccountSessions:
    _me(call)
    current = call.user.session_id
    return views.AccountSessions(
        sessions=[
            views.AccountSession(
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
    response=lambda: views.AccountSignedOut,
    errors=(404,),
    tags=("accounts",),
)
def end_session(call: Call, session_id: str) -> views.AccountSignedOut:
    _me(call)
    deps.accounts().revoke_session(call.user.subject, session_id)
    logger.info("account session ended", extra={"account_id": call.user.subject, "session_id": session_id})
    return views.AccountSignedOut(signed_out=True)


@route(
    bp,
    "/v1/accounts/me/sessions/revoke-all",
    method="POST",
    summary="Sign out everywhere: every session of the account ends, this one too",
    roles=ACCOUNT,
    response=lambda: views.AccountSessionsEnded,
    tags=("accounts",),
)
def revoke_all(call: Call) -> views.AccountSessionsEnded:
    _me(call)
    ended = deps.accounts().revoke_all(call.user.subject)
    logger.info("account signed out everywhere", extra={"account_id": call.user.subject, "ended": ended})
    return views.AccountSessionsEnded(ended=ended)


# -- passwords ---------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/accounts/me/password",
    method="POST",
    summary="Change the password (the current one proves it); every other session ends",
    roles=ACCOUNT,
    body=lambda: views.AccountPasswordChange,
    response=lambda: views.AccountPasswordChanged,
    errors=(423,),
    tags=("accounts",),
)
def change_password(call: Call) -> views.AccountPasswordChanged:
    body: views.AccountPasswordChange = call.body
    _me(call)
    ended = deps.accounts().change_password(call.user, body.current, body.new)
    logger.info("account password changed", extra={"account_id": call.user.subject, "ended": ended})
    return views.AccountPasswordChanged(changed=True, other_sessions_ended=ended)


@route(
    bp,
    "/v1/accounts/password-reset",
    method="POST",
    summary="Forgotten password: a reset code to the bound phone (the same answer whether it exists)",
    roles=None,
    body=lambda: views.AccountPasswordReset,
    response=lambda: views.AccountResetSent,
    status=202,
    errors=(428, 429),
    tags=("accounts",),
)
def start_reset(call: Call) -> views.AccountResetSent:
    body: views.AccountPasswordReset = call.body
    with asking_for_codes(call.request, None, body.captcha_id, body.captcha_answer):
        deps.accounts().start_reset(body.identifier)
    return views.AccountResetSent(sent=True)


@route(
    bp,
    "/v1/accounts/password-reset/confirm",
    method="POST",
    summary="Set a new password with the reset code: every session ends and the lock is lifted",
    roles=None,
    body=lambda: views.AccountResetConfirm,
    response=lambda: views.AccountResetDone,
    tags=("accounts",),
)
def confirm_reset(call: Call) -> views.AccountResetDone:
    body: views.AccountResetConfirm = call.body
    account = deps.accounts().confirm_reset(body.identifier, body.code, body.new)
    logger.info("account password reset", extra={"account_id": account.account_id})
    return views.AccountResetDone(reset=True)
