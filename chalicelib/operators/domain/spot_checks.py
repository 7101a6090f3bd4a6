"""抽查 (第十条): an operator's spot check of a registration, as a case for the OEM.

The operator asks (a ``SPOT_CHECK`` callback naming the registering push); the OEM's reviewer looks at
the registration's evidence and answers once, confirmed or discrepancy with a note, before the deadline
(the operator's, or ``Settings.spot_check_answer_days``). The answer goes back to the operator through
the outbox (``PushKind.SPOT_CHECK_ANSWER``); one given after the deadline is still sent, marked late.

Pure domain: the case, its id and the refusals; no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import Conflict, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict


class SpotCheck(BaseModel):
    """One spot check: which card and registration, what the operator asked, by when, and the answer."""

    model_config = ConfigDict(frozen=True)

    check_id: str
    callback_id: str  # the operator's spot-check callback: its reference for the answer
    operator: Operator
    iccid: str
    message_id: str  # the push the operator names (the registration's)
    registration_id: str
    #: The verification flows of that registration (the person's; a delegation's owner's too).
    flow_ids: list[str] = Field(default_factory=list)
    reason_code: str | None = None
    reason_zh: str | None = None
    reason_en: str | None = None
    status: SpotCheckStatus = SpotCheckStatus.OPEN
    received_at: AwareDatetime
    due_at: AwareDatetime
    answered_at: AwareDatetime | None = None
    answered_by: str | None = None
    verdict: SpotCheckVerdict | None = None
    note: str | None = None
    late: bool | None = None
    answer_record_id: str | None = None  # the outbox record that carries the answer

    def overdue(self, now: datetime) -> bool:
        """Open past its deadline, or answered after it."""
        if self.status is SpotCheckStatus.ANSWERED:
            return bool(self.late)
        return now > self.due_at


def check_id_for(operator: Operator, callback_id: str) -> str:
    """One case per operator spot check: the same callback delivered twice finds the same case."""
    return "sc" + hashlib.sha256(f"{operator.value}:{callback_id}".encode()).hexdigest()[:30]


def spot_check_not_found() -> NotFound:
    return NotFound("spot_check.not_found", "未找到该抽查", "No spot check with this id", field="check_id")


def spot_check_answered(check: SpotCheck) -> Conflict:
    return Conflict(
        "spot_check.already_answered",
        "该抽查已答复，不能再次答复",
        "This spot check was answered already; it is answered once",
        details={
            "verdict": check.verdict.value if check.verdict else None,
            "answered_at": check.answered_at.isoformat() if check.answered_at else None,
        },
    )


def unknown_card() -> NotFound:
    return NotFound(
        "spot_check.unknown_card",
        "抽查的车联网卡不是本平台登记的卡",
        "The spot check names a card this platform does not have",
        field="iccid",
    )


def unknown_message() -> NotFound:
    return NotFound(
        "spot_check.unknown_message",
        "抽查所指的推送消息不是该卡的实名登记推送",
        "The spot check names no registration push of this card",
        field="messageId",
    )


def no_registration() -> Conflict:
    return Conflict(
        "spot_check.no_registration",
        "该车联网卡没有可供抽查的实名登记记录",
        "The card has no registration on record to check",
        field="iccid",
    )
