"""Agents of an enterprise (经办人, seed 001): applications, the legal person's decisions, and who acts
for which enterprise.

``AgentGrants.active_for(account_id)`` is what the accounts context asks when it mints an access token
(an approved agent gets ``enterprise_agent`` and the enterprise's USCC); ``acting_enterprise(principal)``
is what every enterprise route asks, on every call, from the store (a token's ``ent`` claim is a hint:
an agent revoked a second ago is refused at once). This module knows accounts only through the
``AccountFacts`` the composition root hands it (no import of the accounts context).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from chalicelib.core.auth import Principal
from chalicelib.enterprise.actions import EnterpriseActions
from chalicelib.enterprise.actions_domain import AccountFacts, Acting, ActionKind, ActorRole
from chalicelib.enterprise.agent_ports import GrantStore
from chalicelib.enterprise.domain import Enterprise
from chalicelib.enterprise.grants import (
    OPEN_STATUSES,
    AgentGrant,
    GrantStatus,
    acting_elsewhere,
    application_exists,
    enterprise_not_found,
    grant_not_found,
    legal_only,
    normalise_company_name,
    not_a_person_account,
    not_acting,
    real_name_required,
    reason_text,
    wrong_status,
)
from chalicelib.enterprise.registry import normalise_uscc
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.paging import MAX_PAGE

logger = logging.getLogger(__name__)

__all__ = ["AccountFacts", "Acting", "AgentGrants"]

#: Re-reads when a grant changes under a decision or an application.
_RACE_RETRIES = 3


class AgentGrants:
    def __init__(
        self,
        store: GrantStore,
        actions: EnterpriseActions,
        *,
        account_of: Callable[[str], AccountFacts | None],
        enterprise_of: Callable[[str], Enterprise | None],
        end_sessions: Callable[[str], int],
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._actions = actions
        self._account_of = account_of
        self._enterprise_of = enterprise_of
        self._end_sessions = end_sessions
        self._clock = clock

    # -- who acts for whom -------------------------------------------------------------------------

    def active_for(self, account_id: str) -> str | None:
        """The USCC of the account's approved, unrevoked grant (one enterprise at a time), or None."""
        return self._store.active_for(account_id)

    def acting(self, principal: Principal) -> Acting:
        """The enterprise the caller acts for, from the store: a legal-person account's own, or an
        agent's approved grant. Refused when neither (or when the token's ``ent`` names another)."""
        account = self._account_of(principal.subject)
        if account is None or not account.active:
            raise not_acting()
        uscc: str | None = None
        role = ActorRole.AGENT
        if account.kind == "legal" and account.enterprise_uscc:
            uscc, role = account.enterprise_uscc, ActorRole.LEGAL
        else:
            uscc = self._store.active_for(account.account_id)
        if uscc is None or (principal.enterprise is not None and principal.enterprise != uscc):
            raise not_acting()
        return Acting(uscc, role, account)

    def acting_enterprise(self, principal: Principal) -> str:
        """The USCC the caller acts for (see ``acting``)."""
        return self.acting(principal).uscc

    def _legal(self, principal: Principal) -> Acting:
        acting = self.acting(principal)
        if acting.role is not ActorRole.LEGAL:
            raise legal_only()
        return acting

    # -- the applicant ---------------------------------------------------------------------------

    def apply(self, account_id: str, company_name: str, uscc: str) -> AgentGrant:
        """A natural person's application to the enterprise named by ``company_name`` and ``uscc``."""
        account = self._account_of(account_id)
        if account is not None and account.kind in ("legal", "dealer"):
            raise not_a_person_account()
        if account is None or not account.active or account.kind != "natural":
            raise real_name_required()
        wanted = normalise_uscc(uscc)
        enterprise = self._enterprise_of(wanted) if wanted else None
        if enterprise is None or normalise_company_name(enterprise.company_name) != normalise_company_name(
            company_name
        ):
            raise enterprise_not_found()
        for _ in range(_RACE_RETRIES):
            kept = self._store.get(account_id, enterprise.uscc)
            if kept is not None and kept.status in OPEN_STATUSES:
                raise application_exists(kept.status)
            grant = AgentGrant(
                account_id=account_id,
                uscc=enterprise.uscc,
                status=GrantStatus.PENDING,
                login_name=account.login_name,
                name_masked=account.name_masked,
                applied_at=self._clock(),
                version=(kept.version + 1) if kept else 1,
            )
            if self._store.put_application(grant, kept):
                self._actions.record_as(
                    enterprise.uscc, account, ActorRole.APPLICANT, ActionKind.AGENT_APPLIED, {}
                )
                logger.info("agent application", extra={"account_id": account_id})
                return grant
        raise application_exists(GrantStatus.PENDING)

    def applications_of(self, account_id: str) -> list[AgentGrant]:
        return self._store.of_account(account_id)

    # -- the legal person ------------------------------------------------------------------------

    def listing(
        self,
        principal: Principal,
        status: GrantStatus | None,
        limit: int = MAX_PAGE,
        cursor: str | None = None,
    ) -> tuple[list[AgentGrant], str | None]:
        acting = self._legal(principal)
        return self._store.of_enterprise(acting.uscc, status, max(1, min(limit, MAX_PAGE)), cursor)

    def approve(self, principal: Principal, account_id: str) -> AgentGrant:
        acting = self._legal(principal)
        for _ in range(_RACE_RETRIES):
            grant = self._grant(acting.uscc, account_id)
            if grant.status is not GrantStatus.PENDING:
                raise wrong_status(grant.status, GrantStatus.PENDING)
            applicant = self._account_of(account_id)
            if applicant is None or not applicant.active or applicant.kind != "natural":
                raise real_name_required()
            if self._store.active_for(account_id) is not None:
                raise acting_elsewhere()
            approved = self._decided(grant, GrantStatus.APPROVED, acting, None)
            if self._store.approve(grant, approved):
                self._actions.record_acting(
                    acting, ActionKind.AGENT_APPROVED, {"agent_account_id": account_id}
                )
                return approved
        raise wrong_status(GrantStatus.APPROVED, GrantStatus.PENDING)

    def reject(self, principal: Principal, account_id: str, reason: str | None) -> AgentGrant:
        acting = self._legal(principal)
        text = reason_text(reason, required=True)
        return self._close(acting, account_id, GrantStatus.PENDING, GrantStatus.REJECTED, text)

    def revoke(self, principal: Principal, account_id: str, reason: str | None) -> AgentGrant:
        acting = self._legal(principal)
        text = reason_text(reason, required=False)
        revoked = self._close(acting, account_id, GrantStatus.APPROVED, GrantStatus.REVOKED, text)
        ended = self._end_sessions(account_id)
        logger.info("agent revoked", extra={"account_id": account_id, "sessions_ended": ended})
        return revoked

    def _close(
        self, acting: Acting, account_id: str, wanted: GrantStatus, to: GrantStatus, reason: str | None
    ) -> AgentGrant:
        for _ in range(_RACE_RETRIES):
            grant = self._grant(acting.uscc, account_id)
            if grant.status is not wanted:
                raise wrong_status(grant.status, wanted)
            closed = self._decided(grant, to, acting, reason)
            if self._store.decide(grant, closed):
                kind = ActionKind.AGENT_REJECTED if to is GrantStatus.REJECTED else ActionKind.AGENT_REVOKED
                self._actions.record_acting(acting, kind, {"agent_account_id": account_id})
                return closed
        raise wrong_status(to, wanted)

    def _grant(self, uscc: str, account_id: str) -> AgentGrant:
        grant = self._store.get(account_id, uscc)
        if grant is None:
            raise grant_not_found()
        return grant

    def _decided(self, grant: AgentGrant, to: GrantStatus, acting: Acting, reason: str | None) -> AgentGrant:
        return replace(
            grant,
            status=to,
            version=grant.version + 1,
            decided_at=self._clock(),
            decided_by=acting.account.account_id,
            reason=reason,
        )
