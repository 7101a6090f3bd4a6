"""Where agent grants and the enterprise action log are kept (ABCs; the adapters live in
``chalicelib.adapters.dynamo``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from chalicelib.enterprise.actions_domain import EnterpriseAction
from chalicelib.enterprise.grants import AgentGrant, GrantStatus


class GrantStore(ABC):
    @abstractmethod
    def get(self, account_id: str, uscc: str) -> AgentGrant | None: ...

    @abstractmethod
    def of_account(self, account_id: str) -> list[AgentGrant]:
        """Every grant of the account (a handful: one per enterprise applied to)."""

    @abstractmethod
    def of_enterprise(
        self, uscc: str, status: GrantStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[AgentGrant], str | None]:
        """A page of the enterprise's grants (all statuses, or one), and the cursor of the next."""

    @abstractmethod
    def put_application(self, grant: AgentGrant, replaces: AgentGrant | None) -> bool:
        """Keep a new pending application: only if no grant of (account, enterprise) exists, or the one
        kept is still ``replaces`` (a rejected or revoked one). False when that changed meanwhile."""

    @abstractmethod
    def approve(self, grant: AgentGrant, approved: AgentGrant) -> bool:
        """Make ``approved`` the grant and the account's one active enterprise, if the grant is still as
        read and the account acts for no enterprise. False otherwise."""

    @abstractmethod
    def decide(self, grant: AgentGrant, decided: AgentGrant) -> bool:
        """Reject (from pending) or revoke (from approved; the account's active enterprise goes with
        it), if the grant is still as read. False otherwise."""

    @abstractmethod
    def active_for(self, account_id: str) -> str | None:
        """The USCC the account acts for (its approved grant), read consistently; None if none."""


class ActionStore(ABC):
    @abstractmethod
    def append(self, action: EnterpriseAction) -> None: ...

    @abstractmethod
    def of_enterprise(
        self, uscc: str, actor: str | None, limit: int, cursor: str | None
    ) -> tuple[Sequence[EnterpriseAction], str | None]:
        """A page of the enterprise's actions, newest first (only ``actor``'s when given)."""
