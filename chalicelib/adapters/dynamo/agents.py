"""Agent grants and the enterprise action log on DynamoDB: approvals and revocations are transactions
over the grant and the account's ``#active`` item."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_agents import ACTIVE_KEY, AgentGrantModel, EnterpriseActionModel
from chalicelib.enterprise.actions_domain import ActorRole, EnterpriseAction
from chalicelib.enterprise.agent_ports import ActionStore, GrantStore
from chalicelib.enterprise.grants import AgentGrant, GrantStatus
from chalicelib.kernel.errors import BadRequest

_CONDITION_FAILED = "ConditionalCheckFailedException"


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(key, dict):
        raise _bad_cursor()
    return key


def _bad_cursor() -> BadRequest:
    return BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")


def _grant(item: AgentGrantModel) -> AgentGrant:
    assert item.uscc is not None
    assert item.status is not None
    assert item.applied_at is not None
    return AgentGrant(
        account_id=item.account_id,
        uscc=item.uscc,
        status=GrantStatus(item.status),
        login_name=item.login_name or "",
        name_masked=item.name_masked or "",
        applied_at=utc_aware(item.applied_at),
        version=int(item.version or 1),
        decided_at=utc_aware(item.decided_at) if item.decided_at else None,
        decided_by=item.decided_by,
        reason=item.reason,
    )


def _item(grant: AgentGrant) -> AgentGrantModel:
    return AgentGrantModel(
        grant.account_id,
        grant.uscc,
        uscc=grant.uscc,
        status=grant.status.value,
        login_name=grant.login_name,
        name_masked=grant.name_masked,
        applied_at=grant.applied_at,
        version=grant.version,
        decided_at=grant.decided_at,
        decided_by=grant.decided_by,
        reason=grant.reason,
    )


def _as_read(grant: AgentGrant) -> Any:
    return (AgentGrantModel.version == grant.version) & (AgentGrantModel.status == grant.status.value)


def _cancelled(exc: TransactWriteError) -> bool:
    codes = {r.code for r in (exc.cancellation_reasons or []) if r is not None}
    return bool(codes) and codes <= {_CONDITION_FAILED, "None", None}


class DynamoGrantStore(GrantStore):
    def get(self, account_id: str, uscc: str) -> AgentGrant | None:
        try:
            return _grant(AgentGrantModel.get(account_id, uscc, consistent_read=True))
        except DoesNotExist:
            return None

    def of_account(self, account_id: str) -> list[AgentGrant]:
        return [
            _grant(item)
            for item in AgentGrantModel.query(account_id, consistent_read=True)
            if item.grant_key != ACTIVE_KEY
        ]

    def of_enterprise(
        self, uscc: str, status: GrantStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[AgentGrant], str | None]:
        condition = (AgentGrantModel.status == status.value) if status else None
        result = AgentGrantModel.by_enterprise.query(
            uscc,
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor),
        )
        grants = [_grant(item) for item in result]
        return grants, encode_cursor(result.last_evaluated_key)

    def put_application(self, grant: AgentGrant, replaces: AgentGrant | None) -> bool:
        condition = AgentGrantModel.account_id.does_not_exist() if replaces is None else _as_read(replaces)
        try:
            _item(grant).save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def approve(self, grant: AgentGrant, approved: AgentGrant) -> bool:
        try:
            with TransactWrite(connection=AgentGrantModel._get_connection().connection) as tx:
                tx.save(_item(approved), condition=_as_read(grant))
                tx.save(
                    AgentGrantModel(grant.account_id, ACTIVE_KEY, active_uscc=grant.uscc),
                    condition=AgentGrantModel.account_id.does_not_exist(),
                )
        except TransactWriteError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    def decide(self, grant: AgentGrant, decided: AgentGrant) -> bool:
        try:
            if grant.status is GrantStatus.APPROVED:
                with TransactWrite(connection=AgentGrantModel._get_connection().connection) as tx:
                    tx.save(_item(decided), condition=_as_read(grant))
                    tx.delete(
                        AgentGrantModel(grant.account_id, ACTIVE_KEY),
                        condition=AgentGrantModel.active_uscc == grant.uscc,
                    )
            else:
                _item(decided).save(condition=_as_read(grant))
        except TransactWriteError as exc:
            if _cancelled(exc):
                return False
            raise
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def active_for(self, account_id: str) -> str | None:
        try:
            item = AgentGrantModel.get(account_id, ACTIVE_KEY, consistent_read=True)
        except DoesNotExist:
            return None
        return item.active_uscc


def _action(item: EnterpriseActionModel) -> EnterpriseAction:
    details = json.loads(item.details_json or "{}")
    return EnterpriseAction(
        uscc=item.uscc,
        action_id=item.action_id,
        at=utc_aware(item.at),
        actor_account_id=item.actor_account_id,
        actor_login_name=item.actor_login_name,
        actor_name_masked=item.actor_name_masked,
        actor_role=ActorRole(item.actor_role),
        action=item.action,
        details={str(k): str(v) for k, v in details.items()},
    )


class DynamoActionStore(ActionStore):
    def append(self, action: EnterpriseAction) -> None:
        EnterpriseActionModel(
            action.uscc,
            action.action_id,
            at=action.at,
            actor_key=f"{action.uscc}#{action.actor_account_id}",
            actor_account_id=action.actor_account_id,
            actor_login_name=action.actor_login_name,
            actor_name_masked=action.actor_name_masked,
            actor_role=action.actor_role.value,
            action=action.action,
            details_json=json.dumps(action.details, sort_keys=True, ensure_ascii=False),
        ).save(condition=EnterpriseActionModel.action_id.does_not_exist())

    def of_enterprise(
        self, uscc: str, actor: str | None, limit: int, cursor: str | None
    ) -> tuple[Sequence[EnterpriseAction], str | None]:
        start = decode_cursor(cursor)
        if actor is None:
            result = EnterpriseActionModel.query(
                uscc, scan_index_forward=False, limit=limit, last_evaluated_key=start
            )
        else:
            result = EnterpriseActionModel.by_actor.query(
                f"{uscc}#{actor}", scan_index_forward=False, limit=limit, last_evaluated_key=start
            )
        found = [_action(item) for item in result]
        return found, encode_cursor(result.last_evaluated_key)
