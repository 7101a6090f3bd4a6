"""Tables of enterprise agents (经办人) and the enterprise action log.

- ``agent-grants``: one item per (account, enterprise) application (range key = the USCC), and per
  account one ``#active`` item naming the enterprise it acts for (written in the same transaction as an
  approval, deleted with the revocation: an agent acts for one enterprise at a time, and
  ``active_for`` is one consistent GetItem). ``by-enterprise`` lists an enterprise's applications and
  agents (the ``#active`` items carry no ``uscc`` and stay out of it).
- ``enterprise-actions``: one item per action taken for an enterprise, keyed by USCC and a time-ordered
  id; ``by-actor`` lists one account's actions within the enterprise (an agent reads its own).
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound

#: The range key of an account's "acts for" item.
ACTIVE_KEY = "#active"


class GrantsByEnterprise(GlobalSecondaryIndex["AgentGrantModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-enterprise"
        projection = AllProjection()

    uscc = UnicodeAttribute(hash_key=True)
    applied_at = UTCDateTimeAttribute(range_key=True)


class AgentGrantModel(Unbound):
    """经办人授权: an account's application to an enterprise and its decision; or its ``#active`` item."""

    class Meta(Unbound.Meta):
        table_name = "agent-grants"

    account_id = UnicodeAttribute(hash_key=True)
    grant_key = UnicodeAttribute(range_key=True)  # the USCC, or ACTIVE_KEY
    uscc = UnicodeAttribute(null=True)  # grants only (the index's key)
    active_uscc = UnicodeAttribute(null=True)  # the #active item only
    status = UnicodeAttribute(null=True)
    login_name = UnicodeAttribute(null=True)
    name_masked = UnicodeAttribute(null=True)
    applied_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)

    by_enterprise = GrantsByEnterprise()


class ActionsByActor(GlobalSecondaryIndex["EnterpriseActionModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-actor"
        projection = AllProjection()

    actor_key = UnicodeAttribute(hash_key=True)  # "<uscc>#<account id>"
    action_id = UnicodeAttribute(range_key=True)


class EnterpriseActionModel(Unbound):
    """企业操作记录: who (account id, login name, masked name, role) did what (ids only) and when."""

    class Meta(Unbound.Meta):
        table_name = "enterprise-actions"

    uscc = UnicodeAttribute(hash_key=True)
    action_id = UnicodeAttribute(range_key=True)
    at = UTCDateTimeAttribute()
    actor_key = UnicodeAttribute()
    actor_account_id = UnicodeAttribute()
    actor_login_name = UnicodeAttribute()
    actor_name_masked = UnicodeAttribute()
    actor_role = UnicodeAttribute()
    action = UnicodeAttribute()
    details_json = UnicodeAttribute()

    by_actor = ActionsByActor()


AGENT_TABLES: tuple[TableSpec, ...] = (
    TableSpec("agent-grants", AgentGrantModel),
    TableSpec("enterprise-actions", EnterpriseActionModel),
)
