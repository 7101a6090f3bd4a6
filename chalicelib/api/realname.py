"""Real-name authentication API (实名认证, seed 001): a portal account finalises the verification flow it
went through (``POST /v1/flows`` with purpose ``account_verification``, then the flow's own steps), asks
for manual review (人工实名认证) when an automatic check could not pass, and reads where it stands.

The account's token is honoured only while its sign-in session lives. After completing, the caller
refreshes its token to get the roles of its new kind (法人账号: ``enterprise_legal``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field

from chalicelib.api.http import ApiModel, Blueprint, Call, route
from chalicelib.core import deps
from chalicelib.core.auth import Principal, Role
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType

if TYPE_CHECKING:
    from chalicelib.accounts.realname import LegalDetails, RealNameState

bp = Blueprint(__name__)

ACCOUNT_ROLES = frozenset({Role.ACCOUNT})


class RealNameBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    flow_id: str = Field(min_length=1, max_length=64)
    kind: Literal["natural", "legal"]
    #: 法人: 企业或机构类型 and 法人类型 (the USCC and the name were typed into the flow's identity).
    enterprise_type: EnterpriseType | None = None
    legal_person_type: LegalPersonType | None = None
    #: 法人: when given, they must be the ones the flow checked against the business licence.
    uscc: str | None = Field(default=None, max_length=32)
    company_name: str | None = Field(default=None, max_length=128)


class RealNameReviewBody(RealNameBody):
    #: What the person wants the reviewer to know (e.g. "营业执照名称已变更").
    note: str | None = Field(default=None, max_length=200)


class RealNameEnterprise(ApiModel):
    uscc: str
    company_name: str
    enterprise_type: str
    legal_person_type: str
    representative_name: str = Field(description="the legal representative's name, masked")


class RealNameView(ApiModel):
    """Where the account's real-name stands. ``status``: unverified | in_review | verified | refused."""

    account_kind: str = Field(description="unverified | natural | legal | dealer")
    status: str
    kind: str | None = Field(default=None, description="natural | legal: what was (or is being) proved")
    name: str | None = Field(default=None, description="the person's name, masked")
    verified_at: datetime | None = None
    flow_id: str | None = None
    case_number: str | None = Field(default=None, description="审核编号 while a reviewer has it")
    refusal: str | None = Field(default=None, description="the reviewer's reason, when refused")
    message_zh: str
    enterprise: RealNameEnterprise | None = None


_MESSAGES = {
    "unverified": "尚未实名认证，请选择自然人或法人完成认证",
    "in_review": "已提交人工审核，请等待审核结果",
    "verified": "已完成实名认证",
    "refused": "实名认证未通过审核，请按原因修改后重新认证",
}


def _live(principal: Principal) -> None:
    deps.accounts().require_live_session(principal)


def _legal(body: RealNameBody) -> LegalDetails | None:
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


def _view(state: RealNameState) -> RealNameView:
    record = state.record
    application = state.application
    enterprise = None
    if record is not None and record.uscc:
        found = deps.enterprises().get(record.uscc)
        if found is not None:
            enterprise = RealNameEnterprise(
                uscc=found.uscc,
                company_name=found.company_name,
                enterprise_type=found.enterprise_type.value,
                legal_person_type=found.legal_person_type.value,
                representative_name=found.representative_name_masked,
            )
    pending = state.status in ("in_review", "refused")
    message = _MESSAGES[state.status]
    if state.status == "refused" and application is not None and application.refusal:
        message = f"实名认证未通过审核：{application.refusal}。请修改后重新认证"
    return RealNameView(
        account_kind=state.kind.value,
        status=state.status,
        kind=record.kind.value if record else (application.kind.value if application else None),
        name=record.display_name_masked if record else None,
        verified_at=record.verified_at if record else None,
        flow_id=record.flow_id if record else (application.flow_id if application else None),
        case_number=application.case_number if application and pending else None,
        refusal=application.refusal if application and state.status == "refused" else None,
        message_zh=message,
        enterprise=enterprise,
    )


@route(
    bp,
    "/v1/accounts/me/real-name",
    summary="Where my real-name authentication stands (unverified, in review, verified, refused)",
    roles=ACCOUNT_ROLES,
    response=RealNameView,
    tags=("accounts",),
)
def real_name_state(call: Call) -> RealNameView:
    _live(call.user)
    return _view(deps.real_name().state(call.actor))


@route(
    bp,
    "/v1/accounts/me/real-name",
    method="POST",
    summary="Complete real-name authentication with a verification flow whose checks all passed "
    "(legal person: the enterprise is bound to this account, one per USCC); refresh the token after",
    roles=ACCOUNT_ROLES,
    body=RealNameBody,
    response=RealNameView,
    errors=(404, 409),
    tags=("accounts",),
)
def complete_real_name(call: Call) -> RealNameView:
    from chalicelib.accounts.domain import RealNameKind

    _live(call.user)
    body: RealNameBody = call.body
    service = deps.real_name()
    service.complete(call.actor, body.flow_id, RealNameKind(body.kind), _legal(body))
    return _view(service.state(call.actor))


@route(
    bp,
    "/v1/accounts/me/real-name/review",
    method="POST",
    summary="人工实名认证: send the flow to a reviewer when an automatic check could not pass",
    roles=ACCOUNT_ROLES,
    body=RealNameReviewBody,
    response=RealNameView,
    status=201,
    errors=(404, 409),
    tags=("accounts",),
)
def request_real_name_review(call: Call) -> RealNameView:
    from chalicelib.accounts.domain import RealNameKind

    _live(call.user)
    body: RealNameReviewBody = call.body
    service = deps.real_name()
    service.request_review(call.actor, body.flow_id, RealNameKind(body.kind), _legal(body), body.note)
    return _view(service.state(call.actor))
