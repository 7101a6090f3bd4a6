"""Phone login with SMS codes (短信验证码登录), and the local stages' SMS drop.

Asking for a code answers the same for every valid number: nothing says whether the phone belongs to
a known person. A login code is asked for without a token; codes for the owner's phone in a
registration and for a de-registration are asked for by the signed-in person, for their own flow (the
code is theirs alone); a fleet's responsible person's and a delegation's codes have their own routes.
The token's subject is a pseudonym derived from the keyed hash of the phone, never the number. Logins
count failed tries per client and remember the device a phone signed in from
(``chalicelib.sms.limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.clients import asking_for_codes, send_origin
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import PERSON_ROLES, Role, authenticate, authorize
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import InvalidField, NotFound

if TYPE_CHECKING:
    from chalicelib.api import auth_views as views
    from chalicelib.captcha import domain as captcha_domain
    from chalicelib.captcha.domain import Challenge
    from chalicelib.sms import domain as sms
else:
    views = lazy.module("chalicelib.api.auth_views")
    captcha_domain = lazy.module("chalicelib.captcha.domain")
    sms = lazy.module("chalicelib.sms.domain")

bp = Blueprint(__name__)


@route(
    bp,
    "/v1/auth/sms-codes",
    method="POST",
    summary="Send an SMS code (login: no token; owner_phone, deregistration: the signed-in person's own)",
    roles=None,
    body=lambda: views.SmsCodeRequest,
    response=lambda: sms.SentCode,
    status=202,
    errors=(401, 403, 428, 429, 503),
    tags=("auth",),
)
def send_sms_code(call: Call) -> sms.SentCode:
    body: views.SmsCodeRequest = call.body
    if body.purpose is sms.SmsPurpose.FLEET_RESPONSIBLE:
        raise InvalidField(
            "sms.purpose_not_here",
            "车辆负责人验证码由单位登记批次发送",
            "A responsible person's code is sent by the fleet batch's responsible-phone step",
            field="purpose",
        )
    if body.purpose is sms.SmsPurpose.DELEGATION_CONFIRM:
        raise InvalidField(
            "sms.purpose_not_here",
            "委托确认验证码由委托登记步骤发送到车主手机",
            "A delegation code is sent by the delegation step, to the owner's phone it gave",
            field="purpose",
        )
    if body.purpose in (
        sms.SmsPurpose.ACCOUNT_SIGNUP,
        sms.SmsPurpose.ACCOUNT_LOGIN,
        sms.SmsPurpose.PASSWORD_RESET,
    ):
        raise InvalidField(
            "sms.purpose_not_here",
            "账号验证码由账号注册、登录和找回密码步骤发送",
            "Account codes are sent by the account's sign-up, login and password-reset steps",
            field="purpose",
        )
    if body.purpose is sms.SmsPurpose.LOGIN:
        # Admitted by the send itself: a device the phone signed in from has its own allowance.
        origin = send_origin(call.request, None, body.captcha_id, body.captcha_answer)
        return deps.sms_code_service().send(body.phone, body.purpose, origin)
    principal = authenticate(get_settings(), call.request.headers.get("authorization"))
    authorize(principal, PERSON_ROLES)
    caller = principal.subject  # the owner's own code and bucket: nobody else's sends or tries reach it
    with asking_for_codes(call.request, caller, body.captcha_id, body.captcha_answer):
        return deps.sms_code_service().send(body.phone, body.purpose)


@route(
    bp,
    "/v1/captcha",
    method="POST",
    summary="A captcha challenge (a picture of characters, answerable once within minutes; limited per IP)",
    roles=None,
    response=lambda: captcha_domain.Challenge,
    status=201,
    errors=(429, 503),
    tags=("auth",),
)
def issue_captcha(call: Call) -> Challenge:
    challenge = deps.sms_code_service().challenge(send_origin(call.request))
    return captcha_domain.Challenge.model_validate(challenge)


@route(
    bp,
    "/v1/auth/login",
    method="POST",
    summary="Sign in with a phone and its login code: an owner token",
    roles=None,
    body=lambda: views.LoginRequest,
    response=lambda: views.LoginResult,
    errors=(429,),
    tags=("auth",),
)
def login(call: Call) -> views.LoginResult:
    body: views.LoginRequest = call.body
    if body.accepted is not None:
        from chalicelib.consents.account import check_account_texts  # the texts: not at a cold start

        check_account_texts(body.accepted)  # before the code is spent: a refusal changes nothing
    # Failed tries count against the client; a known device checks its own code.
    subject = deps.sms_code_service().login(body.phone, body.code, send_origin(call.request))
    settings = get_settings()
    if body.accepted is not None:
        deps.account_consents().record(subject, body.accepted, utc_now())
    from chalicelib.sessions.domain import SessionKind  # the sessions' rules: not at a cold start

    issued = deps.sessions().open(SessionKind.OWNER, subject, [Role.OWNER.value])
    logger.info("owner signed in by SMS code", extra={"subject": subject})
    return views.signed_in(settings, issued)


@route(
    bp,
    "/v1/auth/refresh",
    method="POST",
    summary="Trade the refresh token for a new access token and a new refresh token (the old one retires)",
    roles=None,
    body=lambda: views.RefreshRequest,
    response=lambda: views.LoginResult,
    errors=(401,),
    tags=("auth",),
)
def refresh(call: Call) -> views.LoginResult:
    body: views.RefreshRequest = call.body
    issued = deps.sessions().refresh(body.refresh_token)
    return views.signed_in(get_settings(), issued)


@route(
    bp,
    "/v1/auth/logout",
    method="POST",
    summary="Sign out: the session of the refresh token ends (answers the same for any token)",
    roles=None,
    body=lambda: views.RefreshRequest,
    response=lambda: views.SignedOut,
    tags=("auth",),
)
def logout(call: Call) -> views.SignedOut:
    body: views.RefreshRequest = call.body
    deps.sessions().revoke(body.refresh_token)
    return views.SignedOut(signed_out=True)


@route(
    bp,
    "/v1/auth/sessions/revoke-all",
    method="POST",
    summary="Sign out everywhere: every session of the signed-in owner ends (refresh tokens stop working)",
    roles=frozenset({Role.OWNER}),
    response=lambda: views.SessionsEnded,
    tags=("auth",),
)
def revoke_all_sessions(call: Call) -> views.SessionsEnded:
    ended = deps.sessions().revoke_subject(call.user.subject)
    logger.info("owner signed out everywhere", extra={"subject": call.user.subject, "ended": ended})
    return views.SessionsEnded(ended=ended)


@route(
    bp,
    "/v1/dev/sms-drop",
    summary="Local stages only (404 elsewhere): the newest SMS kept in the local SMS drop, phones masked",
    roles=None,
    response=lambda: views.SmsDropView,
    errors=(404,),
    query=lambda: views.SmsDropQuery,
    tags=("dev",),
)
def sms_drop(call: Call) -> views.SmsDropView:
    if not get_settings().is_local:
        # Deployed stages send through SNS and have no SMS drop: the route does not exist there.
        raise NotFound("route.not_found", "接口不存在", "No such route")
    return views.SmsDropView(messages=deps.sms_drop().recent(call.query.limit))
