"""The fleet tasks consumer (``chalicelib.fleet.tasks``), the fake workflow's token rules, the Step Functions
adapter's mapping of refusals and history, and the state machine's declaration and definition."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.stepfunctions import StepFunctionsWorkflow, history_events
from chalicelib.fleet.tasks import MalformedTask, TaskMessage, TaskOutcome, handle_records, run_task
from chalicelib.fleet.workflow import TaskTokenRejected
from chalicelib.kernel.errors import Conflict
from tests.fakes.workflow import FakeWorkflow

BATCH = "fb_0123456789abcdef01234567"


def body(**fields: Any) -> str:
    return json.dumps({"task": "review", "batch_id": BATCH, **fields})


# -- messages ---------------------------------------------------------------------------------------


def test_a_message_reads_every_field_the_state_machine_sends() -> None:
    message = TaskMessage.from_body(
        json.dumps(
            {
                "task": "apply_chunk",
                "batch_id": BATCH,
                "token": "t",
                "execution": "arn:x",
                "chunk": 3,
                "extra": 1,
            }
        )
    )
    assert message == TaskMessage("apply_chunk", BATCH, token="t", chunk=3, execution="arn:x")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"batch_id": BATCH}),
        json.dumps({"task": "review"}),
        json.dumps({"task": "apply_chunk", "batch_id": BATCH, "chunk": "1"}),
        json.dumps({"task": "apply_chunk", "batch_id": BATCH, "chunk": True}),
        json.dumps({"task": "review", "batch_id": BATCH, "token": 5}),
    ],
)
def test_a_message_that_is_no_fleet_task_is_malformed(raw: str) -> None:
    with pytest.raises(MalformedTask):
        TaskMessage.from_body(raw)


def test_what_the_logs_say_of_a_task_never_holds_its_token() -> None:
    described = TaskMessage("review", BATCH, token="secret-token", stage="first").describe()
    assert described == {"task": "review", "batch_id": BATCH, "has_token": True, "stage": "first"}


# -- run_task -----------------------------------------------------------------------------------------


def test_a_handler_answering_a_dict_succeeds_the_token_with_it() -> None:
    workflow = FakeWorkflow()
    message = workflow.task("prepare_cards", BATCH)
    outcome = run_task(message, workflow, {"prepare_cards": lambda m: {"chunks": [0, 1]}})
    assert outcome is TaskOutcome.SUCCEEDED
    assert workflow.outputs(BATCH) == [{"chunks": [0, 1]}]


def test_a_handler_answering_none_leaves_the_token_to_a_person() -> None:
    workflow = FakeWorkflow()
    message = workflow.task("review", BATCH, stage="first")
    assert run_task(message, workflow, {"review": lambda m: None}) is TaskOutcome.WAITING
    assert workflow.completions == []
    workflow.succeed(message.token or "", {"decision": "approve", "second_approval_needed": False})


def test_a_domain_refusal_fails_the_token_with_its_code_and_english_cause() -> None:
    workflow = FakeWorkflow()
    message = workflow.task("automatic_checks", BATCH)

    def refuse(m: TaskMessage) -> None:
        raise Conflict("fleet.batch_not_submitted", "批次未提交", "The batch is not submitted")

    assert run_task(message, workflow, {"automatic_checks": refuse}) is TaskOutcome.FAILED
    (failed,) = workflow.completions
    assert (failed.succeeded, failed.error, failed.cause) == (
        False,
        "fleet.batch_not_submitted",
        "The batch is not submitted",
    )


def test_a_notification_runs_its_handler_and_completes_nothing() -> None:
    workflow = FakeWorkflow()
    seen: list[str | None] = []
    message = workflow.task("notify", BATCH, token=False, outcome="approved")
    outcome = run_task(message, workflow, {"notify": lambda m: seen.append(m.outcome)})
    assert outcome is TaskOutcome.DONE
    assert seen == ["approved"]
    assert workflow.completions == []


def test_a_refused_notification_is_logged_and_not_retried() -> None:
    def refuse(m: TaskMessage) -> None:
        raise Conflict("fleet.gone", "批次不存在", "No such batch")

    message = TaskMessage("notify", BATCH, outcome="expired")
    assert run_task(message, FakeWorkflow(), {"notify": refuse}) is TaskOutcome.REFUSED


def test_a_token_the_workflow_refuses_ends_the_message_without_a_retry() -> None:
    workflow = FakeWorkflow()
    message = workflow.task("apply_chunk", BATCH, chunk=0)
    workflow.expire(message.token or "")
    outcome = run_task(message, workflow, {"apply_chunk": lambda m: {"chunk": 0, "cards": 25}})
    assert outcome is TaskOutcome.TOKEN_REJECTED
    assert workflow.completions == []


def test_a_task_of_no_known_kind_fails_its_token() -> None:
    workflow = FakeWorkflow()
    message = workflow.task("audit_everything", BATCH)
    assert run_task(message, workflow, {}) is TaskOutcome.UNKNOWN_TASK
    assert [c.error for c in workflow.completions] == ["fleet.unknown_task"]


def test_the_handlers_are_looked_up_in_the_fleet_handlers_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.fleet import handlers

    workflow = FakeWorkflow()
    monkeypatch.setattr(handlers, "HANDLERS", {"prepare_cards": lambda m: {"chunks": [0]}})
    assert run_task(workflow.task("prepare_cards", BATCH), workflow) is TaskOutcome.SUCCEEDED


def test_a_batch_reports_for_redelivery_exactly_the_messages_that_raised() -> None:
    workflow = FakeWorkflow()
    good = workflow.task("prepare_cards", BATCH)

    def crash(m: TaskMessage) -> None:
        raise RuntimeError("table unavailable")

    records = [
        {
            "messageId": "m1",
            "body": json.dumps({"task": "prepare_cards", "batch_id": BATCH, "token": good.token}),
        },
        {"messageId": "m2", "body": body(token=workflow.issue(BATCH))},
        {"messageId": "m3", "body": "not json"},
    ]
    result = handle_records(records, workflow, {"prepare_cards": lambda m: {"chunks": []}, "review": crash})
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    assert workflow.outputs(BATCH) == [{"chunks": []}]


# -- the fake: tokens as AWS treats them --------------------------------------------------------------


def test_the_fake_refuses_a_forged_token_and_a_used_one() -> None:
    workflow = FakeWorkflow()
    token = workflow.issue(BATCH)
    with pytest.raises(TaskTokenRejected):
        workflow.succeed("forged", {})
    workflow.succeed(token, {"decision": "reject"})
    with pytest.raises(TaskTokenRejected):
        workflow.succeed(token, {"decision": "approve"})
    with pytest.raises(TaskTokenRejected):
        workflow.fail(token, "x", "y")
    assert workflow.outputs(BATCH) == [{"decision": "reject"}]


def test_the_fake_starts_one_execution_per_batch() -> None:
    workflow = FakeWorkflow()
    first = workflow.start(BATCH, {"batch_id": BATCH, "kind": "registration"})
    assert workflow.start(BATCH, {"batch_id": BATCH, "kind": "registration"}) == first
    assert list(workflow.executions) == [BATCH]
    assert workflow.describe(first) == "RUNNING"


# -- the adapter ----------------------------------------------------------------------------------------


class RefusingClient:
    """A Step Functions client whose token calls fail with ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def _refuse(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "SendTaskSuccess")

    send_task_success = send_task_failure = _refuse


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_the_adapter_maps_aws_token_refusals_to_task_token_rejected(code: str) -> None:
    adapter = StepFunctionsWorkflow(
        RefusingClient(code), state_machine_arn="arn:aws-cn:states:r:1:stateMachine:m"
    )
    with pytest.raises(TaskTokenRejected) as refused:
        adapter.succeed("t", {})
    assert refused.value.details == {"reason": code}
    with pytest.raises(TaskTokenRejected):
        adapter.fail("t", "e", "c")


def test_the_adapter_lets_other_errors_through_for_a_retry() -> None:
    adapter = StepFunctionsWorkflow(
        RefusingClient("ThrottlingException"), state_machine_arn="arn:aws-cn:states:r:1:stateMachine:m"
    )
    with pytest.raises(ClientError):
        adapter.succeed("t", {})


def test_an_execution_arn_is_the_state_machine_arn_with_the_batch_id() -> None:
    adapter = StepFunctionsWorkflow(
        object(), state_machine_arn="arn:aws-cn:states:cn-north-1:1:stateMachine:cheka-prod-fleet-review"
    )
    assert (
        adapter.execution_arn(BATCH)
        == f"arn:aws-cn:states:cn-north-1:1:execution:cheka-prod-fleet-review:{BATCH}"
    )


def test_the_history_names_the_state_of_each_event_and_hides_task_parameters() -> None:
    at = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    token = "AAAA-secret-token"
    events = [
        {
            "id": 1,
            "previousEventId": 0,
            "timestamp": at,
            "type": "ExecutionStarted",
            "executionStartedEventDetails": {},
        },
        {
            "id": 2,
            "previousEventId": 1,
            "timestamp": at,
            "type": "TaskStateEntered",
            "stateEnteredEventDetails": {"name": "Review", "input": json.dumps({"id": "110101199001011234"})},
        },
        {
            "id": 3,
            "previousEventId": 2,
            "timestamp": at,
            "type": "TaskScheduled",
            "taskScheduledEventDetails": {
                "resourceType": "sqs",
                "resource": "sendMessage.waitForTaskToken",
                "parameters": json.dumps({"MessageBody": {"token": token}}),
            },
        },
        {
            "id": 4,
            "previousEventId": 3,
            "timestamp": at,
            "type": "TaskSucceeded",
            "taskSucceededEventDetails": {"output": json.dumps({"decision": "approve", "note": "private"})},
        },
        {
            "id": 5,
            "previousEventId": 4,
            "timestamp": at,
            "type": "TaskFailed",
            "taskFailedEventDetails": {"error": "fleet.rejected", "cause": "a person's name"},
        },
    ]
    shown = history_events(events)
    assert [(e.type, e.state, e.detail) for e in shown] == [
        ("ExecutionStarted", None, ""),
        ("TaskStateEntered", "Review", ""),
        ("TaskScheduled", "Review", "sqs:sendMessage.waitForTaskToken"),
        ("TaskSucceeded", "Review", "decision=approve"),
        ("TaskFailed", "Review", "fleet.rejected"),
    ]
    text = json.dumps([e.to_dict() for e in shown])
    for secret in (token, "110101199001011234", "private", "a person's name"):
        assert secret not in text


# -- the declaration ----------------------------------------------------------------------------------


def test_the_definition_is_filled_with_typed_values_from_the_declaration() -> None:
    from chalicelib.core.resources import FLEET_REVIEW_STATE_MACHINE_ID, FLEET_TASKS_QUEUE_ID, declare
    from chalicelib.core.stages import stage_settings

    declared = declare(stage_settings("prod"))
    machine = declared.state_machine(FLEET_REVIEW_STATE_MACHINE_ID)
    assert machine.name == "cheka-prod-fleet-review"
    assert machine.tasks_queue == FLEET_TASKS_QUEUE_ID
    assert machine.placeholders() == {
        "Partition",
        "FleetTasksQueueUrl",
        "CodeTaskTimeoutSeconds",
        "ResubmissionTimeoutSeconds",
    }
    definition = json.loads(machine.render(Partition="aws-cn", FleetTasksQueueUrl="https://q"))
    states = definition["States"]
    assert states["AwaitResubmission"]["TimeoutSeconds"] == 30 * 86400
    assert states["AutomaticChecks"]["TimeoutSeconds"] == 3600
    assert states["Review"]["Resource"] == "arn:aws-cn:states:::sqs:sendMessage.waitForTaskToken"
    assert states["Review"]["Parameters"]["QueueUrl"] == "https://q"
    assert "${" not in json.dumps(definition)
    with pytest.raises(ValueError, match="FleetTasksQueueUrl"):
        machine.render(Partition="aws")


def test_every_task_of_the_definition_sends_to_the_tasks_queue_with_its_kind() -> None:
    from chalicelib.core.resources import FLEET_REVIEW_STATE_MACHINE_ID, declare
    from chalicelib.core.stages import stage_settings

    machine = declare(stage_settings("prod")).state_machine(FLEET_REVIEW_STATE_MACHINE_ID)
    states = json.loads(machine.render(Partition="aws", FleetTasksQueueUrl="Q"))["States"]
    states.update(states["ApplyChunks"]["ItemProcessor"]["States"])
    kinds = {}
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        message = state["Parameters"]["MessageBody"]
        waits = state["Resource"].endswith(".waitForTaskToken")
        assert state["Parameters"]["QueueUrl"] == "Q"
        assert ("token.$" in message) == waits, name
        assert message["execution.$"] == "$$.Execution.Id"
        kinds[name] = (message["task"], message.get("stage") or message.get("outcome"), waits)
    assert kinds == {
        "AutomaticChecks": ("automatic_checks", None, True),
        "Review": ("review", "first", True),
        "Remind": ("remind", None, False),
        "ReviewAfterReminder": ("review", "first", True),
        "Escalate": ("review", "lead", True),
        "SecondApproval": ("review", "second", True),
        "NotifyResubmission": ("notify", "resubmission_requested", False),
        "AwaitResubmission": ("await_resubmission", None, True),
        "NotifyExpired": ("notify", "expired", False),
        "PrepareCards": ("prepare_cards", None, True),
        "ApplyChunk": ("apply_chunk", None, True),
        "NotifyApproved": ("notify", "approved", False),
        "NotifyRejected": ("notify", "rejected", False),
    }
    assert states["ApplyChunks"]["MaxConcurrency"] == 4
    assert states["Review"]["TimeoutSecondsPath"] == "$.checks.remind_after_seconds"
    assert "TimeoutSeconds" not in states["Escalate"]
