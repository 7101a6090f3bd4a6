"""An in-memory fake of the fleet review workflow (``chalicelib.fleet.workflow.Workflow``).

It runs no state machine: it records the executions started (one per batch id: a second start returns
the first) and the completions of task tokens, and refuses tokens as AWS does: one it never issued, one
already completed, one whose task timed out (``expire``). Tests issue the tokens a state machine would
send (``issue`` or ``task``, which also builds the ``TaskMessage`` a handler receives).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.fleet.tasks import TaskMessage
from chalicelib.fleet.workflow import RUNNING, TaskTokenRejected, Workflow, WorkflowEvent

ARN_PREFIX = "arn:aws-cn:states:cn-north-1:123456789012:execution:cheka-test-fleet-review:"


@dataclass
class Completion:
    token: str
    batch_id: str
    succeeded: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None


@dataclass
class FakeExecution:
    arn: str
    batch_id: str
    payload: dict[str, Any]
    status: str = RUNNING
    events: list[WorkflowEvent] = field(default_factory=list)


class FakeWorkflow(Workflow):
    """Executions by batch id, issued tokens and their completions (``completions``, in order)."""

    def __init__(self) -> None:
        self.executions: dict[str, FakeExecution] = {}
        self.completions: list[Completion] = []
        self.starts = 0
        self._open: dict[str, str] = {}  # token -> batch id, while its task waits
        self._closed: set[str] = set()

    # -- the port ------------------------------------------------------------------------------------

    def start(self, batch_id: str, payload: dict[str, Any]) -> str:
        self.starts += 1
        if batch_id not in self.executions:
            execution = FakeExecution(ARN_PREFIX + batch_id, batch_id, dict(payload))
            execution.events.append(WorkflowEvent(_now(), "ExecutionStarted", None, ""))
            self.executions[batch_id] = execution
        return self.executions[batch_id].arn

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        batch_id = self._take(token)
        self.completions.append(Completion(token, batch_id, True, output=dict(output)))
        self._event(batch_id, "TaskSucceeded", " ".join(f"{k}={v}" for k, v in sorted(output.items())))

    def fail(self, token: str, error: str, cause: str) -> None:
        batch_id = self._take(token)
        self.completions.append(Completion(token, batch_id, False, error=error, cause=cause))
        self._event(batch_id, "TaskFailed", error)

    def history(self, execution_arn: str) -> list[WorkflowEvent]:
        return list(self._by_arn(execution_arn).events)

    def describe(self, execution_arn: str) -> str:
        return self._by_arn(execution_arn).status

    # -- what a state machine would do ---------------------------------------------------------------

    def issue(self, batch_id: str, state: str = "Review") -> str:
        """A new task token for ``batch_id``'s execution (a task entered ``state``)."""
        token = secrets.token_urlsafe(24)
        self._open[token] = batch_id
        self._event(batch_id, "TaskStateEntered", "", state=state)
        return token

    def task(self, task: str, batch_id: str, *, token: bool = True, **fields: Any) -> TaskMessage:
        """The message the state machine would send for ``task`` (with a fresh token unless ``token``
        is False: notifications carry none)."""
        issued = self.issue(batch_id, state=task) if token else None
        execution = self.executions.get(batch_id)
        return TaskMessage(
            task=task,
            batch_id=batch_id,
            token=issued,
            execution=execution.arn if execution else None,
            **fields,
        )

    def expire(self, token: str) -> None:
        """The task of ``token`` timed out: the token is refused from now on."""
        batch_id = self._open.pop(token, None)
        self._closed.add(token)
        if batch_id is not None:
            self._event(batch_id, "TaskTimedOut", "States.Timeout")

    def finish(self, batch_id: str, status: str) -> None:
        """The execution of ``batch_id`` ended (``SUCCEEDED``, ``FAILED``...)."""
        self.executions[batch_id].status = status

    def outputs(self, batch_id: str) -> list[dict[str, Any]]:
        """The outputs the tokens of ``batch_id`` succeeded with, in order."""
        return [c.output for c in self.completions if c.batch_id == batch_id and c.output is not None]

    # -- inside ----------------------------------------------------------------------------------------

    def _take(self, token: str) -> str:
        if token in self._closed:
            raise TaskTokenRejected("TaskTimedOut")
        batch_id = self._open.pop(token, None)
        if batch_id is None:
            raise TaskTokenRejected("InvalidToken")
        self._closed.add(token)
        return batch_id

    def _event(self, batch_id: str, kind: str, detail: str, *, state: str | None = None) -> None:
        execution = self.executions.get(batch_id)
        if execution is not None:
            execution.events.append(WorkflowEvent(_now(), kind, state, detail))

    def _by_arn(self, execution_arn: str) -> FakeExecution:
        for execution in self.executions.values():
            if execution.arn == execution_arn:
                return execution
        raise KeyError(execution_arn)


def _now() -> datetime:
    return datetime.now(UTC)
