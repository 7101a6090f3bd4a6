"""The models of the real-name authentication routes (``chalicelib.api.realname``) and the view of
where an account's real-name stands. Loaded on their first use: a cold start builds none of them, nor
imports the enterprise's domain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field

from chalicelib.api.models import ApiModel
from chalicelib.core import deps
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType

if TYPE_CHECKING:
    from chalicelib.accounts.realname import RealNameState


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


#: What the portal says of each status.
MESSAGES = {
    "unverified": "尚未实名认证，请选择自然人或法人完成认证",
    "in_review": "已提交人工审核，请等待审核结果",
    "verified": "已完成实名认证",
    "refused": "实名认证未通过审核，请按原因修改后重新认证",
}


def state_view(state: RealNameState) -> RealNameView:
    """Where the account's real-name stands, with the message the portal shows."""
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
    message = MESSAGES[state.status]
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
