"""The fleet review workflow in the synthesised stack (``infra.workflows``): the Standard state machine
from the same ASL file and declaration the local bootstrap uses, its least-privilege role and error logs,
the functions' grants, the tasks queue's consumer, and the alarms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.resources import (
    FLEET_REVIEW_STATE_MACHINE_ID,
    FLEET_TASKS_DEAD_LETTER_QUEUE_ID,
    FLEET_TASKS_MAX_RECEIVES,
    FLEET_TASKS_QUEUE_ID,
    declare,
)
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

MACHINE = "AWS::StepFunctions::StateMachine"


def of_type(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in synth.json["Resources"].items() if v["Type"] == kind}


def machine(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = of_type(synth, MACHINE).items()
    return found


def queue_id(synth: Synth, declared_id: str) -> str:
    name = declare(synth.settings).queue(declared_id).name
    (found,) = [
        k for k, v in of_type(synth, "AWS::SQS::Queue").items() if v["Properties"]["QueueName"] == name
    ]
    return found


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_state_machine_is_standard_from_the_declared_asl_with_its_placeholders_filled(
    synth: Synth,
) -> None:
    _, found = machine(synth)
    props = found["Properties"]
    declared = declare(synth.settings).state_machine(FLEET_REVIEW_STATE_MACHINE_ID)
    assert props["StateMachineName"] == declared.name == "cheka-prod-fleet-review"
    assert props["StateMachineType"] == "STANDARD"
    # The definition is the declaration rendered with the partition and the tasks queue's URL.
    tasks_queue = queue_id(synth, FLEET_TASKS_QUEUE_ID)
    parts = props["DefinitionString"]["Fn::Join"][1]
    markers = {json.dumps({"Ref": "AWS::Partition"}): "PARTITION", json.dumps({"Ref": tasks_queue}): "QUEUE"}
    text = "".join(p if isinstance(p, str) else markers[json.dumps(p)] for p in parts)
    assert json.loads(text) == json.loads(declared.render(Partition="PARTITION", FleetTasksQueueUrl="QUEUE"))
    # Every task is an SQS send of the partition in force: no HTTPS task, no Lambda, no fixed partition.
    resources = [s["Resource"] for s in _all_states(json.loads(text)) if s["Type"] == "Task"]
    assert set(resources) == {
        "arn:PARTITION:states:::sqs:sendMessage.waitForTaskToken",
        "arn:PARTITION:states:::sqs:sendMessage",
    }


def _all_states(definition: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for state in definition["States"].values():
        found.append(state)
        if state["Type"] == "Map":
            found += _all_states(state["ItemProcessor"])
    return found


def test_the_state_machine_logs_errors_without_execution_data_for_three_months(synth: Synth) -> None:
    _, found = machine(synth)
    logging = found["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"
    assert logging["IncludeExecutionData"] is False  # task parameters carry tokens
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = synth.json["Resources"][group_id]
    assert group["Properties"]["RetentionInDays"] == 90
    assert group["DeletionPolicy"] == "Retain"


def test_the_state_machines_role_may_only_send_to_the_tasks_queue_and_deliver_its_logs(synth: Synth) -> None:
    from infra.workflows import LOG_DELIVERY_ACTIONS

    _, found = machine(synth)
    role_id = found["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    role = synth.json["Resources"][role_id]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert not role["Properties"].get("ManagedPolicyArns")
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert set(by_sid) == {"FleetTasks", "ExecutionLogs"}
    assert by_sid["FleetTasks"]["Action"] == "sqs:SendMessage"
    assert by_sid["FleetTasks"]["Resource"] == {"Fn::GetAtt": [queue_id(synth, FLEET_TASKS_QUEUE_ID), "Arn"]}
    assert set(as_list(by_sid["ExecutionLogs"]["Action"])) == set(LOG_DELIVERY_ACTIONS)
    # nothing else is attached to it
    for policy in of_type(synth, "AWS::IAM::Policy").values():
        assert {"Ref": role_id} not in policy["Properties"].get("Roles", [])


def test_the_tasks_queue_redrives_to_its_dead_letter_queue_which_alarms(synth: Synth) -> None:
    tasks = synth.json["Resources"][queue_id(synth, FLEET_TASKS_QUEUE_ID)]["Properties"]
    dlq_id = queue_id(synth, FLEET_TASKS_DEAD_LETTER_QUEUE_ID)
    assert tasks["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": FLEET_TASKS_MAX_RECEIVES,
    }
    assert tasks["VisibilityTimeout"] >= 6 * 30
    alarms = [
        a["Properties"]
        for a in of_type(synth, "AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert len(alarms) == 1
    assert alarms[0]["AlarmActions"] == [{"Ref": _topic_id(synth)}]


def _topic_id(synth: Synth) -> str:
    (topic,) = of_type(synth, "AWS::SNS::Topic")
    return topic


def test_failed_and_timed_out_executions_alarm_to_the_stages_topic(synth: Synth) -> None:
    machine_id, _ = machine(synth)
    alarmed = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(synth, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/States"
    }
    assert set(alarmed) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for alarm in alarmed.values():
        assert alarm["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": {"Fn::GetAtt": [machine_id, "Arn"]}}
        ]
        assert alarm["Threshold"] == 1
        assert alarm["AlarmActions"] == [{"Ref": _topic_id(synth)}]


def test_the_consumer_function_reads_the_tasks_queue_one_task_at_a_time_reporting_failures(
    synth: Synth,
) -> None:
    (mapping,) = [
        m["Properties"]
        for m in of_type(synth, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"].endswith("RunFleetTasks")
    ]
    assert mapping["FunctionName"] == "cheka-prod-RunFleetTasks"
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id(synth, FLEET_TASKS_QUEUE_ID), "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1
    functions = of_type(synth, "AWS::Serverless::Function") | of_type(synth, "AWS::Lambda::Function")
    assert "RunFleetTasks" in functions


def test_the_functions_may_start_read_and_complete_only_this_state_machine(synth: Synth) -> None:
    from tests.infra.test_stack import function_role_statements

    _, found = function_role_statements(synth)
    by_sid = {s.get("Sid"): s for s in found}
    tokens = by_sid["FleetWorkflowStartAndTokens"]
    assert set(as_list(tokens["Action"])) == {
        "states:StartExecution",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
    }
    assert "stateMachine:cheka-prod-fleet-review" in json.dumps(tokens["Resource"])
    assert "AWS::Partition" in json.dumps(tokens["Resource"])
    executions = by_sid["FleetWorkflowExecutions"]
    assert set(as_list(executions["Action"])) == {"states:DescribeExecution", "states:GetExecutionHistory"}
    assert "execution:cheka-prod-fleet-review:*" in json.dumps(executions["Resource"])
    states_actions = {a for s in found for a in as_list(s["Action"]) if a.startswith("states:")}
    assert states_actions == set(as_list(tokens["Action"])) | set(as_list(executions["Action"]))
    queue = by_sid["FleetTasksQueue"]
    assert queue["Resource"] == {"Fn::GetAtt": [queue_id(synth, FLEET_TASKS_QUEUE_ID), "Arn"]}
    assert "sqs:SendMessage" not in as_list(queue["Action"])


def test_the_functions_are_told_the_state_machines_arn(synth: Synth) -> None:
    machine_id, _ = machine(synth)
    functions = of_type(synth, "AWS::Serverless::Function")
    assert functions
    for props in (f["Properties"] for f in functions.values()):
        variables = props["Environment"]["Variables"]
        assert variables["CHEKA_FLEET_STATE_MACHINE_ARN"] == {"Fn::GetAtt": [machine_id, "Arn"]}
    assert synth.json["Outputs"]["FleetReviewStateMachineArn"]["Value"] == {"Fn::GetAtt": [machine_id, "Arn"]}


def test_the_local_bootstrap_creates_the_same_state_machine_from_the_same_declaration(synth: Synth) -> None:
    from moto import mock_aws

    from chalicelib.core import aws
    from chalicelib.local.bootstrap import create_workflows

    _, found = machine(synth)
    parts = found["Properties"]["DefinitionString"]["Fn::Join"][1]
    with mock_aws():
        aws.client.cache_clear()
        (arn,) = create_workflows(synth.settings)
        sfn, sqs = aws.client("stepfunctions"), aws.client("sqs")
        local = sfn.describe_state_machine(stateMachineArn=arn)
        url = sqs.get_queue_url(QueueName=declare(synth.settings).queue(FLEET_TASKS_QUEUE_ID).name)[
            "QueueUrl"
        ]
    aws.client.cache_clear()
    values = {
        json.dumps({"Ref": "AWS::Partition"}): "aws-cn",
        json.dumps({"Ref": queue_id(synth, FLEET_TASKS_QUEUE_ID)}): url,
    }
    deployed = "".join(p if isinstance(p, str) else values[json.dumps(p)] for p in parts)
    assert local["name"] == found["Properties"]["StateMachineName"]
    assert local["type"] == "STANDARD"
    assert json.loads(local["definition"]) == json.loads(deployed)
