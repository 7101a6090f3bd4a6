"""The fleet review state machine (``infra/statemachines/fleet_review.asl.json``) executed for real by the
embedded AWS, its tasks consumed from the fleet tasks queue by the worker's consumer
(``chalicelib.events.fleet_tasks.handle_received``, the Lambda's function) with a scripted handler table in
place of ``chalicelib.fleet.handlers.HANDLERS``; tokens completed through the Step Functions adapter.

Timeouts are real time in moto: the reminder and the deadline are 1 and 2 seconds from the checks, the
wait for a resubmission 2 seconds (``fleet_resubmission_timeout_seconds``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.fleet.tasks import TaskMessage
from chalicelib.fleet.workflow import FAILED, RUNNING, SUCCEEDED, TaskTokenRejected, Workflow
from chalicelib.kernel.errors import Conflict

BATCH = "fb_0123456789abcdef01234567"
REVIEW = {"outcome": "review", "remind_after_seconds": 600, "escalate_after_seconds": 1200}
APPROVE = {"decision": "approve", "second_approval_needed": False}


@dataclass
class Script:
    """The handlers of the test: what each task answers, and what each received."""

    checks: list[dict[str, Any]] = field(default_factory=lambda: [dict(REVIEW)])
    chunks: int = 3
    checks_error: Exception | None = None
    received: list[TaskMessage] = field(default_factory=list)

    def table(self) -> dict[str, Callable[[TaskMessage], dict[str, Any] | None]]:
        return {
            "automatic_checks": self.automatic_checks,
            "review": self.keep,
            "await_resubmission": self.keep,
            "remind": self.keep,
            "prepare_cards": self.prepare_cards,
            "apply_chunk": self.apply_chunk,
            "notify": self.keep,
        }

    def note(self, message: TaskMessage) -> None:
        self.received.append(message)

    def keep(self, message: TaskMessage) -> None:
        """A task whose token a person completes later (or a notification)."""
        self.note(message)

    def prepare_cards(self, message: TaskMessage) -> dict[str, Any]:
        self.note(message)
        return {"chunks": list(range(self.chunks))}

    def apply_chunk(self, message: TaskMessage) -> dict[str, Any]:
        self.note(message)
        return {"chunk": message.chunk, "cards": 25}

    def automatic_checks(self, message: TaskMessage) -> dict[str, Any]:
        self.note(message)
        if self.checks_error is not None:
            raise self.checks_error
        return self.checks.pop(0) if len(self.checks) > 1 else self.checks[0]

    def kinds(self) -> list[str]:
        """``task`` (``task:stage`` or ``task:outcome``) of every message, in order of arrival."""
        return [":".join(p for p in (m.task, m.stage or m.outcome) if p) for m in self.received]

    def waiting(self, task: str, stage: str | None = None) -> TaskMessage:
        return [m for m in self.received if m.task == task and m.stage == stage][-1]


@pytest.fixture
def workflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Workflow]:
    """A fresh embedded AWS running state machines, with the stage's tasks queue and state machine; the
    executions still running at the end are stopped (their threads would outlive the test)."""
    from moto import mock_aws

    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_workflows, stop_executions

    monkeypatch.setenv("CHEKA_FLEET_RESUBMISSION_TIMEOUT_SECONDS", "2")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        deps.reset()
        create_workflows(get_settings())
        yield deps.workflow()
        stop_executions(get_settings())
    deps.reset()


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    from chalicelib.fleet import handlers

    made = Script()
    monkeypatch.setattr(handlers, "HANDLERS", made.table())
    return made


def run_until(workflow: Workflow, arn: str, done: Callable[[], bool], seconds: float = 8.0) -> None:
    """Consume the tasks queue as the worker does until ``done()`` (or the execution ended)."""
    from chalicelib.core.aws import client
    from chalicelib.events.fleet_tasks import fleet_tasks_queue_name, handle_received

    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=fleet_tasks_queue_name())["QueueUrl"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            # Handled a moment after they arrive, as SQS's delivery to a function takes: moto sends a task's
            # message before it begins waiting for its token, and a token completed in between is lost in
            # its evaluation (seen once as a States.Runtime error and a task sent again).
            time.sleep(0.1)
            assert handle_received(messages) == {"batchItemFailures": []}
            continue
        if done() or workflow.describe(arn) != RUNNING:
            return
        time.sleep(0.05)
    raise AssertionError("the workflow did not get there in time")


def finish(workflow: Workflow, arn: str) -> str:
    deadline = time.monotonic() + 8
    while workflow.describe(arn) == RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    return workflow.describe(arn)


def start(workflow: Workflow) -> str:
    return workflow.start(BATCH, {"batch_id": BATCH, "kind": "registration"})


def test_an_approved_batch_has_every_chunk_applied_then_the_enterprise_notified(
    workflow: Workflow, script: Script
) -> None:
    script.chunks = 6
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    workflow.succeed(script.waiting("review", "first").token or "", APPROVE)
    run_until(workflow, arn, lambda: "notify:approved" in script.kinds())

    assert finish(workflow, arn) == SUCCEEDED
    kinds = script.kinds()
    assert kinds[:3] == ["automatic_checks", "review:first", "prepare_cards"]
    assert sorted(m.chunk or 0 for m in script.received if m.task == "apply_chunk") == [0, 1, 2, 3, 4, 5]
    assert kinds[-1] == "notify:approved"
    assert all(m.batch_id == BATCH and m.execution == arn for m in script.received)
    assert all((m.token is None) == (m.task == "notify") for m in script.received)


def test_starting_a_batch_twice_returns_its_one_execution(workflow: Workflow, script: Script) -> None:
    first = start(workflow)
    assert start(workflow) == first
    assert first.endswith(f":execution:cheka-test-fleet-review:{BATCH}")


def test_a_rejected_batch_is_notified_rejected_and_nothing_applied(
    workflow: Workflow, script: Script
) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    workflow.succeed(script.waiting("review", "first").token or "", {"decision": "reject"})
    run_until(workflow, arn, lambda: "notify:rejected" in script.kinds())

    assert finish(workflow, arn) == SUCCEEDED
    assert script.kinds() == ["automatic_checks", "review:first", "notify:rejected"]


def test_a_resubmission_waits_for_the_documents_then_the_checks_run_again(
    workflow: Workflow, script: Script
) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    workflow.succeed(script.waiting("review", "first").token or "", {"decision": "resubmit"})
    run_until(workflow, arn, lambda: "await_resubmission" in script.kinds())
    workflow.succeed(script.waiting("await_resubmission").token or "", {"resubmitted": True})
    run_until(workflow, arn, lambda: script.kinds().count("review:first") == 2)
    workflow.succeed(script.waiting("review", "first").token or "", APPROVE)
    run_until(workflow, arn, lambda: "notify:approved" in script.kinds())

    assert finish(workflow, arn) == SUCCEEDED
    assert script.kinds()[:7] == [
        "automatic_checks",
        "review:first",
        "notify:resubmission_requested",
        "await_resubmission",
        "automatic_checks",
        "review:first",
        "prepare_cards",
    ]


def test_checks_asking_for_resubmission_expire_when_none_comes(workflow: Workflow, script: Script) -> None:
    script.checks = [{**REVIEW, "outcome": "resubmit"}]
    arn = start(workflow)
    run_until(workflow, arn, lambda: "notify:expired" in script.kinds(), seconds=6)

    assert finish(workflow, arn) == SUCCEEDED
    assert script.kinds() == [
        "automatic_checks",
        "notify:resubmission_requested",
        "await_resubmission",
        "notify:expired",
    ]


def test_an_undecided_review_is_reminded_then_escalated_to_a_lead_who_decides(
    workflow: Workflow, script: Script
) -> None:
    script.checks = [{"outcome": "review", "remind_after_seconds": 1, "escalate_after_seconds": 2}]
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:lead" in script.kinds(), seconds=8)

    assert script.kinds() == ["automatic_checks", "review:first", "remind", "review:first", "review:lead"]
    # The second wait lasts until the deadline (2 s from the checks: 1 s), not 2 s more after the reminder.
    events = workflow.history(arn)
    entered = next(e.at for e in events if e.type == "TaskStateEntered" and e.state == "ReviewAfterReminder")
    timed_out = next(e.at for e in events if e.type == "TaskTimedOut" and e.state == "ReviewAfterReminder")
    assert 0.9 <= (timed_out - entered).total_seconds() < 1.7
    workflow.succeed(script.waiting("review", "lead").token or "", APPROVE)
    run_until(workflow, arn, lambda: "notify:approved" in script.kinds())
    assert finish(workflow, arn) == SUCCEEDED
    states = [e.state for e in workflow.history(arn)]
    assert {"Review", "Remind", "ReviewAfterReminder", "Escalate", "ApplyChunks"} <= set(states)


def test_an_approval_that_needs_a_second_approver_waits_for_them(workflow: Workflow, script: Script) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    workflow.succeed(
        script.waiting("review", "first").token or "", {"decision": "approve", "second_approval_needed": True}
    )
    run_until(workflow, arn, lambda: "review:second" in script.kinds())
    assert "prepare_cards" not in script.kinds()
    workflow.succeed(script.waiting("review", "second").token or "", APPROVE)
    run_until(workflow, arn, lambda: "notify:approved" in script.kinds())

    assert finish(workflow, arn) == SUCCEEDED
    assert script.kinds()[:4] == ["automatic_checks", "review:first", "review:second", "prepare_cards"]


def test_a_second_approver_may_still_reject(workflow: Workflow, script: Script) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    workflow.succeed(
        script.waiting("review", "first").token or "", {"decision": "approve", "second_approval_needed": True}
    )
    run_until(workflow, arn, lambda: "review:second" in script.kinds())
    workflow.succeed(script.waiting("review", "second").token or "", {"decision": "reject"})
    run_until(workflow, arn, lambda: "notify:rejected" in script.kinds())

    assert finish(workflow, arn) == SUCCEEDED
    assert "prepare_cards" not in script.kinds()


def test_a_refusal_of_the_checks_fails_the_execution_with_its_code(
    workflow: Workflow, script: Script
) -> None:
    script.checks_error = Conflict("fleet.batch_not_submitted", "批次未提交", "The batch is not submitted")
    arn = start(workflow)
    run_until(workflow, arn, lambda: False)

    assert finish(workflow, arn) == FAILED
    failed = [e for e in workflow.history(arn) if e.type == "TaskFailed"]
    assert [(e.state, e.detail) for e in failed] == [("AutomaticChecks", "fleet.batch_not_submitted")]


def test_a_forged_token_is_refused_and_changes_nothing(workflow: Workflow, script: Script) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    with pytest.raises(TaskTokenRejected) as refused:
        workflow.succeed("forged-" + (script.waiting("review", "first").token or ""), APPROVE)
    assert refused.value.code == "workflow.task_token_rejected"
    with pytest.raises(TaskTokenRejected):
        workflow.fail("forged", "fleet.rejected", "forged")
    time.sleep(0.2)
    assert workflow.describe(arn) == RUNNING
    assert script.kinds() == ["automatic_checks", "review:first"]


def test_the_history_names_each_state_and_never_shows_a_token(workflow: Workflow, script: Script) -> None:
    arn = start(workflow)
    run_until(workflow, arn, lambda: "review:first" in script.kinds())
    token = script.waiting("review", "first").token or ""
    workflow.succeed(token, APPROVE)
    run_until(workflow, arn, lambda: "notify:approved" in script.kinds())
    finish(workflow, arn)

    events = workflow.history(arn)
    assert events[0].type == "ExecutionStarted"
    assert events[-1].type == "ExecutionSucceeded"
    assert [e.at for e in events] == sorted(e.at for e in events)
    decided = [e for e in events if e.type == "TaskSucceeded" and e.state == "Review"]
    assert [e.detail for e in decided] == ["decision=approve second_approval_needed=false"]
    serialised = json.dumps([e.to_dict() for e in events])
    assert token not in serialised
    assert "fleet-tasks" not in serialised
