"""The enterprise action log (企业操作记录) as kept: who did what for which enterprise, when.

Every action an agent or the legal person takes for an enterprise is recorded under their name: the
account id and login name, their masked real name and the role they acted in. ``details`` holds ids and
codes only (an application's account id, a VIN), never personal data in clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ActionKind(StrEnum):
    AGENT_APPLIED = "agent.applied"
    AGENT_APPROVED = "agent.approved"
    AGENT_REJECTED = "agent.rejected"
    AGENT_REVOKED = "agent.revoked"


class ActorRole(StrEnum):
    LEGAL = "enterprise_legal"
    AGENT = "enterprise_agent"
    APPLICANT = "applicant"


@dataclass(frozen=True)
class AccountFacts:
    """What this context needs of a portal account, re-read from the accounts store on every call."""

    account_id: str
    login_name: str
    kind: str  # AccountKind value: unverified | natural | legal | dealer
    active: bool
    name_masked: str  # the real name, masked ("" before real-name)
    enterprise_uscc: str | None = None  # a legal-person account's own enterprise
    dealer_code: str | None = None  # a dealer account's dealer code


@dataclass(frozen=True)
class Acting:
    """Whom the caller acts as, for which enterprise (re-read from the store on every call)."""

    uscc: str
    role: ActorRole
    account: AccountFacts


@dataclass(frozen=True)
class EnterpriseAction:
    uscc: str
    #: Time-ordered and unique within the enterprise: ``<UTC time to the microsecond>#<random hex>``.
    action_id: str
    at: datetime
    actor_account_id: str
    actor_login_name: str
    actor_name_masked: str
    actor_role: ActorRole
    action: str
    details: dict[str, str] = field(default_factory=dict)
