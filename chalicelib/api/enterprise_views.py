"""The models of the enterprise's routes (``chalicelib.api.enterprise``): agent applications and
grants, the enterprise acted for, its action log. Loaded on their first use: a cold start builds none of
them, nor imports the enterprise's domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, PageQuery
from chalicelib.enterprise.actions_domain import ActorRole
from chalicelib.enterprise.grants import MAX_REASON, GrantStatus

if TYPE_CHECKING:
    from chalicelib.enterprise.actions_domain import EnterpriseAction
    from chalicelib.enterprise.grants import AgentGrant

STATUS_ZH = {
    GrantStatus.PENDING: "待审核",
    GrantStatus.APPROVED: "已授权",
    GrantStatus.REJECTED: "已驳回",
    GrantStatus.REVOKED: "已撤销",
}
ROLE_ZH = {ActorRole.LEGAL: "法人", ActorRole.AGENT: "经办人", ActorRole.APPLICANT: "申请人"}
ACTION_ZH = {
    "agent.applied": "申请成为经办人",
    "agent.approved": "批准经办人",
    "agent.rejected": "驳回经办人申请",
    "agent.revoked": "撤销经办人授权",
    "actual_user.recorded": "登记实际使用人",
    "actual_user.ended": "结束实际使用人",
}


class AgentApplicationBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    company_name: str = Field(min_length=1, max_length=100, description="企业名称, as registered")
    uscc: str = Field(min_length=1, max_length=40, description="统一社会信用代码")


class AgentDecisionBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=MAX_REASON * 2, description=f"Why (required to reject; at most {MAX_REASON})"
    )


class AgentGrantView(ApiModel):
    account_id: str
    uscc: str
    company_name: str | None = Field(default=None, description="The enterprise's name (the applicant's list)")
    status: GrantStatus
    status_zh: str
    login_name: str
    name_masked: str = Field(description="The applicant's real name, masked")
    applied_at: AwareDatetime
    decided_at: AwareDatetime | None = None
    reason: str | None = None


class AgentGrantList(ApiModel):
    items: list[AgentGrantView]
    next_cursor: str | None = None


class ActingEnterpriseView(ApiModel):
    uscc: str
    company_name: str
    enterprise_type: str
    enterprise_type_zh: str
    legal_person_type: str
    representative_name: str = Field(description="The legal representative, masked")
    real_name_status: str = Field(description="verified: the legal person's real-name authentication is done")
    created_at: AwareDatetime
    my_role: ActorRole = Field(description="enterprise_legal | enterprise_agent: who the caller is there")
    my_role_zh: str
    my_login_name: str
    my_name_masked: str


class EnterpriseActionView(ApiModel):
    action_id: str
    at: AwareDatetime
    action: str
    action_zh: str
    actor_account_id: str
    actor_login_name: str
    actor_name_masked: str
    actor_role: ActorRole
    actor_role_zh: str
    details: dict[str, str]


class EnterpriseActionList(ApiModel):
    items: list[EnterpriseActionView]
    next_cursor: str | None = None


class AgentQuery(PageQuery):
    status: Annotated[
        GrantStatus | None,
        Field(description="pending | approved | rejected | revoked (default: all)"),
        Refusal("agent.status", "状态无效", "Unknown status"),
    ] = None


def grant_view(grant: AgentGrant, company_name: str | None = None) -> AgentGrantView:
    """An agent's grant as the enterprise's accounts see it."""
    return AgentGrantView(
        account_id=grant.account_id,
        uscc=grant.uscc,
        company_name=company_name,
        status=grant.status,
        status_zh=STATUS_ZH[grant.status],
        login_name=grant.login_name,
        name_masked=grant.name_masked,
        applied_at=grant.applied_at,
        decided_at=grant.decided_at,
        reason=grant.reason,
    )


def action_view(a: EnterpriseAction) -> EnterpriseActionView:
    """One entry of the enterprise's action log."""
    return EnterpriseActionView(
        action_id=a.action_id,
        at=a.at,
        action=a.action,
        action_zh=ACTION_ZH.get(a.action, a.action),
        actor_account_id=a.actor_account_id,
        actor_login_name=a.actor_login_name,
        actor_name_masked=a.actor_name_masked,
        actor_role=a.actor_role,
        actor_role_zh=ROLE_ZH[a.actor_role],
        details=a.details,
    )
