"""Signed bearer tokens (JWT, HS256) carrying a subject and roles, and the role checks of the routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

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
    ADMIN = "admin"  # OEM operations admin
    AUDITOR = "auditor"  # OEM auditor / regulator export


#: Roles that see personal fields in clear: a reviewer compares them with the documents.
REVEAL_ROLES = frozenset({Role.REVIEWER})
#: OEM staff.
OEM_ROLES = frozenset({Role.ADMIN, Role.REVIEWER, Role.AUDITOR})
#: The roles of a person verifying themselves (an owner, or an enterprise's legal person or agent).
PERSON_ROLES = frozenset({Role.OWNER, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    token_id: str

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def reveals_personal_data(self) -> bool:
        return self.has_any(REVEAL_ROLES)


def issue_token(
    settings: Settings, subject: str, roles: Iterable[Role], *, ttl_seconds: int | None = None
) -> str:
    import jwt

    now = int(utc_now().timestamp())
    claims = {
        "sub": subject,
        "roles": sorted(Role(r).value for r in roles),
        "iss": settings.token_issuer,
        "iat": now,
        "exp": now + (ttl_seconds or settings.token_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.signing_secret(), algorithm="HS256")


def _unauthenticated(code: str, zh: str, en: str) -> Unauthenticated:
    return Unauthenticated(code, zh, en, field="Authorization")


def authenticate(settings: Settings, authorization: str | None) -> Principal:
    import jwt

    if not authorization:
        raise _unauthenticated("auth.missing", "请先登录", "Sign in first: no bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated("auth.scheme", "认证信息格式错误", "Use 'Authorization: Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            settings.signing_secret(),
            algorithms=["HS256"],
            issuer=settings.token_issuer,
            options={"require": ["sub", "exp", "iat", "iss", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthenticated("auth.expired", "登录已过期，请重新登录", "The token has expired") from exc
    except jwt.PyJWTError as exc:
        raise _unauthenticated("auth.invalid", "登录状态已失效，请重新登录", "The token is invalid") from exc
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []))
    except ValueError as exc:
        raise _unauthenticated(
            "auth.invalid", "登录状态已失效，请重新登录", "The token names an unknown role"
        ) from exc
    return Principal(subject=str(claims["sub"]), roles=roles, token_id=str(claims["jti"]))


def authorize(principal: Principal, allowed: frozenset[Role]) -> None:
    if not principal.has_any(allowed):
        raise Forbidden(
            "auth.forbidden",
            "无权执行此操作",
            "Your role may not do this",
            details={"required_roles": sorted(r.value for r in allowed)},
        )
