"""Backfill campaigns in the synthesised stack (``infra.campaigns``): the schedule group and the role
EventBridge Scheduler assumes, the functions' grants on both, the consumers of the campaign queues, the
sender's concurrency, the queues' dead letters, the sparse index of targets, the alarms and the dashboard.

Every assertion reads the session's one synthesis (``tests/infra/conftest.py``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.metric_names import ALARMED, Metric
from chalicelib.core.resources import (
    CAMPAIGN_FUNCTION_TIMEOUT_SECONDS,
    CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID,
    CAMPAIGN_SENDS_MAX_RECEIVES,
    CAMPAIGN_SENDS_QUEUE_ID,
    CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
    CAMPAIGN_WAVES_MAX_RECEIVES,
    CAMPAIGN_WAVES_QUEUE_ID,
    DEAD_LETTER_RETENTION_SECONDS,
    declare,
)
from chalicelib.core.stages import stage_settings
from infra.campaigns import (
    SCHEDULE_ACTIONS,
    SEND_FAILURES_PERIOD_MINUTES,
    SEND_FAILURES_THRESHOLD,
    SENDER_FUNCTION,
    WAVES_FUNCTION,
)
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

FUNCTION = "AWS::Serverless::Function"


def of_type(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in synth.json["Resources"].items() if v["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def queue_id(synth: Synth, declared_id: str) -> str:
    name = declare(synth.settings).queue(declared_id).name
    (found,) = [
        k for k, v in of_type(synth, "AWS::SQS::Queue").items() if v["Properties"]["QueueName"] == name
    ]
    return found


def arn_of(synth: Synth, declared_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [queue_id(synth, declared_id), "Arn"]}


def text(value: Any) -> str:
    """A CloudFormation string (``Fn::Join`` of literals and references) with each reference as ``<Ref>``."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return str(separator).join(
        p if isinstance(p, str) else "<" + str(p.get("Ref", next(iter(p.values())))) + ">" for p in parts
    )


def scheduler_role(synth: Synth) -> tuple[str, dict[str, Any]]:
    roles = [
        (k, r["Properties"])
        for k, r in of_type(synth, "AWS::IAM::Role").items()
        if any(
            s["Principal"].get("Service") == "scheduler.amazonaws.com"
            for s in r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        )
    ]
    assert len(roles) == 1, roles
    return roles[0]


def function_role_statements(synth: Synth, logical_id: str | None = None) -> list[dict[str, Any]]:
    """The statements of ``logical_id``'s role, or of every function's role together."""
    functions = of_type(synth, FUNCTION)
    chosen = [functions[logical_id]] if logical_id else list(functions.values())
    role_ids = sorted({f["Properties"]["Role"]["Fn::GetAtt"][0] for f in chosen})
    return [
        s
        for role_id in role_ids
        for p in synth.json["Resources"][role_id]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    ]


def function(synth: Synth, logical_id: str) -> dict[str, Any]:
    return dict(of_type(synth, FUNCTION)[logical_id]["Properties"])


def test_one_schedule_group_named_from_the_settings(synth: Synth) -> None:
    (group,) = of_type(synth, "AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == synth.settings.campaign_schedules_group == "cheka-prod-campaigns"


def test_the_scheduler_role_may_only_send_wave_starts_to_the_campaign_waves_queue(synth: Synth) -> None:
    _, role = scheduler_role(synth)
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    # Only EventBridge Scheduler acting for this account and the stage's group (confused deputy).
    condition = trust["Condition"]["StringEquals"]
    assert condition["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert text(condition["aws:SourceArn"]) == (
        "arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule-group/cheka-prod-campaigns"
    )
    assert not role.get("ManagedPolicyArns")
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Sid": "CampaignWaveStarts",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            # the waves queue, and its dead-letter queue for a start it could not deliver
            "Resource": [
                arn_of(synth, CAMPAIGN_WAVES_QUEUE_ID),
                arn_of(synth, CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID),
            ],
        }
    ]
    # No other policy is attached to it.
    role_id, _ = scheduler_role(synth)
    attached = [
        p for p in of_type(synth, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert attached == []


@pytest.mark.parametrize("logical_id", ["APIHandler", WAVES_FUNCTION])
def test_the_functions_manage_only_the_groups_schedules_and_pass_only_the_scheduler_role(
    synth: Synth, logical_id: str
) -> None:
    statements = function_role_statements(synth, logical_id)
    scheduling = [s for s in statements if any(a.startswith("scheduler:") for a in as_list(s["Action"]))]
    assert len(scheduling) == 1
    assert sorted(as_list(scheduling[0]["Action"])) == sorted(SCHEDULE_ACTIONS)
    assert text(scheduling[0]["Resource"]) == (
        "arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/cheka-prod-campaigns/*"
    )
    assert "Condition" not in scheduling[0]
    passing = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert len(passing) == 1
    role_id, _ = scheduler_role(synth)
    assert passing[0]["Action"] == "iam:PassRole"
    assert passing[0]["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    # No other statement names IAM.
    assert [s for s in statements if any(a.startswith("iam:") for a in as_list(s["Action"]))] == passing


def test_the_functions_use_the_campaign_queues_and_no_dead_letter_queue(synth: Synth) -> None:
    statements = function_role_statements(synth)
    granted = {json.dumps(r, sort_keys=True) for s in statements for r in as_list(s["Resource"])}
    for declared_id in (CAMPAIGN_WAVES_QUEUE_ID, CAMPAIGN_SENDS_QUEUE_ID):
        assert json.dumps(arn_of(synth, declared_id), sort_keys=True) in granted
    for declared_id in (CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID, CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID):
        assert json.dumps(arn_of(synth, declared_id), sort_keys=True) not in granted
    # The sender consumes its queue and puts a message back (quiet hours, a paused campaign) by
    # changing its visibility or sending it again.
    (queues,) = [
        s for s in function_role_statements(synth, SENDER_FUNCTION) if s.get("Sid") == "ConsumedQueue"
    ]
    assert queues["Resource"] == arn_of(synth, CAMPAIGN_SENDS_QUEUE_ID)
    assert {"sqs:SendMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"} <= set(queues["Action"])


def test_every_function_is_told_the_schedule_group_and_the_scheduler_role(synth: Synth) -> None:
    role_id, _ = scheduler_role(synth)
    for logical_id, found in of_type(synth, FUNCTION).items():
        env = found["Properties"]["Environment"]["Variables"]
        assert env["CHEKA_CAMPAIGN_SCHEDULE_GROUP"] == "cheka-prod-campaigns", logical_id
        assert env["CHEKA_CAMPAIGN_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": [role_id, "Arn"]}, logical_id
        # The link every campaign SMS carries is the stage's own (https), never the local H5 address.
        assert env["CHEKA_CAMPAIGN_LINK"].startswith("https://"), logical_id


def test_the_campaign_queues_are_consumed_reporting_partial_batch_failures(synth: Synth) -> None:
    prefix = f"{synth.settings.resource_prefix}-{synth.settings.stage}-"
    mappings = {
        m["Properties"]["FunctionName"]: m
        for m in of_type(synth, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] in (prefix + WAVES_FUNCTION, prefix + SENDER_FUNCTION)
    }
    waves = mappings[prefix + WAVES_FUNCTION]["Properties"]
    sends = mappings[prefix + SENDER_FUNCTION]["Properties"]
    assert waves["EventSourceArn"] == arn_of(synth, CAMPAIGN_WAVES_QUEUE_ID)
    assert sends["EventSourceArn"] == arn_of(synth, CAMPAIGN_SENDS_QUEUE_ID)
    assert (waves["BatchSize"], sends["BatchSize"]) == (1, 10)
    assert waves["FunctionResponseTypes"] == sends["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The mapping never hands the sender more batches than it may run at once.
    assert sends["ScalingConfig"] == {"MaximumConcurrency": synth.settings.campaign_sender_concurrency}
    for logical_id in (WAVES_FUNCTION, SENDER_FUNCTION):
        (mapping,) = [m for name, m in mappings.items() if name.endswith(logical_id)]
        assert logical_id in as_list(mapping["DependsOn"])


def test_the_sender_runs_at_most_its_configured_concurrency(synth: Synth) -> None:
    assert synth.settings.campaign_sender_concurrency == 2  # the default: prod names none
    assert function(synth, SENDER_FUNCTION)["ReservedConcurrentExecutions"] == 2


def test_the_campaign_functions_time_out_within_a_sixth_of_their_queues_visibility(synth: Synth) -> None:
    for logical_id, declared_id in (
        (WAVES_FUNCTION, CAMPAIGN_WAVES_QUEUE_ID),
        (SENDER_FUNCTION, CAMPAIGN_SENDS_QUEUE_ID),
    ):
        timeout = function(synth, logical_id)["Timeout"]
        assert timeout == CAMPAIGN_FUNCTION_TIMEOUT_SECONDS
        queue = synth.json["Resources"][queue_id(synth, declared_id)]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * timeout


def test_the_campaign_queues_redrive_to_their_dead_letter_queues(synth: Synth) -> None:
    for declared_id, dead_letters_id, receives in (
        (CAMPAIGN_WAVES_QUEUE_ID, CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID, CAMPAIGN_WAVES_MAX_RECEIVES),
        (CAMPAIGN_SENDS_QUEUE_ID, CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID, CAMPAIGN_SENDS_MAX_RECEIVES),
    ):
        queue = synth.json["Resources"][queue_id(synth, declared_id)]["Properties"]
        assert queue["RedrivePolicy"] == {
            "deadLetterTargetArn": arn_of(synth, dead_letters_id),
            "maxReceiveCount": receives,
        }
        assert queue["SqsManagedSseEnabled"] is True
        dead_letters = synth.json["Resources"][queue_id(synth, dead_letters_id)]["Properties"]
        assert dead_letters["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION_SECONDS
        assert "RedrivePolicy" not in dead_letters


def test_the_cards_table_holds_the_sparse_backfill_index_of_the_targets(synth: Synth) -> None:
    (cards,) = [
        t["Properties"]
        for t in of_type(synth, "AWS::DynamoDB::Table").values()
        if t["Properties"]["TableName"] == synth.settings.table_name("cards")
    ]
    indexes = {i["IndexName"]: i for i in cards["GlobalSecondaryIndexes"]}
    assert indexes["by-backfill"]["KeySchema"] == [
        {"AttributeName": "backfill_shard", "KeyType": "HASH"},
        {"AttributeName": "iccid", "KeyType": "RANGE"},
    ]
    assert indexes["by-backfill"]["Projection"] == {"ProjectionType": "ALL"}
    assert indexes["by-contact"]["KeySchema"] == [{"AttributeName": "contact_subject", "KeyType": "HASH"}]
    types = {d["AttributeName"]: d["AttributeType"] for d in cards["AttributeDefinitions"]}
    assert types["backfill_shard"] == types["contact_subject"] == "S"
    # The functions may query both indexes (and nothing scans the cards table).
    granted = {
        text(r) if not isinstance(r, dict) or "Fn::Join" in r else json.dumps(r)
        for s in function_role_statements(synth)
        for r in as_list(s["Resource"])
    }
    assert any(g.endswith("/index/by-backfill") for g in granted)
    scans = [s for s in function_role_statements(synth) if "dynamodb:Scan" in as_list(s["Action"])]
    cards_id = next(
        k
        for k, t in of_type(synth, "AWS::DynamoDB::Table").items()
        if t["Properties"]["TableName"] == synth.settings.table_name("cards")
    )
    assert all({"Fn::GetAtt": [cards_id, "Arn"]} not in as_list(s["Resource"]) for s in scans)


def alarms(synth: Synth) -> list[dict[str, Any]]:
    return [a["Properties"] for a in of_type(synth, "AWS::CloudWatch::Alarm").values()]


def on_queue(alarm: dict[str, Any], synth: Synth, declared_id: str) -> bool:
    name = {"Fn::GetAtt": [queue_id(synth, declared_id), "QueueName"]}
    return any(d["Name"] == "QueueName" and d["Value"] == name for d in alarm.get("Dimensions", []))


def test_campaign_dead_letters_and_old_messages_alarm_the_stage_topic(synth: Synth) -> None:
    (topic_id,) = of_type(synth, "AWS::SNS::Topic")
    for declared_id in (CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID, CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID):
        (alarm,) = [a for a in alarms(synth) if on_queue(a, synth, declared_id)]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}]
    ages = {}
    for declared_id in (CAMPAIGN_WAVES_QUEUE_ID, CAMPAIGN_SENDS_QUEUE_ID):
        (alarm,) = [a for a in alarms(synth) if on_queue(a, synth, declared_id)]
        assert (alarm["MetricName"], alarm["Statistic"]) == ("ApproximateAgeOfOldestMessage", "Maximum")
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}]
        ages[declared_id] = alarm["Threshold"]
    # A wave's message is handled in seconds; a send may wait out a night of quiet hours (11 hours).
    assert ages[CAMPAIGN_WAVES_QUEUE_ID] <= 3600
    assert 11 * 3600 < ages[CAMPAIGN_SENDS_QUEUE_ID] <= 86400


def test_campaign_send_failures_alarm_over_a_quarter_of_an_hour(synth: Synth) -> None:
    assert Metric.CAMPAIGN_SEND_FAILURES in ALARMED  # emitted with ``service`` alone as well
    (topic_id,) = of_type(synth, "AWS::SNS::Topic")
    (alarm,) = [a for a in alarms(synth) if a.get("MetricName") == Metric.CAMPAIGN_SEND_FAILURES.value]
    assert alarm["Namespace"] == synth.settings.metrics_namespace
    assert alarm["Dimensions"] == [{"Name": "service", "Value": synth.settings.service_name}]
    assert SEND_FAILURES_PERIOD_MINUTES == 15
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 900, 1)
    assert alarm["Threshold"] == SEND_FAILURES_THRESHOLD
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}]


def test_the_dashboard_shows_every_campaign_metric_and_the_campaign_queues(synth: Synth) -> None:
    (dashboard,) = of_type(synth, "AWS::CloudWatch::Dashboard").values()
    body = text(dashboard["Properties"]["DashboardBody"])
    for metric in (m for m in Metric if m.value.startswith("Campaign")):
        assert metric.value in body, metric
    # Each campaign's figures are searched by the dimensions they are emitted with.
    assert 'Cheka,service,campaign,reason} MetricName=\\"CampaignMessagesSkipped\\"' in body
    assert 'Cheka,service,campaign,cause} MetricName=\\"CampaignSendsDeferred\\"' in body
    assert 'Cheka,service,campaign} MetricName=\\"CampaignMessagesSent\\"' in body
    assert "ApproximateAgeOfOldestMessage" in body


def test_a_deployed_stage_without_an_https_campaign_link_is_refused() -> None:
    assert stage_settings("prod").configuration_problems() == []
    for link in ("", "http://cheka.oem.example.com/h5/"):
        problems = stage_settings("prod", CHEKA_CAMPAIGN_LINK=link).configuration_problems()
        assert [p for p in problems if p.startswith("CHEKA_CAMPAIGN_LINK")], link
    # The local stack links to the H5 client it serves.
    local = stage_settings("local")
    assert not [p for p in local.configuration_problems() if p.startswith("CHEKA_CAMPAIGN_LINK")]
    assert local.campaign_message_link.endswith("/h5/")


def test_the_synthesised_package_carries_the_scheduler_client_and_the_campaign_entries(synth: Synth) -> None:
    import zipfile

    zips = sorted((synth.work / "build" / "chalice.out").rglob("deployment.zip"))
    assert zips
    with zipfile.ZipFile(zips[-1]) as package:
        names = set(package.namelist())
    # The functions create the waves' schedules with the packaged boto3 (EventBridge Scheduler's model).
    assert any(n.startswith("botocore/data/scheduler/") for n in names)
    for module in ("chalicelib/events/campaigns.py", "chalicelib/adapters/scheduler.py"):
        assert module in names
