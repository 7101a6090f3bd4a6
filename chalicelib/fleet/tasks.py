"""The consumer of the fleet tasks queue: each message is one task of the fleet review workflow.

The state machine sends a message per task (``infra/statemachines/fleet_review.asl.json``)::

    {"task": "review", "batch_id": "fb_…", "token": "<task token>", "execution": "<execution ARN>",
     "stage": "first"}

with ``stage`` for reviews, ``chunk`` for ``apply_chunk`` and ``outcome`` for ``notify``; notifications
(``notify``, ``remind``) carry no token. The handler of the task kind (``chalicelib.fleet.handlers.HANDLERS``)
runs, then:

- it returned a dict and the message has a token: the task succeeds with that dict as its output;
- it returned None: nothing more (a person completes the token later: a decision, a resubmission);
- it raised a ``DomainError``: the task fails with the error's code and its English message as cause;
- anything else raised: the message is reported failed and SQS delivers it again (after
  ``FLEET_TASKS_MAX_RECEIVES`` receives it goes to the dead-letter queue, which alarms). Handlers are
  idempotent: a redelivered task does nothing twice.

A token the workflow refuses (the task timed out meanwhile, or was completed) ends the message: sending it
again would not make the token good. The same function consumes the queue in AWS (the ``run_fleet_tasks``
Lambda, ``chalicelib.events.fleet_tasks``) and locally (the worker).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chalicelib.core.observability import logger
from chalicelib.fleet.workflow import TaskTokenRejected, Workflow
from chalicelib.kernel.errors import DomainError

Handler = Callable[["TaskMessage"], dict[str, Any] | None]


class MalformedTask(ValueError):
    """A message that is no fleet task (its body is not the JSON the state machine sends)."""


@dataclass(frozen=True)
class TaskMessage:
    """One task of the workflow, as the state machine sent it."""

    task: str
    batch_id: str
    token: str | None = None
    stage: str | None = None
    chunk: int | None = None
    outcome: str | None = None
    execution: str | None = None

    @classmethod
    def from_body(cls, body: str) -> TaskMessage:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise MalformedTask("the body is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedTask("the body is not a JSON object")
        task, batch_id = data.get("task"), data.get("batch_id")
        if not isinstance(task, str) or not task or not isinstance(batch_id, str) or not batch_id:
            raise MalformedTask("a task and a batch_id are required")
        chunk = data.get("chunk")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)):
            raise MalformedTask("chunk must be an integer")
        return cls(
            task=task,
            batch_id=batch_id,
            token=_text(data, "token"),
            stage=_text(data, "stage"),
            chunk=chunk,
            outcome=_text(data, "outcome"),
            execution=_text(data, "execution"),
        )

    def describe(self) -> dict[str, Any]:
        """What the logs say of the task (never its token)."""
        out: dict[str, Any] = {
            "task": self.task,
            "batch_id": self.batch_id,
            "has_token": self.token is not None,
        }
        out.update(
            {
                k: v
                for k, v in (("stage", self.stage), ("chunk", self.chunk), ("outcome", self.outcome))
                if v is not None
            }
        )
        return out


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedTask(f"{key} must be a string")
    return value


class TaskOutcome(StrEnum):
    """What handling one task came to."""

    SUCCEEDED = "succeeded"  # the token completed with the handler's output
    WAITING = "waiting"  # the handler kept the token for a person
    FAILED = "failed"  # the token failed with the handler's refusal
    DONE = "done"  # a notification (no token) handled
    REFUSED = "refused"  # a notification the handler refused (logged; nothing to fail)
    TOKEN_REJECTED = "token_rejected"  # the workflow refused the token (timed out, already completed)
    UNKNOWN_TASK = "unknown_task"  # no handler of that kind (a token is failed)


UNKNOWN_TASK_ERROR = "fleet.unknown_task"


def _handlers() -> Mapping[str, Handler]:
    from chalicelib.fleet.handlers import HANDLERS

    return HANDLERS


def run_task(
    message: TaskMessage, workflow: Workflow, handlers: Mapping[str, Handler] | None = None
) -> TaskOutcome:
    """Run the handler of ``message``'s task kind and complete its token accordingly (module docstring).
    Raises what the handler raised when it is not a ``DomainError`` (the message is then delivered again)."""
    table = _handlers() if handlers is None else handlers
    handler = table.get(message.task)
    if handler is None:
        logger.error("fleet task of no known kind", extra=message.describe())
        if message.token is None:
            return TaskOutcome.UNKNOWN_TASK
        return _complete(
            message,
            lambda token: workflow.fail(token, UNKNOWN_TASK_ERROR, f"no handler of task {message.task!r}"),
            TaskOutcome.UNKNOWN_TASK,
        )
    try:
        output = handler(message)
    except DomainError as exc:
        logger.warning("fleet task refused", extra={**message.describe(), "code": exc.code})
        if message.token is None:
            return TaskOutcome.REFUSED
        code, cause = exc.code, exc.message_en
        return _complete(message, lambda token: workflow.fail(token, code, cause), TaskOutcome.FAILED)
    if message.token is None:
        return TaskOutcome.DONE
    if output is None:
        return TaskOutcome.WAITING
    return _complete(message, lambda token: workflow.succeed(token, output), TaskOutcome.SUCCEEDED)


def _complete(message: TaskMessage, send: Callable[[str], None], outcome: TaskOutcome) -> TaskOutcome:
    assert message.token is not None
    try:
        send(message.token)
    except TaskTokenRejected as exc:
        logger.warning(
            "fleet task token refused by the workflow", extra={**message.describe(), **exc.details}
        )
        return TaskOutcome.TOKEN_REJECTED
    return outcome


def handle_records(
    records: list[dict[str, Any]], workflow: Workflow, handlers: Mapping[str, Handler] | None = None
) -> dict[str, list[dict[str, str]]]:
    """An SQS batch as Lambda delivers it (``Records``: ``messageId``, ``body``): each task run; those
    that raised are reported for redelivery (``ReportBatchItemFailures``)."""
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            message = TaskMessage.from_body(str(record.get("body", "")))
            outcome = run_task(message, workflow, handlers)
            logger.info("fleet task handled", extra={**message.describe(), "outcome": outcome.value})
        except Exception:
            logger.exception("fleet task failed: delivered again", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
