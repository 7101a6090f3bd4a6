"""Recording and reading the enterprise action log (企业操作记录): every action for an enterprise under
the name of whoever took it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from chalicelib.enterprise.actions_domain import AccountFacts, Acting, ActorRole, EnterpriseAction
from chalicelib.enterprise.agent_ports import ActionStore
from chalicelib.enterprise.grants import not_acting
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.paging import MAX_PAGE

if TYPE_CHECKING:
    from chalicelib.core.auth import Principal


class EnterpriseActions:
    def __init__(
        self,
        store: ActionStore,
        *,
        account_of: Callable[[str], AccountFacts | None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._account_of = account_of
        self._clock = clock

    def record(
        self, uscc: str, principal: Principal, action: str, details: Mapping[str, str] | None = None
    ) -> EnterpriseAction:
        """Record ``action`` the caller took for the enterprise ``uscc`` (which the caller's route
        checked with ``AgentGrants.acting``), under the caller's account as it is now; ``details``: ids
        only. The role is the legal person's when the account is the enterprise's own, else the agent's."""
        account = self._account_of(principal.subject) if self._account_of is not None else None
        if account is None:
            raise not_acting()
        legal = account.kind == "legal" and account.enterprise_uscc == uscc
        return self.record_as(uscc, account, ActorRole.LEGAL if legal else ActorRole.AGENT, action, details)

    def record_acting(
        self, acting: Acting, action: str, details: Mapping[str, str] | None = None
    ) -> EnterpriseAction:
        """Record ``action`` taken by ``acting`` (as ``AgentGrants.acting`` found it) for its enterprise."""
        return self.record_as(acting.uscc, acting.account, acting.role, action, details)

    def record_as(
        self,
        uscc: str,
        account: AccountFacts,
        role: ActorRole,
        action: str,
        details: Mapping[str, str] | None = None,
    ) -> EnterpriseAction:
        now = self._clock()
        entry = EnterpriseAction(
            uscc=uscc,
            action_id=f"{now.strftime('%Y%m%dT%H%M%S%fZ')}#{secrets.token_hex(4)}",
            at=now,
            actor_account_id=account.account_id,
            actor_login_name=account.login_name,
            actor_name_masked=account.name_masked,
            actor_role=role,
            action=str(action),
            details={str(k): str(v) for k, v in (details or {}).items()},
        )
        self._store.append(entry)
        return entry

    def listing(
        self, uscc: str, actor: str | None, limit: int = MAX_PAGE, cursor: str | None = None
    ) -> tuple[Sequence[EnterpriseAction], str | None]:
        """A page of the enterprise's actions, newest first; only ``actor``'s when given (an agent sees
        its own)."""
        return self._store.of_enterprise(uscc, actor, max(1, min(limit, MAX_PAGE)), cursor)
