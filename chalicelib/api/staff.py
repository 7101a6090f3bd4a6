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
from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import STAFF_ROLES, install_staff_revocation_check
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import DomainError, NotFound

if TYPE_CHECKING:
    from chalicelib.api import staff_views as views
else:
    views = lazy.module("chalicelib.api.staff_views")

bp = Blueprint(__name__)


def _is_revoked(revocation_key: str) -> bool:
    return deps.staff_revocations().is_revoked(revocation_key)


install_staff_revocation_check(_is_revoked)


@route(
    bp,
    "/v1/staff/config",
    summary="Public: the staff issuer, client id, endpoints and scopes the console starts sign-in with",
    roles=None,
    response=lambda: views.StaffSignInConfig,
    errors=(404, 503),
    tags=("staff",),
)
def staff_config(call: Call) -> views.StaffSignInConfig:
    settings = get_settings()
    if not settings.staff_oidc_issuer:
        raise NotFound(
            "staff.sign_in_not_configured",
            "本环境未配置员工登录",
            "This stage names no staff identity provider (CHEKA_STAFF_OIDC_ISSUER)",
        )
    from chalicelib.core import oidc

    return views.StaffSignInConfig.model_validate(oidc.verifier(settings).sign_in_config())


@route(
    bp,
    "/v1/staff/me",
    summary="The signed-in staff member: subject, roles, issuer, second factor, expiry",
    roles=STAFF_ROLES,
    response=lambda: views.StaffMe,
    errors=(503,),
    tags=("staff",),
)
def staff_me(call: Call) -> views.StaffMe:
    user = call.user
    return views.StaffMe(
        subject=user.subject,
        roles=sorted(r.value for r in user.roles),
        issuer=user.issuer,
        mfa=user.mfa,
        expires_at=datetime.fromtimestamp(user.expires_at, UTC) if user.expires_at else None,
        from_identity_provider=user.from_staff_idp,
    )


@route(
    bp,
    "/v1/staff/logout",
    method="POST",
    summary="Staff logout: the sign-in's tokens are refused from now on; where to end the IdP session",
    roles=STAFF_ROLES,
    response=lambda: views.StaffSignedOut,
    errors=(503,),
    tags=("staff",),
)
def staff_logout(call: Call) -> views.StaffSignedOut:
    user = call.user
    settings = get_settings()
    if not user.from_staff_idp or user.revocation_key is None or user.expires_at is None:
        # A local stage's own token (``cheka token issue``): nothing to revoke, it simply expires.
        return views.StaffSignedOut(signed_out=True, revoked=False, end_session_endpoint=None)
    deps.staff_revocations().revoke(user.revocation_key, user.subject, user.expires_at, utc_now())
    logger.info("staff signed out", extra={"subject": user.subject, "revoked": user.revocation_key})
    from chalicelib.core import oidc

    try:
        end_session = oidc.verifier(settings).sign_in_config()["end_session_endpoint"]
    except DomainError:
        end_session = settings.staff_oidc_end_session_url  # the IdP is down: the revocation stands
    return views.StaffSignedOut(signed_out=True, revoked=True, end_session_endpoint=end_session)
