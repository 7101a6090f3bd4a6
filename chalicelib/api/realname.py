"""Real-name authentication API (实名认证, seed 001): a portal account finalises the verification flow it
went through (``POST /v1/flows`` with purpose ``account_verification``, then the flow's own steps), asks
for manual review (人工实名认证) when an automatic check could not pass, and reads where it stands.

The account's token is honoured only while its sign-in session lives. After completing, the caller
refreshes its token to get the roles of its new kind (法人账号: ``enterprise_legal``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role

if TYPE_CHECKING:
    from chalicelib.accounts.realname import LegalDetails
    from chalicelib.api import realname_views as views
else:
    views = lazy.module("chalicelib.api.realname_views")

bp = Blueprint(__name__)

ACCOUNT_ROLES = frozenset({Role.ACCOUNT})


def _live(principal: Principal) -> None:
    deps.accounts().require_live_session(principal)


def _legal(body: views.RealNameBody) -> LegalDetails | None:
    from chalicelib.accounts.realname import LegalDetails
    from chalicelib.kernel.errors import InvalidField

    if body.kind != "legal":
        return None
    missing = "enterprise_type" if body.enterprise_type is None else "legal_person_type"
    if body.enterprise_type is None or body.legal_person_type is None:
        raise InvalidField(
            "real_name.field_missing",
            "请选择企业或机构类型" if missing == "enterprise_type" else "请选择法人类型",
            f"Choose the {missing.replace('_', ' ')}",
            field=missing,
        )
    return LegalDetails(
        enterprise_type=body.enterprise_type,
        legal_person_type=body.legal_person_type,
        uscc=body.uscc,
        company_name=body.company_name,
    )


@route(
    bp,
    "/v1/accounts/me/real-name",
    summary="Where my real-name authentication stands (unverified, in review, verified, refused)",
    roles=ACCOUNT_ROLES,
    response=lambda: views.RealNameView,
    tags=("accounts",),
)
def real_name_state(call: Call) -> views.RealNameView:
    _live(call.user)
    return views.state_view(deps.real_name().state(call.actor))


@route(
    bp,
    "/v1/accounts/me/real-name",
    method="POST",
    summary="Complete real-name authentication with a verification flow whose checks all passed "
    "(legal person: the enterprise is bound to this account, one per USCC); refresh the token after",
    roles=ACCOUNT_ROLES,
    body=lambda: views.RealNameBody,
    response=lambda: views.RealNameView,
    errors=(404, 409),
    tags=("accounts",),
)
def complete_real_name(call: Call) -> views.RealNameView:
    from chalicelib.accounts.domain import RealNameKind

    _live(call.user)
    body: views.RealNameBody = call.body
    service = deps.real_name()
    service.complete(call.actor, body.flow_id, RealNameKind(body.kind), _legal(body))
    return views.state_view(service.state(call.actor))


@route(
    bp,
    "/v1/accounts/me/real-name/review",
    method="POST",
    summary="人工实名认证: send the flow to a reviewer when an automatic check could not pass",
    roles=ACCOUNT_ROLES,
    body=lambda: views.RealNameReviewBody,
    response=lambda: views.RealNameView,
    status=201,
    errors=(404, 409),
    tags=("accounts",),
)
def request_real_name_review(call: Call) -> views.RealNameView:
    from chalicelib.accounts.domain import RealNameKind

    _live(call.user)
    body: views.RealNameReviewBody = call.body
    service = deps.real_name()
    service.request_review(call.actor, body.flow_id, RealNameKind(body.kind), _legal(body), body.note)
    return views.state_view(service.state(call.actor))
