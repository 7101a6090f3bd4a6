"""The spot-check cases in DynamoDB: opened once per operator callback, answered once (conditional
writes), listed by status and deadline through an index."""

from __future__ import annotations

import contextlib
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.flows import _decode_cursor, _encode_cursor
from chalicelib.adapters.dynamo.models_spot_checks import SpotCheckModel
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from chalicelib.operators.domain.spot_checks import (
    SpotCheck,
    spot_check_answered,
    spot_check_not_found,
)
from chalicelib.registration.spot_checks import SpotCheckStore


def _check(item: SpotCheckModel) -> SpotCheck:
    return SpotCheck(
        check_id=item.check_id,
        callback_id=item.callback_id,
        operator=Operator(item.operator),
        iccid=item.iccid,
        message_id=item.message_id,
        registration_id=item.registration_id,
        flow_ids=list(item.flow_ids or []),
        reason_code=item.reason_code,
        reason_zh=item.reason_zh,
        reason_en=item.reason_en,
        status=SpotCheckStatus(item.status),
        received_at=utc_aware(item.received_at),
        due_at=utc_aware(item.due_at),
        answered_at=utc_aware(item.answered_at) if item.answered_at else None,
        answered_by=item.answered_by,
        verdict=SpotCheckVerdict(item.verdict) if item.verdict else None,
        note=item.note,
        late=item.late,
        answer_record_id=item.answer_record_id,
    )


class DynamoSpotChecks(SpotCheckStore):
    def open(self, check: SpotCheck) -> tuple[SpotCheck, bool]:
        values: dict[str, Any] = {
            "callback_id": check.callback_id,
            "operator": check.operator.value,
            "iccid": check.iccid,
            "message_id": check.message_id,
            "registration_id": check.registration_id,
            "flow_ids": list(check.flow_ids),
            "reason_code": check.reason_code,
            "reason_zh": check.reason_zh,
            "reason_en": check.reason_en,
            "status": check.status.value,
            "received_at": check.received_at,
            "due_at": check.due_at,
        }
        try:
            SpotCheckModel(check.check_id, **values).save(condition=SpotCheckModel.check_id.does_not_exist())
        except PutError:
            existing = self.get(check.check_id)
            if existing is None:
                raise
            return existing, False
        return check, True

    def get(self, check_id: str) -> SpotCheck | None:
        try:
            return _check(SpotCheckModel.get(check_id, consistent_read=True))
        except DoesNotExist:
            return None

    def page(
        self, status: SpotCheckStatus, limit: int, cursor: str | None
    ) -> tuple[list[SpotCheck], str | None]:
        result = SpotCheckModel.by_status.query(
            status.value, limit=limit, last_evaluated_key=_decode_cursor(cursor)
        )
        checks = [_check(item) for item in result]
        return checks, _encode_cursor(result.last_evaluated_key)

    def answer(self, answered: SpotCheck) -> SpotCheck:
        assert answered.verdict is not None
        assert answered.answered_at is not None
        assert answered.answered_by is not None
        assert answered.answer_record_id is not None
        actions: list[Action] = [
            SpotCheckModel.status.set(SpotCheckStatus.ANSWERED.value),
            SpotCheckModel.answered_at.set(answered.answered_at),
            SpotCheckModel.answered_by.set(answered.answered_by),
            SpotCheckModel.verdict.set(answered.verdict.value),
            SpotCheckModel.late.set(bool(answered.late)),
            SpotCheckModel.answer_record_id.set(answered.answer_record_id),
        ]
        if answered.note:
            actions.append(SpotCheckModel.note.set(answered.note))
        try:
            SpotCheckModel(answered.check_id).update(
                actions=actions, condition=SpotCheckModel.status == SpotCheckStatus.OPEN.value
            )
        except UpdateError as exc:
            current = self.get(answered.check_id)
            if current is None:
                raise spot_check_not_found() from exc
            raise spot_check_answered(current) from exc
        stored = self.get(answered.check_id)
        assert stored is not None
        return stored

    def reopen(self, check_id: str, record_id: str) -> None:
        # Only that answer's: another answer is not this one to undo.
        with contextlib.suppress(UpdateError):
            SpotCheckModel(check_id).update(
                actions=[
                    SpotCheckModel.status.set(SpotCheckStatus.OPEN.value),
                    SpotCheckModel.answered_at.remove(),
                    SpotCheckModel.answered_by.remove(),
                    SpotCheckModel.verdict.remove(),
                    SpotCheckModel.note.remove(),
                    SpotCheckModel.late.remove(),
                    SpotCheckModel.answer_record_id.remove(),
                ],
                condition=SpotCheckModel.answer_record_id == record_id,
            )
