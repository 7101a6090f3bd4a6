"""The fleet review workflow, as the batches and the cases see it: one execution per batch, named by the
batch id, whose tasks wait on task tokens that our code completes.

The workflow itself is the Step Functions state machine of ``infra/statemachines/fleet_review.asl.json``
(Standard), deployed by infra and executed by the embedded AWS locally (moto runs ASL when its Step
Functions config ``execute_state_machine`` is on). Every task that runs our code is an
``sqs:sendMessage.waitForTaskToken`` on the fleet tasks queue, consumed by ``chalicelib.fleet.tasks``;
notifications are plain ``sqs:sendMessage`` (no token). Only constructs both AWS and moto 5.2 run are
used: ``TimeoutSecondsPath`` with a ``Catch`` on ``States.Timeout``, ``Choice`` (``And``), ``Map`` with
``ItemSelector`` over ``$$.Map.Item.Value`` and ``MaxConcurrency``, intrinsic functions in a ``Pass``
state. The second review after the reminder waits until the deadline: the checks answer both times from
the case's opening, so ``UntilDeadline`` subtracts one from the other (``States.MathAdd`` of the deadline
and the reminder made negative through ``States.Format``/``States.StringToJson``: ASL has no subtraction).

A task token is a bearer secret, used once. AWS refuses a token it never issued, one whose task timed out
or closed; moto accepts a token twice, so the single use is the cases' own guard (they store each token
sealed and consume it with a conditional write before completing it). The adapter maps AWS's refusals
(``TaskTimedOut``, ``InvalidToken``, ``TaskDoesNotExist``) to :class:`TaskTokenRejected`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.kernel.errors import Conflict

#: Execution statuses (``describe``), as Step Functions names them.
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
ABORTED = "ABORTED"


class TaskTokenRejected(Conflict):
    """The workflow refused a task token: never issued, its task timed out, or already completed."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            "workflow.task_token_rejected",
            "该审核任务已失效（已超时或已完成），请刷新后重试",
            "The workflow refused the task token: it timed out, was already used or never existed",
            details={"reason": reason} if reason else None,
        )


@dataclass(frozen=True)
class WorkflowEvent:
    """One event of an execution's history, as the console shows it: no input, output or token, only
    the state it concerns and a short detail (an error code, a decision, a chunk)."""

    at: datetime
    type: str
    state: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "type": self.type, "state": self.state, "detail": self.detail}


class Workflow(ABC):
    """The port of the fleet review workflow (``chalicelib.adapters.stepfunctions``; a fake in tests)."""

    @abstractmethod
    def start(self, batch_id: str, payload: dict[str, Any]) -> str:
        """Start the execution named ``batch_id`` with ``payload`` as input (``{"batch_id", "kind"}``);
        returns its ARN. Idempotent: an execution of that name already there is returned, not a second."""

    @abstractmethod
    def succeed(self, token: str, output: dict[str, Any]) -> None:
        """Complete the task of ``token`` with ``output``; :class:`TaskTokenRejected` if refused."""

    @abstractmethod
    def fail(self, token: str, error: str, cause: str) -> None:
        """Fail the task of ``token`` with an error code and its cause; :class:`TaskTokenRejected` if
        refused."""

    @abstractmethod
    def history(self, execution_arn: str) -> list[WorkflowEvent]:
        """The execution's events, oldest first."""

    @abstractmethod
    def describe(self, execution_arn: str) -> str:
        """The execution's status (``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``, ``ABORTED``)."""
