"""Backfill campaigns (补登记, 第二十二条) on a stage: the EventBridge Scheduler group whose one-time
schedules start the waves, the role the scheduler assumes to do so, what the functions may do with both,
the consumers of the two campaign queues, the sender's concurrency, and the alarms and dashboard widgets.

A wave's schedule (``chalicelib.adapters.scheduler``) sends the wave's start message to the campaign
waves queue at its time; ``run_campaign_waves`` consumes that queue one message at a time (a start, or the
plan of one shard of the sparse ``by-backfill`` index of the cards table) and fans the targets out to the
campaign sends queue, which ``send_campaign_messages`` drains ten messages at a time. The sender's
reserved concurrency (``Settings.campaign_sender_concurrency``, also the event source mapping's maximum
concurrency so that SQS never hands a batch to a throttled function) bounds the senders running at once;
the campaign's token bucket bounds their rate. The queues, their dead-letter queues and redrive come from
``chalicelib.core.resources``' declaration (the local bootstrap creates the same); the cards table and its
sparse index come from the pynamodb models (``infra.tables``).

Least privilege: the scheduler's role may send to the campaign waves queue and nothing else, and only
EventBridge Scheduler acting for this account's schedule group may assume it. The roles of the
functions that schedule waves (``infra.roles``) may create, update, read and delete schedules of the
stage's group only, and pass that role to EventBridge Scheduler only; each function's queue grants are
its own. (``scheduler:ListSchedules`` takes no resource, so it is not granted: deployed code never lists
schedules; only the local worker, playing the scheduler on the embedded AWS, does.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler

from chalicelib.core.metric_names import Metric
from chalicelib.core.resources import (
    CAMPAIGN_FUNCTION_TIMEOUT_SECONDS,
    CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID,
    CAMPAIGN_SENDS_QUEUE_ID,
    CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
    CAMPAIGN_WAVES_QUEUE_ID,
)

if TYPE_CHECKING:
    from aws_cdk import CfnResource

    from infra.stack import ChekaStack

#: The Chalice functions of the campaigns (``app.run_campaign_waves``, ``app.send_campaign_messages``), by
#: their logical ids.
WAVES_FUNCTION = "RunCampaignWaves"
SENDER_FUNCTION = "SendCampaignMessages"
CAMPAIGN_FUNCTIONS = (WAVES_FUNCTION, SENDER_FUNCTION)
#: One wave message per invocation: a shard's plan gets the whole function timeout (it bounds itself and
#: re-sends its own message to go on).
WAVES_BATCH_SIZE = 1
#: Ten send messages (up to ten targets each) per invocation; the token bucket sets the pace within.
SENDER_BATCH_SIZE = 10
#: What EventBridge Scheduler may be asked to do by the functions, on the stage's group's schedules.
SCHEDULE_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
)
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
#: A wave message waits this long only when the planner fails: a start or a shard's plan takes seconds,
#: and a planner that runs out of time re-sends its message as a new one.
WAVES_MAX_AGE = Duration.minutes(30)
#: A send waits this long when the senders stopped or the campaign's rate cannot drain its wave within a
#: day: quiet hours put sends back for eleven hours at most, and a paused campaign's messages come back
#: as new ones.
SENDS_MAX_AGE = Duration.hours(24)
#: Cards whose SMS the provider refused on every try, in a quarter of an hour, that raise the alarm (the
#: cards are on the call list; the provider, not the card, is the likely cause).
SEND_FAILURES_THRESHOLD = 20
SEND_FAILURES_PERIOD_MINUTES = 15


@dataclass(frozen=True)
class CampaignScheduling:
    """The schedule group of the stage's waves and the role EventBridge Scheduler sends with."""

    group: scheduler.CfnScheduleGroup
    role: iam.Role

    @property
    def group_name(self) -> str:
        return str(self.group.name)

    @property
    def role_arn(self) -> str:
        return self.role.role_arn


def group_arn(stack: ChekaStack) -> str:
    group = stack.settings.campaign_schedules_group
    return f"arn:{Aws.PARTITION}:scheduler:{Aws.REGION}:{Aws.ACCOUNT_ID}:schedule-group/{group}"


def schedules_arn(stack: ChekaStack) -> str:
    """Every schedule of the stage's group (one per wave: ``schedule/<group>/<name>``)."""
    group = stack.settings.campaign_schedules_group
    return f"arn:{Aws.PARTITION}:scheduler:{Aws.REGION}:{Aws.ACCOUNT_ID}:schedule/{group}/*"


def add_campaign_scheduling(stack: ChekaStack) -> CampaignScheduling:
    """The schedule group and the scheduler's role. Call after the queues, before the functions' role
    (it may pass this role) and their environment (they are told its ARN)."""
    waves_queue = stack.queues[CAMPAIGN_WAVES_QUEUE_ID]
    # A start the scheduler could not deliver after its retries goes to the waves' dead-letter queue
    # (alarmed) rather than vanishing with its one-time schedule.
    waves_dlq = stack.queues[CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID]
    group = scheduler.CfnScheduleGroup(
        stack, "CampaignScheduleGroup", name=stack.settings.campaign_schedules_group
    )
    role = iam.Role(
        stack,
        "CampaignSchedulerRole",
        # Only EventBridge Scheduler acting for this account's group (the confused-deputy guard).
        assumed_by=iam.ServicePrincipal(
            SCHEDULER_PRINCIPAL,
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID, "aws:SourceArn": group_arn(stack)}
            },
        ),
        description=f"cheka {stack.settings.stage} campaign waves' schedules (send a wave's start message)",
        inline_policies={
            "cheka-campaign-scheduler": iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="CampaignWaveStarts",
                        actions=["sqs:SendMessage"],
                        resources=[waves_queue.queue_arn, waves_dlq.queue_arn],
                    )
                ]
            )
        },
    )
    CfnOutput(stack, "CampaignScheduleGroupName", value=stack.settings.campaign_schedules_group)
    CfnOutput(stack, "CampaignSchedulerRoleArn", value=role.role_arn)
    return CampaignScheduling(group=group, role=role)


def schedule_statements(stack: ChekaStack) -> list[iam.PolicyStatement]:
    """A function's statements on the schedules and the scheduler's role (``infra.roles`` gives them to
    the functions that schedule waves; each function's queue grants are its own there)."""
    return [
        iam.PolicyStatement(
            sid="CampaignSchedules", actions=list(SCHEDULE_ACTIONS), resources=[schedules_arn(stack)]
        ),
        iam.PolicyStatement(
            sid="CampaignSchedulerPassRole",
            actions=["iam:PassRole"],
            resources=[stack.campaign_scheduling.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_PRINCIPAL}},
        ),
    ]


def function_environment(stack: ChekaStack) -> dict[str, str]:
    """What the functions are told of the campaigns' AWS resources (settings by their env vars)."""
    return {
        "CHEKA_CAMPAIGN_SCHEDULE_GROUP": stack.campaign_scheduling.group_name,
        "CHEKA_CAMPAIGN_SCHEDULER_ROLE_ARN": stack.campaign_scheduling.role_arn,
    }


def _function(stack: ChekaStack, logical_id: str) -> CfnResource:
    return next(f for f in stack.functions(stack.api) if f.node.id == logical_id)


def add_backfill_campaigns(stack: ChekaStack) -> list[lambda_.CfnEventSourceMapping]:
    """The consumers of the campaign queues, reporting partial batch failures; the campaign functions'
    timeout; the sender's concurrency. Call after the API (its functions)."""
    from infra.stack import function_name_prefix

    settings = stack.settings
    for logical_id in CAMPAIGN_FUNCTIONS:
        # A shard's plan and a batch of sends at a low rate need longer than an API call.
        _function(stack, logical_id).add_property_override("Timeout", CAMPAIGN_FUNCTION_TIMEOUT_SECONDS)
    sender = _function(stack, SENDER_FUNCTION)
    sender.add_property_override("ReservedConcurrentExecutions", settings.campaign_sender_concurrency)
    mappings = []
    for construct_id, logical_id, queue_id, batch_size in (
        ("CampaignWavesConsumer", WAVES_FUNCTION, CAMPAIGN_WAVES_QUEUE_ID, WAVES_BATCH_SIZE),
        ("CampaignSendsConsumer", SENDER_FUNCTION, CAMPAIGN_SENDS_QUEUE_ID, SENDER_BATCH_SIZE),
    ):
        function = _function(stack, logical_id)
        mapping = lambda_.CfnEventSourceMapping(
            stack,
            construct_id,
            function_name=function_name_prefix(settings) + logical_id,
            event_source_arn=stack.queues[queue_id].queue_arn,
            batch_size=batch_size,
            function_response_types=["ReportBatchItemFailures"],
            # The sender's batches never go to a function with no concurrency left (they would come back
            # as receives and, in the end, dead letters).
            scaling_config=lambda_.CfnEventSourceMapping.ScalingConfigProperty(
                maximum_concurrency=settings.campaign_sender_concurrency
            )
            if logical_id == SENDER_FUNCTION
            else None,
        )
        mapping.node.add_dependency(function)
        mappings.append(mapping)
    return mappings


def campaign_alarms(stack: ChekaStack) -> list[cloudwatch.Alarm]:
    """Dead letters on either campaign queue, and a message waiting too long on either (the caller adds
    the actions; ``CampaignSendFailures`` is alarmed with the platform's metrics, ``infra.stack``)."""
    alarms = []
    for prefix, dead_letters_id, what in (
        ("CampaignWaves", CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID, "Campaign wave starts or shard plans"),
        ("CampaignSends", CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID, "Campaign sends"),
    ):
        alarms.append(
            cloudwatch.Alarm(
                stack,
                f"{prefix}DeadLettersAlarm",
                alarm_description=f"{what} are dead-lettered: see the DLQ, then redrive it",
                metric=stack.queues[dead_letters_id].metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5)
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
    for prefix, queue_id, max_age, what in (
        ("CampaignWaves", CAMPAIGN_WAVES_QUEUE_ID, WAVES_MAX_AGE, "A wave start or shard plan"),
        ("CampaignSends", CAMPAIGN_SENDS_QUEUE_ID, SENDS_MAX_AGE, "A campaign send"),
    ):
        alarms.append(
            cloudwatch.Alarm(
                stack,
                f"{prefix}OldestMessageAlarm",
                alarm_description=(
                    f"{what} has waited {max_age.to_human_string()} or more: its consumer is failing or "
                    "cannot keep up (`cheka campaign status`)"
                ),
                metric=stack.queues[queue_id].metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
                threshold=max_age.to_seconds(),
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
    return alarms


def campaign_widgets(stack: ChekaStack) -> list[cloudwatch.IWidget]:
    """One row of the dashboard: each campaign's figures (a line per campaign), the skips by reason,
    and the campaign queues."""

    def graph(title: str, metrics: list[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, left=metrics, width=6, height=6)

    waves, sends = stack.queues[CAMPAIGN_WAVES_QUEUE_ID], stack.queues[CAMPAIGN_SENDS_QUEUE_ID]
    five = Duration.minutes(5)
    return [
        graph(
            "Backfill campaigns (补登记): targets planned, messages sent",
            [
                stack.metric_search(Metric.CAMPAIGN_TARGETS_PLANNED, label="planned"),
                stack.metric_search(Metric.CAMPAIGN_MESSAGES_SENT, label="sent"),
            ],
        ),
        graph(
            "Campaign sends failed (call list), deferred (quiet hours, paused), registered since",
            [
                stack.metric(Metric.CAMPAIGN_SEND_FAILURES).with_(label="failed, all campaigns"),
                stack.metric_search(Metric.CAMPAIGN_SEND_FAILURES, label="failed"),
                stack.metric_search(Metric.CAMPAIGN_SENDS_DEFERRED, label="deferred"),
                stack.metric_search(Metric.CAMPAIGN_REGISTRATIONS_ATTRIBUTED, label="registered"),
            ],
        ),
        graph(
            "Campaign targets skipped, by reason",
            [stack.metric_search(Metric.CAMPAIGN_MESSAGES_SKIPPED)],
        ),
        graph(
            "Campaign queues",
            [
                waves.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum").with_(
                    label="waves: oldest message (s)"
                ),
                sends.metric_approximate_number_of_messages_visible(period=five).with_(label="sends waiting"),
                sends.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum").with_(
                    label="sends: oldest message (s)"
                ),
                stack.queues[CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID]
                .metric_approximate_number_of_messages_visible(period=five)
                .with_(label="waves: dead letters"),
                stack.queues[CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID]
                .metric_approximate_number_of_messages_visible(period=five)
                .with_(label="sends: dead letters"),
            ],
        ),
    ]
