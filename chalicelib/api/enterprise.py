"""The enterprise (单位) as its accounts see it: agents (经办人) apply, the legal-person account approves,
rejects or revokes them, and every action for the enterprise is recorded under the name of whoever took
it (企业操作记录). The OEM's auditor reads an enterprise's actions.

Who acts for which enterprise is re-read from the store on every call (``AgentGrants.acting``): a
token's ``ent`` claim is a hint, and an agent revoked a moment ago is refused at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.http import ApiModel, Blueprint, Call, PageQuery, Refusal, route
from chalicelib.core import deps
from chalicelib.core.auth import Principal, Role
from chalicelib.core.observability import logger
from chalicelib.enterprise.actions_domain import ActorRole
from chalicelib.enterprise.grants import MAX_REASON, GrantStatus

if TYPE_CHECKING:
    from chalicelib.enterprise.actions_domain import EnterpriseAction
    from chalicelib.enterprise.grants import AgentGrant

bp = Blueprint(__name__)

#: Any signed-in portal account (the service decides what each may do for which enterprise).
ACCOUNT_ROLES = frozenset({Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})
#: Who reads an enterprise's action log at the OEM.
AUDIT_ROLES = frozenset({Role.AUDITOR})

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


def _live(principal: Principal) -> None:
    """A portal account's token is honoured only while its sign-in session lives."""
    deps.accounts().require_live_session(principal)


def _grant(grant: AgentGrant, company_name: str | None = None) -> AgentGrantView:
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


def _action(a: EnterpriseAction) -> EnterpriseActionView:
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


@route(
    bp,
    "/v1/enterprise/agent-applications",
    method="POST",
    summary="Apply to act for an enterprise (经办人), naming it by company name and USCC",
    roles=ACCOUNT_ROLES,
    body=AgentApplicationBody,
    response=AgentGrantView,
    status=201,
    errors=(404, 409),
    tags=("enterprise",),
)
def apply_as_agent(call: Call) -> AgentGrantView:
    _live(call.user)
    body: AgentApplicationBody = call.body
    grant = deps.agent_grants().apply(call.user.subject, body.company_name, body.uscc)
    enterprise = deps.enterprises().get(grant.uscc)
    return _grant(grant, enterprise.company_name if enterprise else None)


@route(
    bp,
    "/v1/enterprise/agent-applications",
    summary="My applications to act for enterprises, and their status",
    roles=ACCOUNT_ROLES,
    response=AgentGrantList,
    tags=("enterprise",),
)
def my_applications(call: Call) -> AgentGrantList:
    _live(call.user)
    registry = deps.enterprises()
    items = []
    for grant in deps.agent_grants().applications_of(call.user.subject):
        enterprise = registry.get(grant.uscc)
        items.append(_grant(grant, enterprise.company_name if enterprise else None))
    items.sort(key=lambda g: g.applied_at, reverse=True)
    return AgentGrantList(items=items)


@route(
    bp,
    "/v1/enterprise",
    summary="The enterprise the caller acts for (as its legal person or an approved agent)",
    roles=ACCOUNT_ROLES,
    response=ActingEnterpriseView,
    errors=(404,),
    tags=("enterprise",),
)
def my_enterprise(call: Call) -> ActingEnterpriseView:
    _live(call.user)
    from chalicelib.enterprise.domain import ENTERPRISE_TYPE_ZH
    from chalicelib.enterprise.grants import not_acting

    acting = deps.agent_grants().acting(call.user)
    enterprise = deps.enterprises().get(acting.uscc)
    if enterprise is None:
        raise not_acting()
    return ActingEnterpriseView(
        uscc=enterprise.uscc,
        company_name=enterprise.company_name,
        enterprise_type=enterprise.enterprise_type.value,
        enterprise_type_zh=ENTERPRISE_TYPE_ZH[enterprise.enterprise_type],
        legal_person_type=enterprise.legal_person_type.value,
        representative_name=enterprise.representative_name_masked,
        real_name_status="verified",
        created_at=enterprise.created_at,
        my_role=acting.role,
        my_role_zh=ROLE_ZH[acting.role],
        my_login_name=acting.account.login_name,
        my_name_masked=acting.account.name_masked,
    )


@route(
    bp,
    "/v1/enterprise/agents",
    summary="The enterprise's agent applications and agents (its legal-person account only)",
    roles=ACCOUNT_ROLES,
    response=AgentGrantList,
    query=AgentQuery,
    tags=("enterprise",),
)
def list_agents(call: Call) -> AgentGrantList:
    _live(call.user)
    query: AgentQuery = call.query
    grants, cursor = deps.agent_grants().listing(call.user, query.status, query.limit, query.cursor)
    return AgentGrantList(items=[_grant(g) for g in grants], next_cursor=cursor)


def _decide(call: Call, account_id: str, decision: str) -> AgentGrantView:
    _live(call.user)
    body: AgentDecisionBody = call.body
    grants = deps.agent_grants()
    if decision == "approve":
        grant = grants.approve(call.user, account_id)
    elif decision == "reject":
        grant = grants.reject(call.user, account_id, body.reason)
    else:
        grant = grants.revoke(call.user, account_id, body.reason)
    logger.info("agent decided", extra={"decision": decision, "agent_account_id": account_id})
    return _grant(grant)


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/approve",
    method="POST",
    summary="Approve a pending agent application (the legal-person account)",
    roles=ACCOUNT_ROLES,
    body=AgentDecisionBody,
    response=AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def approve_agent(call: Call, account_id: str) -> AgentGrantView:
    return _decide(call, account_id, "approve")


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/reject",
    method="POST",
    summary="Reject a pending agent application, with a reason (the legal-person account)",
    roles=ACCOUNT_ROLES,
    body=AgentDecisionBody,
    response=AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def reject_agent(call: Call, account_id: str) -> AgentGrantView:
    return _decide(call, account_id, "reject")


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/revoke",
    method="POST",
    summary="Revoke an agent: it acts for the enterprise no more, and every session of it ends",
    roles=ACCOUNT_ROLES,
    body=AgentDecisionBody,
    response=AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def revoke_agent(call: Call, account_id: str) -> AgentGrantView:
    return _decide(call, account_id, "revoke")


@route(
    bp,
    "/v1/enterprise/actions",
    summary="The enterprise's action log, newest first (the legal person: all; an agent: its own)",
    roles=ACCOUNT_ROLES,
    response=EnterpriseActionList,
    query=PageQuery,
    tags=("enterprise",),
)
def enterprise_actions(call: Call) -> EnterpriseActionList:
    _live(call.user)
    query: PageQuery = call.query
    acting = deps.agent_grants().acting(call.user)
    actor = None if acting.role is ActorRole.LEGAL else acting.account.account_id
    found, cursor = deps.enterprise_actions().listing(acting.uscc, actor, query.limit, query.cursor)
    return EnterpriseActionList(items=[_action(a) for a in found], next_cursor=cursor)


@route(
    bp,
    "/v1/admin/enterprises/{uscc}/actions",
    summary="An enterprise's action log, newest first (the OEM's auditor)",
    roles=AUDIT_ROLES,
    response=EnterpriseActionList,
    query=PageQuery,
    tags=("enterprise",),
)
def audit_enterprise_actions(call: Call, uscc: str) -> EnterpriseActionList:
    from chalicelib.enterprise.registry import normalise_uscc

    query: PageQuery = call.query
    found, cursor = deps.enterprise_actions().listing(normalise_uscc(uscc), None, query.limit, query.cursor)
    logger.info("enterprise actions read", extra={"count": len(found)})
    return EnterpriseActionList(items=[_action(a) for a in found], next_cursor=cursor)
