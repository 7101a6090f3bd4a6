"""Fleet cases and staff affiliations in DynamoDB: the task token taken with a conditional write (single
use), decisions appended, the queue read through the status index."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.flows import _decode_cursor, _encode_cursor
from chalicelib.adapters.dynamo.models_fleet_cases import FleetCaseModel, StaffAffiliationModel
from chalicelib.fleet.cases_domain import (
    AffiliationStore,
    CasePage,
    CaseStage,
    CaseStore,
    FleetCase,
    HeldToken,
    TokenTask,
    case_not_found,
)
from chalicelib.fleet.domain import BatchStatus
from chalicelib.kernel.crypto import SealedFields

_CONDITION_FAILED = "ConditionalCheckFailedException"


def _at(value: datetime | None) -> datetime | None:
    return utc_aware(value) if value is not None else None


def _token(item: FleetCaseModel) -> HeldToken | None:
    if not item.token_id or item.token_enc is None or item.token_data_key is None:
        return None
    return HeldToken(
        token_id=item.token_id,
        task=TokenTask(item.token_task),
        sealed=SealedFields(data_key=item.token_data_key, values={"token": item.token_enc}),
        stage=CaseStage(item.token_stage) if item.token_stage else None,
        stored_at=utc_aware(item.token_stored_at) if item.token_stored_at else utc_aware(item.updated_at),
        digest=item.token_digest or "",
    )


def _case(item: FleetCaseModel) -> FleetCase:
    return FleetCase(
        batch_id=item.batch_id,
        uscc=item.uscc,
        company_name=item.company_name,
        kind=item.kind,
        vehicles=int(item.vehicles),
        status=BatchStatus(item.status),
        round=int(item.round),
        opened_at=utc_aware(item.opened_at),
        submitted_at=_at(item.submitted_at),
        remind_at=_at(item.remind_at),
        deadline_at=_at(item.deadline_at),
        outcome=item.outcome,
        checks=tuple(json.loads(item.checks or "[]")),
        stage=CaseStage(item.stage) if item.stage else None,
        escalated=bool(item.escalated),
        reminded=bool(item.reminded),
        first_approver=item.first_approver,
        decisions=tuple(json.loads(d) for d in item.decisions or []),
        token=_token(item),
        seen_tokens=tuple(item.seen_tokens or ()),
        flow_id=item.flow_id,
        execution_arn=item.execution_arn,
        updated_at=_at(item.updated_at),
    )


def _token_actions(token: HeldToken) -> list[Action]:
    return [
        FleetCaseModel.token_id.set(token.token_id),
        FleetCaseModel.token_task.set(token.task.value),
        FleetCaseModel.token_stage.set(token.stage.value)
        if token.stage
        else FleetCaseModel.token_stage.remove(),
        FleetCaseModel.token_stored_at.set(token.stored_at),
        FleetCaseModel.token_data_key.set(token.sealed.data_key),
        FleetCaseModel.token_enc.set(token.sealed.values["token"]),
        FleetCaseModel.token_digest.set(token.digest),
    ]


class DynamoFleetCases(CaseStore):
    def get(self, batch_id: str) -> FleetCase | None:
        try:
            return _case(FleetCaseModel.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return None

    def save_round(self, case: FleetCase) -> None:
        FleetCaseModel(
            case.batch_id,
            status=case.status.value,
            queue_at=case.deadline_at or case.opened_at,
            uscc=case.uscc,
            company_name=case.company_name,
            kind=case.kind,
            vehicles=case.vehicles,
            round=case.round,
            outcome=case.outcome,
            opened_at=case.opened_at,
            submitted_at=case.submitted_at,
            remind_at=case.remind_at,
            deadline_at=case.deadline_at,
            checks=json.dumps(list(case.checks), ensure_ascii=False, default=str),
            stage=case.stage.value if case.stage else None,
            escalated=case.escalated,
            reminded=case.reminded,
            first_approver=case.first_approver,
            decisions=[json.dumps(d, ensure_ascii=False) for d in case.decisions] or None,
            seen_tokens=list(case.seen_tokens) or None,
            flow_id=case.flow_id,
            execution_arn=case.execution_arn,
            updated_at=case.updated_at or case.opened_at,
        ).save()

    def _update(self, batch_id: str, actions: list[Action], condition: Condition | None = None) -> bool:
        exists = FleetCaseModel.batch_id.exists()
        try:
            FleetCaseModel(batch_id).update(
                actions=actions, condition=exists & condition if condition is not None else exists
            )
        except UpdateError as exc:
            if exc.cause_response_code != _CONDITION_FAILED:
                raise
            if self.get(batch_id) is None:
                raise case_not_found(batch_id) from exc
            return False
        return True

    def hold_token(
        self, batch_id: str, token: HeldToken, *, status: BatchStatus | None, escalated: bool | None
    ) -> bool:
        actions = _token_actions(token)
        actions.append(FleetCaseModel.updated_at.set(token.stored_at))
        actions.append(
            FleetCaseModel.seen_tokens.set((FleetCaseModel.seen_tokens | []).append([token.digest]))
        )
        if token.task is TokenTask.REVIEW and token.stage is not None:
            actions.append(FleetCaseModel.stage.set(token.stage.value))
        if status is not None:
            actions.append(FleetCaseModel.status.set(status.value))
        if escalated is not None:
            actions.append(FleetCaseModel.escalated.set(escalated))
        return self._update(batch_id, actions, ~FleetCaseModel.seen_tokens.contains(token.digest))

    def take_token(self, batch_id: str, token_id: str) -> bool:
        actions: list[Action] = [
            FleetCaseModel.token_id.remove(),
            FleetCaseModel.token_task.remove(),
            FleetCaseModel.token_stage.remove(),
            FleetCaseModel.token_stored_at.remove(),
            FleetCaseModel.token_data_key.remove(),
            FleetCaseModel.token_enc.remove(),
            FleetCaseModel.token_digest.remove(),
        ]
        return self._update(batch_id, actions, FleetCaseModel.token_id == token_id)

    def give_back_token(self, batch_id: str, token: HeldToken) -> None:
        self._update(batch_id, _token_actions(token), FleetCaseModel.token_id.does_not_exist())

    def record_decision(
        self,
        batch_id: str,
        decision: dict[str, Any],
        *,
        status: BatchStatus,
        stage: CaseStage | None,
        first_approver: str | None,
    ) -> FleetCase:
        at = datetime.fromisoformat(str(decision["at"]))
        actions: list[Action] = [
            FleetCaseModel.decisions.set(
                (FleetCaseModel.decisions | []).append([json.dumps(decision, ensure_ascii=False)])
            ),
            FleetCaseModel.status.set(status.value),
            FleetCaseModel.stage.set(stage.value) if stage else FleetCaseModel.stage.remove(),
            FleetCaseModel.updated_at.set(at),
        ]
        if status is not BatchStatus.IN_REVIEW:
            actions.append(FleetCaseModel.queue_at.set(at))
        if first_approver:
            actions.append(FleetCaseModel.first_approver.set(first_approver))
        self._update(batch_id, actions)
        stored = self.get(batch_id)
        assert stored is not None
        return stored

    def set_status(self, batch_id: str, status: BatchStatus, *, stage: CaseStage | None = None) -> None:
        actions: list[Action] = [
            FleetCaseModel.status.set(status.value),
            FleetCaseModel.stage.set(stage.value) if stage else FleetCaseModel.stage.remove(),
        ]
        self._update(batch_id, actions)

    def mark_reminded(self, batch_id: str) -> bool:
        return self._update(
            batch_id,
            [FleetCaseModel.reminded.set(True)],
            FleetCaseModel.reminded.does_not_exist() | (FleetCaseModel.reminded == False),  # noqa: E712
        )

    def page(
        self,
        status: BatchStatus,
        *,
        stage: CaseStage | None,
        overdue: bool | None,
        uscc: str | None,
        now: datetime,
        limit: int,
        cursor: str | None,
    ) -> CasePage:
        range_condition: Condition | None = None
        if overdue is not None:
            if status is not BatchStatus.IN_REVIEW:
                return (
                    CasePage([], None)
                    if overdue
                    else self.page(
                        status, stage=stage, overdue=None, uscc=uscc, now=now, limit=limit, cursor=cursor
                    )
                )
            # In review, a case's place in the queue is its deadline.
            range_condition = FleetCaseModel.queue_at < now if overdue else FleetCaseModel.queue_at >= now
        filters: list[Condition] = []
        if stage is not None:
            filters.append(FleetCaseModel.stage == stage.value)
        if uscc is not None:
            filters.append(FleetCaseModel.uscc == uscc)
        filter_condition: Condition | None = None
        for f in filters:
            filter_condition = f if filter_condition is None else filter_condition & f
        result = FleetCaseModel.by_status.query(
            status.value,
            range_key_condition=range_condition,
            filter_condition=filter_condition,
            limit=limit,
            last_evaluated_key=_decode_cursor(cursor),
        )
        cases = [_case(item) for item in result]
        return CasePage(cases, _encode_cursor(result.last_evaluated_key))


class DynamoStaffAffiliations(AffiliationStore):
    def get(self, subject: str) -> tuple[str, ...]:
        try:
            item = StaffAffiliationModel.get(subject, consistent_read=True)
        except DoesNotExist:
            return ()
        return tuple(item.usccs or ())

    def put(self, subject: str, usccs: Sequence[str], by: str, at: datetime) -> tuple[str, ...]:
        StaffAffiliationModel(subject, usccs=list(usccs) or None, updated_by=by, updated_at=at).save()
        return tuple(usccs)
