"""The enterprise (单位) as its accounts see it: agents (经办人) apply, the legal-person account approves,
rejects or revokes them, and every action for the enterprise is recorded under the name of whoever took
it (企业操作记录). The OEM's auditor reads an enterprise's actions.

Who acts for which enterprise is re-read from the store on every call (``AgentGrants.acting``): a
token's ``ent`` claim is a hint, and an agent revoked a moment ago is refused at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role
from chalicelib.core.observability import logger

if TYPE_CHECKING:
    from chalicelib.api import enterprise_views as views
    from chalicelib.api import models as api_models
    from chalicelib.enterprise import actions_domain
else:
    api_models = lazy.module("chalicelib.api.models")
    views = lazy.module("chalicelib.api.enterprise_views")
    actions_domain = lazy.module("chalicelib.enterprise.actions_domain")

bp = Blueprint(__name__)

#: Any signed-in portal account (the service decides what each may do for which enterprise).
ACCOUNT_ROLES = frozenset({Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})
#: Who reads an enterprise's action log at the OEM.
AUDIT_ROLES = frozenset({Role.AUDITOR})


def _live(principal: Principal) -> None:
    """A portal account's token is honoured only while its sign-in session lives."""
    deps.accounts().require_live_session(principal)


@route(
    bp,
    "/v1/enterprise/agent-applications",
    method="POST",
    summary="Apply to act for an enterprise (经办人), naming it by company name and USCC",
    roles=ACCOUNT_ROLES,
    body=lambda: views.AgentApplicationBody,
    response=lambda: views.AgentGrantView,
    status=201,
    errors=(404, 409),
    tags=("enterprise",),
)
def apply_as_agent(call: Call) -> views.AgentGrantView:
    _live(call.user)
    body: views.AgentApplicationBody = call.body
    grant = deps.agent_grants().apply(call.user.subject, body.company_name, body.uscc)
    enterprise = deps.enterprises().get(grant.uscc)
    return views.grant_view(grant, enterprise.company_name if enterprise else None)


@route(
    bp,
    "/v1/enterprise/agent-applications",
    summary="My applications to act for enterprises, and their status",
    roles=ACCOUNT_ROLES,
    response=lambda: views.AgentGrantList,
    tags=("enterprise",),
)
def my_applications(call: Call) -> views.AgentGrantList:
    _live(call.user)
    registry = deps.enterprises()
    items = []
    for grant in deps.agent_grants().applications_of(call.user.subject):
        enterprise = registry.get(grant.uscc)
        items.append(views.grant_view(grant, enterprise.company_name if enterprise else None))
    items.sort(key=lambda g: g.applied_at, reverse=True)
    return views.AgentGrantList(items=items)


@route(
    bp,
    "/v1/enterprise",
    summary="The enterprise the caller acts for (as its legal person or an approved agent)",
    roles=ACCOUNT_ROLES,
    response=lambda: views.ActingEnterpriseView,
    errors=(404,),
    tags=("enterprise",),
)
def my_enterprise(call: Call) -> views.ActingEnterpriseView:
    _live(call.user)
    from chalicelib.enterprise.domain import ENTERPRISE_TYPE_ZH
    from chalicelib.enterprise.grants import not_acting

    acting = deps.agent_grants().acting(call.user)
    enterprise = deps.enterprises().get(acting.uscc)
    if enterprise is None:
        raise not_acting()
    return views.ActingEnterpriseView(
        uscc=enterprise.uscc,
        company_name=enterprise.company_name,
        enterprise_type=enterprise.enterprise_type.value,
        enterprise_type_zh=ENTERPRISE_TYPE_ZH[enterprise.enterprise_type],
        legal_person_type=enterprise.legal_person_type.value,
        representative_name=enterprise.representative_name_masked,
        real_name_status="verified",
        created_at=enterprise.created_at,
        my_role=acting.role,
        my_role_zh=views.ROLE_ZH[acting.role],
        my_login_name=acting.account.login_name,
        my_name_masked=acting.account.name_masked,
    )


@route(
    bp,
    "/v1/enterprise/agents",
    summary="The enterprise's agent applications and agents (its legal-person account only)",
    roles=ACCOUNT_ROLES,
    response=lambda: views.AgentGrantList,
    query=lambda: views.AgentQuery,
    tags=("enterprise",),
)
def list_agents(call: Call) -> views.AgentGrantList:
    _live(call.user)
    query: views.AgentQuery = call.query
    grants, cursor = deps.agent_grants().listing(call.user, query.status, query.limit, query.cursor)
    return views.AgentGrantList(items=[views.grant_view(g) for g in grants], next_cursor=cursor)


def _decide(call: Call, account_id: str, decision: str) -> views.AgentGrantView:
    _live(call.user)
    body: views.AgentDecisionBody = call.body
    grants = deps.agent_grants()
    if decision == "approve":
        grant = grants.approve(call.user, account_id)
    elif decision == "reject":
        grant = grants.reject(call.user, account_id, body.reason)
    else:
        grant = grants.revoke(call.user, account_id, body.reason)
    logger.info("agent decided", extra={"decision": decision, "agent_account_id": account_id})
    return views.grant_view(grant)


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/approve",
    method="POST",
    summary="Approve a pending agent application (the legal-person account)",
    roles=ACCOUNT_ROLES,
    body=lambda: views.AgentDecisionBody,
    response=lambda: views.AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def approve_agent(call: Call, account_id: str) -> views.AgentGrantView:
    return _decide(call, account_id, "approve")


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/reject",
    method="POST",
    summary="Reject a pending agent application, with a reason (the legal-person account)",
    roles=ACCOUNT_ROLES,
    body=lambda: views.AgentDecisionBody,
    response=lambda: views.AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def reject_agent(call: Call, account_id: str) -> views.AgentGrantView:
    return _decide(call, account_id, "reject")


@route(
    bp,
    "/v1/enterprise/agents/{account_id}/revoke",
    method="POST",
    summary="Revoke an agent: it acts for the enterprise no more, and every session of it ends",
    roles=ACCOUNT_ROLES,
    body=lambda: views.AgentDecisionBody,
    response=lambda: views.AgentGrantView,
    errors=(404, 409),
    tags=("enterprise",),
)
def revoke_agent(call: Call, account_id: str) -> views.AgentGrantView:
    return _decide(call, account_id, "revoke")


@route(
    bp,
    "/v1/enterprise/actions",
    summary="The enterprise's action log, newest first (the legal person: all; an agent: its own)",
    roles=ACCOUNT_ROLES,
    response=lambda: views.EnterpriseActionList,
    query=lambda: api_models.PageQuery,
    tags=("enterprise",),
)
def enterprise_actions(call: Call) -> views.EnterpriseActionList:
    _live(call.user)
    query: api_models.PageQuery = call.query
    acting = deps.agent_grants().acting(call.user)
    actor = None if acting.role is actions_domain.ActorRole.LEGAL else acting.account.account_id
    found, cursor = deps.enterprise_actions().listing(acting.uscc, actor, query.limit, query.cursor)
    return views.EnterpriseActionList(items=[views.action_view(a) for a in found], next_cursor=cursor)


@route(
    bp,
    "/v1/admin/enterprises/{uscc}/actions",
    summary="An enterprise's action log, newest first (the OEM's auditor)",
    roles=AUDIT_ROLES,
    response=lambda: views.EnterpriseActionList,
    query=lambda: api_models.PageQuery,
    tags=("enterprise",),
)
def audit_enterprise_actions(call: Call, uscc: str) -> views.EnterpriseActionList:
    from chalicelib.enterprise.registry import normalise_uscc

    query: api_models.PageQuery = call.query
    found, cursor = deps.enterprise_actions().listing(normalise_uscc(uscc), None, query.limit, query.cursor)
    logger.info("enterprise actions read", extra={"count": len(found)})
    return views.EnterpriseActionList(items=[views.action_view(a) for a in found], next_cursor=cursor)
