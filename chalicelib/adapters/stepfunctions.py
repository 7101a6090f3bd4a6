"""The fleet review workflow (``chalicelib.fleet.workflow``) on AWS Step Functions, or the embedded AWS's.

The state machine is found by its ARN (infra tells the functions) or, on the embedded AWS, by its declared
name. An execution is named by its batch id: starting a batch twice returns the first execution. Task
tokens AWS refuses (``TaskTimedOut``, ``InvalidToken``, ``TaskDoesNotExist``) are ``TaskTokenRejected``;
any other error (throttling, the service down) is raised as it is, for the caller to retry.

The history shown to reviewers is built from the events' names and a short detail only: a task's
parameters carry its token (a bearer secret) and are never read.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.fleet.workflow import TaskTokenRejected, Workflow, WorkflowEvent

#: Error codes of ``SendTaskSuccess``/``SendTaskFailure`` that mean the token is no good (not retryable).
REJECTED_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
#: The keys of a task's output worth showing in the history (none is personal data).
_SHOWN_OUTPUT_KEYS = (
    "outcome",
    "decision",
    "second_approval_needed",
    "resubmitted",
    "chunk",
    "cards",
)
_DETAIL_CHARS = 200


class StepFunctionsWorkflow(Workflow):
    """The port over a boto3 ``stepfunctions`` client."""

    def __init__(self, client: Any, *, state_machine_arn: str | None = None, state_machine_name: str = ""):
        if state_machine_arn is None and not state_machine_name:
            raise ValueError("a state machine ARN or name is needed")
        self._client = client
        self._arn = state_machine_arn
        self._name = state_machine_name
        self._lock = threading.Lock()

    @property
    def state_machine_arn(self) -> str:
        """The ARN, looked up by name on first use when none was given."""
        if self._arn is None:
            with self._lock:
                if self._arn is None:
                    self._arn = self._find_by_name()
        return self._arn

    def _find_by_name(self) -> str:
        paginator = self._client.get_paginator("list_state_machines")
        for page in paginator.paginate():
            for machine in page.get("stateMachines", []):
                if machine["name"] == self._name:
                    return str(machine["stateMachineArn"])
        raise LookupError(f"no state machine named {self._name!r}")

    def execution_arn(self, name: str) -> str:
        """The ARN of this state machine's execution ``name``."""
        head, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{head}:execution:{machine}:{name}"

    def start(self, batch_id: str, payload: dict[str, Any]) -> str:
        """Looks for the execution first: AWS answers a second start of the same name and input with the
        first execution, but the embedded AWS would make a second, broken one."""
        arn = self.execution_arn(batch_id)
        try:
            self._client.describe_execution(executionArn=arn)
            return arn
        except ClientError as exc:
            if _code(exc) != "ExecutionDoesNotExist":
                raise
        try:
            answer = self._client.start_execution(
                stateMachineArn=self.state_machine_arn, name=batch_id, input=json.dumps(payload)
            )
        except ClientError as exc:  # started meanwhile (or earlier with another input)
            if _code(exc) != "ExecutionAlreadyExists":
                raise
            return arn
        return str(answer["executionArn"])

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        try:
            self._client.send_task_success(taskToken=token, output=json.dumps(output))
        except ClientError as exc:
            raise _rejected_or(exc) from exc

    def fail(self, token: str, error: str, cause: str) -> None:
        try:
            # Step Functions bounds the error at 256 characters and the cause at 32,768.
            self._client.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])
        except ClientError as exc:
            raise _rejected_or(exc) from exc

    def describe(self, execution_arn: str) -> str:
        return str(self._client.describe_execution(executionArn=execution_arn)["status"])

    def history(self, execution_arn: str) -> list[WorkflowEvent]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self._client.get_execution_history(**kwargs)
            events.extend(page.get("events", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        return history_events(events)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _rejected_or(exc: ClientError) -> Exception:
    code = _code(exc)
    return TaskTokenRejected(code) if code in REJECTED_TOKEN_ERRORS else exc


def history_events(events: list[dict[str, Any]]) -> list[WorkflowEvent]:
    """Step Functions' history events as :class:`WorkflowEvent`: each attributed to the state it belongs
    to (an entered/exited event names it; the others follow their previous event)."""
    state_of: dict[int, str | None] = {}
    out: list[WorkflowEvent] = []
    for event in sorted(events, key=lambda e: int(e["id"])):
        details = _details(event)
        name = details.get("name") if event["type"].endswith(("StateEntered", "StateExited")) else None
        state = name if name is not None else state_of.get(int(event.get("previousEventId") or 0))
        state_of[int(event["id"])] = state
        out.append(
            WorkflowEvent(
                at=_utc(event["timestamp"]),
                type=str(event["type"]),
                state=state,
                detail=_detail(str(event["type"]), details)[:_DETAIL_CHARS],
            )
        )
    return out


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _detail(kind: str, details: dict[str, Any]) -> str:
    if kind == "TaskScheduled":
        return f"{details.get('resourceType', '')}:{details.get('resource', '')}"
    if kind == "TaskSucceeded":
        return _output_summary(details.get("output"))
    if "error" in details:  # TaskFailed, TaskTimedOut, ExecutionFailed, *Aborted...
        return str(details.get("error") or "")
    if kind == "MapIterationStarted" or kind == "MapIterationSucceeded":
        return f"index={details.get('index', '')}"
    if kind == "MapStateStarted":
        return f"items={details.get('length', '')}"
    return ""


def _output_summary(output: Any) -> str:
    try:
        value = json.loads(output) if isinstance(output, str) else None
    except ValueError:
        return ""
    if not isinstance(value, dict):
        return ""
    parts = [f"{key}={_scalar(value[key])}" for key in _SHOWN_OUTPUT_KEYS if key in value]
    if isinstance(value.get("chunks"), list):
        parts.append(f"chunks={len(value['chunks'])}")
    return " ".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, str | int | float) else ""


def _utc(at: Any) -> datetime:
    if isinstance(at, datetime):
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(at), UTC)
