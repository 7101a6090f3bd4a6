"""Staff sign-in (员工登录): the console signs staff in at the stage's OpenID Connect issuer (authorization
code + PKCE, in the browser) and calls the API with the issuer's access token; ``chalicelib.core.oidc``
verifies it. Here: what the console needs to start (``/v1/staff/config``), who is signed in
(``/v1/staff/me``) and the logout that revokes the sign-in at once (``/v1/staff/logout``).

Importing this module installs the check of staff logouts into ``chalicelib.core.auth``: every request
carrying a staff IdP token reads the ``staff-revocations`` table (one consistent GetItem, a few
milliseconds; staff requests are few), so a logout takes effect on the next request, not at expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from chalicelib.api.http import ApiModel, Blueprint, Call, route
from chalicelib.core import deps
from chalicelib.core.auth import STAFF_ROLES, install_staff_revocation_check
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import DomainError, NotFound

bp = Blueprint(__name__)


def _is_revoked(revocation_key: str) -> bool:
    return deps.staff_revocations().is_revoked(revocation_key)


install_staff_revocation_check(_is_revoked)


class StaffSignInConfig(ApiModel):
    issuer: str = Field(description="The OpenID Connect issuer staff sign in at")
    client_id: str | None = Field(description="The console's client id at the issuer")
    authorization_endpoint: str | None
    token_endpoint: str | None
    end_session_endpoint: str | None = Field(description="Where the console ends the IdP's session")
    scopes: list[str]


@route(
    bp,
    "/v1/staff/config",
    summary="Public: the staff issuer, client id, endpoints and scopes the console starts sign-in with",
    roles=None,
    response=StaffSignInConfig,
    errors=(404, 503),
    tags=("staff",),
)
def staff_config(call: Call) -> StaffSignInConfig:
    settings = get_settings()
    if not settings.staff_oidc_issuer:
        raise NotFound(
            "staff.sign_in_not_configured",
            "本环境未配置员工登录",
            "This stage names no staff identity provider (CHEKA_STAFF_OIDC_ISSUER)",
        )
    from chalicelib.core import oidc

    return StaffSignInConfig.model_validate(oidc.verifier(settings).sign_in_config())


class StaffMe(ApiModel):
    subject: str = Field(description="The staff member's subject at the issuer")
    roles: list[str]
    issuer: str | None
    mfa: str | None = Field(description="How the second factor showed: amr:<value>, acr:<value>, issuer")
    expires_at: datetime | None
    from_identity_provider: bool = Field(description="False: a local stage's own token (`cheka token`)")


@route(
    bp,
    "/v1/staff/me",
    summary="The signed-in staff member: subject, roles, issuer, second factor, expiry",
    roles=STAFF_ROLES,
    response=StaffMe,
    errors=(503,),
    tags=("staff",),
)
def staff_me(call: Call) -> StaffMe:
    user = call.user
    return StaffMe(
        subject=user.subject,
        roles=sorted(r.value for r in user.roles),
        issuer=user.issuer,
        mfa=user.mfa,
        expires_at=datetime.fromtimestamp(user.expires_at, UTC) if user.expires_at else None,
        from_identity_provider=user.from_staff_idp,
    )


class StaffSignedOut(ApiModel):
    signed_out: bool
    revoked: bool = Field(description="The token (and its IdP session) is refused from now on")
    end_session_endpoint: str | None = Field(
        description="Send the browser here to end the session at the IdP too (None: it names none)"
    )


@route(
    bp,
    "/v1/staff/logout",
    method="POST",
    summary="Staff logout: the sign-in's tokens are refused from now on; where to end the IdP session",
    roles=STAFF_ROLES,
    response=StaffSignedOut,
    errors=(503,),
    tags=("staff",),
)
def staff_logout(call: Call) -> StaffSignedOut:
    user = call.user
    settings = get_settings()
    if not user.from_staff_idp or user.revocation_key is None or user.expires_at is None:
        # A local stage's own token (``cheka token issue``): nothing to revoke, it simply expires.
        return StaffSignedOut(signed_out=True, revoked=False, end_session_endpoint=None)
    deps.staff_revocations().revoke(user.revocation_key, user.subject, user.expires_at, utc_now())
    logger.info("staff signed out", extra={"subject": user.subject, "revoked": user.revocation_key})
    from chalicelib.core import oidc

    try:
        end_session = oidc.verifier(settings).sign_in_config()["end_session_endpoint"]
    except DomainError:
        end_session = settings.staff_oidc_end_session_url  # the IdP is down: the revocation stands
    return StaffSignedOut(signed_out=True, revoked=True, end_session_endpoint=end_session)
