"""Signed bearer tokens (JWT, HS256) carrying a subject and roles, and the role checks of the routes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings


class Role(StrEnum):
    OWNER = "owner"  # individual car owner / user (个人车主/使用人)
    ENTERPRISE_LEGAL = "enterprise_legal"  # 法人账号
    ENTERPRISE_AGENT = "enterprise_agent"  # 经办人
    DEALER = "dealer"  # 经销商
    REVIEWER = "reviewer"  # OEM reviewer (人工审核)
    #: OEM review lead (审核组长): decides fleet cases escalated past their deadline, and any other.
    REVIEW_LEAD = "review_lead"
    ADMIN = "admin"  # OEM operations admin
    AUDITOR = "auditor"  # OEM auditor / regulator export
    OPERATIONS = "operations"  # OEM operations (outbox, operators, campaigns): staff, through the IdP
    #: The OEM's call centre (外呼): works the backfill campaigns' call list, phones in clear with a reason.
    CALL_CENTRE = "call_centre"
    #: A signed-in enterprise-portal account (账号), whatever its real-name state: what it may always do
    #: is see and manage itself. Real-name authentication and an agent grant add the roles above.
    ACCOUNT = "account"


#: Roles that may see personal fields in clear: a reviewer compares them with the documents, an auditor
#: checks a case. Only with a reason given, and every such read is recorded (``chalicelib.api.audit``).
REVEAL_ROLES = frozenset({Role.REVIEWER, Role.REVIEW_LEAD, Role.AUDITOR})
#: OEM staff.
OEM_ROLES = frozenset({Role.ADMIN, Role.REVIEWER, Role.REVIEW_LEAD, Role.AUDITOR})
#: The roles only the staff identity provider grants on a deployed stage (our own tokens carrying one are
#: refused there: ``cheka token issue`` and the tests' tokens serve the local stages only).
STAFF_ROLES = frozenset(
    {Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN, Role.AUDITOR, Role.OPERATIONS, Role.CALL_CENTRE}
)
#: The roles of a person verifying themselves (an owner, or an enterprise's legal person or agent).
PERSON_ROLES = frozenset({Role.OWNER, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})
ALL_ROLES = frozenset(Role)


#: Claims of our own access tokens beyond the standard ones (``issue_token(..., claims=...)``).
CLAIM_ENTERPRISE = "ent"  # the USCC of the enterprise a legal-person account or an agent acts for
CLAIM_DEALER = "dlr"  # the dealer code of a dealer account
CLAIM_SESSION = "sid"  # the sign-in session the token was minted from


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    token_id: str
    #: The enterprise (USCC) the token says the caller acts for. A hint only: whoever acts for an
    #: enterprise re-checks the grant in the store (an agent may have been revoked since).
    enterprise: str | None = None
    #: The dealer code of a dealer account (the token's claim; the account is re-read where it matters).
    dealer: str | None = None
    #: The sign-in session the token was minted from (None for CLI tokens and the staff IdP's tokens).
    session_id: str | None = None
    #: Who issued the token: ``settings.token_issuer`` for our own, the staff IdP's issuer otherwise.
    issuer: str | None = None
    #: When the token expires (epoch seconds).
    expires_at: int | None = None
    #: Staff IdP tokens: how the second factor shows (``amr:otp``, ``acr:...``, ``issuer``).
    mfa: str | None = None
    #: Staff IdP tokens: the handle staff logout revokes (``chalicelib.core.oidc.StaffClaims``).
    revocation_key: str | None = None

    @property
    def from_staff_idp(self) -> bool:
        return self.revocation_key is not None

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def reveals_personal_data(self) -> bool:
        return self.has_any(REVEAL_ROLES)


def issue_token(
    settings: Settings,
    subject: str,
    roles: Iterable[Role],
    *,
    ttl_seconds: int | None = None,
    claims: Mapping[str, str] | None = None,
) -> str:
    """Our own access token. ``claims`` adds ``CLAIM_*`` claims (enterprise, dealer, session)."""
    import jwt

    now = int(utc_now().timestamp())
    extra = {k: v for k, v in (claims or {}).items() if k in _EXTRA_CLAIMS and v}
    payload: dict[str, object] = {
        **extra,
        "sub": subject,
        "roles": sorted(Role(r).value for r in roles),
        "iss": settings.token_issuer,
        "iat": now,
        "exp": now + (ttl_seconds or settings.token_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    from chalicelib.core.token_keys import keys_for

    # Signed with the current key, which the token names (``kid``): verification then picks it out even
    # while containers disagree on which version is current (chalicelib.core.token_keys).
    key = keys_for(settings).current
    return jwt.encode(payload, key.secret, algorithm="HS256", headers={"kid": key.kid})


_EXTRA_CLAIMS = frozenset({CLAIM_ENTERPRISE, CLAIM_DEALER, CLAIM_SESSION})


def _unauthenticated(code: str, zh: str, en: str) -> Unauthenticated:
    return Unauthenticated(code, zh, en, field="Authorization")


#: Answers whether a staff token's revocation key was revoked by a staff logout. Installed by the staff
#: API (``chalicelib.api.staff``, with the revocation table): this layer cannot reach the store itself.
StaffRevocationCheck = Callable[[str], bool]
_staff_revoked: StaffRevocationCheck | None = None


def install_staff_revocation_check(check: StaffRevocationCheck | None) -> None:
    global _staff_revoked
    _staff_revoked = check


def _claimed_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, unverified: it only chooses which verification the token gets."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def authenticate_staff(settings: Settings, token: str) -> Principal:
    """A token of the stage's staff issuer: verified against its JWKS (``chalicelib.core.oidc``), then
    checked against staff logouts."""
    from chalicelib.core import oidc

    claims = oidc.verifier(settings).verify(token)
    if _staff_revoked is None:
        raise RuntimeError("no staff revocation check is installed (chalicelib.api.staff does it)")
    if _staff_revoked(claims.revocation_key):
        raise _unauthenticated(
            "auth.revoked", "您已退出登录，请重新登录", "This sign-in was ended by a logout"
        )
    return Principal(
        subject=claims.subject,
        roles=frozenset(Role(r) for r in claims.roles),
        token_id=claims.token_id,
        issuer=claims.issuer,
        expires_at=claims.expires_at,
        mfa=claims.mfa,
        revocation_key=claims.revocation_key,
    )


def authenticate(settings: Settings, authorization: str | None) -> Principal:
    """The caller of a request: a token of the staff issuer goes to its verifier, any other is ours."""
    if not authorization:
        raise _unauthenticated("auth.missing", "请先登录", "Sign in first: no bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated("auth.scheme", "认证信息格式错误", "Use 'Authorization: Bearer <token>'")
    token = token.strip()
    if settings.staff_oidc_issuer and _claimed_issuer(token) == settings.staff_oidc_issuer:
        return authenticate_staff(settings, token)
    claims = _verified_claims(settings, token)
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []))
    except ValueError as exc:
        raise _unauthenticated(
            "auth.invalid", "登录状态已失效，请重新登录", "The token names an unknown role"
        ) from exc
    if not settings.is_local and roles & STAFF_ROLES:
        # Staff roles come from the staff identity provider only, with its second factor and logout.
        raise _unauthenticated(
            "auth.staff_token_not_from_idp",
            "员工请通过统一身份认证登录",
            f"Staff roles come only from the staff identity provider on the {settings.stage} stage",
        )

    def claim(name: str) -> str | None:
        value = claims.get(name)
        return str(value) if isinstance(value, str) and value else None

    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        token_id=str(claims["jti"]),
        enterprise=claim(CLAIM_ENTERPRISE),
        dealer=claim(CLAIM_DEALER),
        session_id=claim(CLAIM_SESSION),
        issuer=str(claims["iss"]),
        expires_at=int(claims["exp"]),
    )


def _verified_claims(settings: Settings, token: str) -> dict[str, Any]:
    """The claims of one of our own tokens, verified with the key it names: the current one, or the
    previous one during a rotation's overlap (``chalicelib.core.token_keys``)."""
    import jwt

    from chalicelib.core.token_keys import keys_for, refresh_for

    invalid = _unauthenticated("auth.invalid", "登录状态已失效，请重新登录", "The token is invalid")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise invalid from exc
    if kid is not None and not isinstance(kid, str):
        raise invalid
    candidates = keys_for(settings).candidates(kid)
    if not candidates and kid is not None:
        # Another container may sign with a version this one has not read yet: read it once more.
        refreshed = refresh_for(settings)
        candidates = () if refreshed is None else refreshed.candidates(kid)
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.secret,
                algorithms=["HS256"],
                issuer=settings.token_issuer,
                options={"require": ["sub", "exp", "iat", "iss", "jti"]},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError as exc:
            raise _unauthenticated("auth.expired", "登录已过期，请重新登录", "The token has expired") from exc
        except jwt.PyJWTError as exc:
            raise invalid from exc
        return claims
    raise invalid


def authorize(principal: Principal, allowed: frozenset[Role]) -> None:
    if not principal.has_any(allowed):
        raise Forbidden(
            "auth.forbidden",
            "无权执行此操作",
            "Your role may not do this",
            details={"required_roles": sorted(r.value for r in allowed)},
        )
