"""The fleet review workflow of a stage: the Step Functions state machine, its role and logs, what the
functions may do with it, the consumer of its tasks queue and its alarms.

The state machine (Standard) is ``chalicelib.core.resources``' declaration: the ASL file
``infra/statemachines/fleet_review.asl.json`` with its placeholders filled from the stage's settings (the
timeouts) and here (the partition, the tasks queue's URL), as the local bootstrap fills them on the
embedded AWS. Every task that runs our code is a message on the fleet tasks queue; the ``run_fleet_tasks``
function consumes it (``chalicelib.events.fleet_tasks``) and completes the task tokens.

Least privilege: the state machine's role may send messages to the tasks queue and nothing else besides
the log delivery Step Functions needs to write its execution logs (those actions take no resource). The
API's role may start an execution of this state machine, read its executions, and complete its task
tokens; the consumer's role completes tokens and its event source mapping reads the tasks queue
(``infra.roles``, from ``state_machine_arn``, ``executions_arn`` and the actions here). The execution
logs (level ERROR) leave out execution data: a task's parameters carry its token. ARNs are built from the
partition (``aws-cn`` in China) and no task calls an HTTPS endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn

from chalicelib.core.resources import (
    FLEET_REVIEW_STATE_MACHINE_ID,
    FLEET_TASKS_DEAD_LETTER_QUEUE_ID,
    StateMachineDeclaration,
)

if TYPE_CHECKING:
    from infra.stack import ChekaStack

#: The Chalice function consuming the tasks queue (``app.run_fleet_tasks``), by its logical id.
CONSUMER_FUNCTION = "RunFleetTasks"
#: One task per invocation: each gets the whole function timeout, and applying chunks runs as wide as
#: the state machine's Map allows.
CONSUMER_BATCH_SIZE = 1
#: What the execution logs record: failures only (a task's parameters, never logged, carry its token).
LOG_LEVEL = "ERROR"
#: Step Functions writes its logs through CloudWatch Logs' log delivery, whose actions take no resource.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
#: The functions' calls on the state machine: the API starts and reads executions and completes review
#: tokens; the consumer completes the tokens of the tasks it runs.
START_ACTIONS = ("states:StartExecution",)
READ_ACTIONS = ("states:DescribeExecution", "states:GetExecutionHistory")
TOKEN_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")
#: Execution metrics (``AWS/States``) that alarm at one in five minutes.
ALARMED_EXECUTION_METRICS = {
    "ExecutionsFailed": "A fleet review execution failed: see its history in the console or Step Functions",
    "ExecutionsTimedOut": "A fleet review execution timed out",
}


@dataclass(frozen=True)
class FleetWorkflow:
    declaration: StateMachineDeclaration
    state_machine: sfn.CfnStateMachine
    role: iam.Role
    log_group: logs.LogGroup

    @property
    def arn(self) -> str:
        return self.state_machine.attr_arn


def declaration(stack: ChekaStack) -> StateMachineDeclaration:
    return stack.declared.state_machine(FLEET_REVIEW_STATE_MACHINE_ID)


def state_machine_arn(stack: ChekaStack) -> str:
    """The state machine's ARN from its declared name (the functions' roles are made before it)."""
    name = declaration(stack).name
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{name}"


def executions_arn(stack: ChekaStack) -> str:
    name = declaration(stack).name
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{name}:*"


def add_fleet_workflow(stack: ChekaStack) -> FleetWorkflow:
    """The state machine with its role and log group. Call after the queues are made."""
    machine = declaration(stack)
    tasks_queue = stack.queues[machine.tasks_queue or ""]
    log_group = logs.LogGroup(
        stack,
        "FleetReviewLogs",
        log_group_name=f"/aws/vendedlogs/states/{machine.name}",
        retention=logs.RetentionDays.THREE_MONTHS,
        removal_policy=RemovalPolicy.RETAIN,
    )
    role = iam.Role(
        stack,
        "FleetReviewRole",
        assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
        description=f"cheka {stack.settings.stage} fleet review state machine (least privilege)",
        inline_policies={
            "cheka-fleet-review": iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="FleetTasks", actions=["sqs:SendMessage"], resources=[tasks_queue.queue_arn]
                    ),
                    iam.PolicyStatement(
                        sid="ExecutionLogs", actions=list(LOG_DELIVERY_ACTIONS), resources=["*"]
                    ),
                ]
            )
        },
    )
    state_machine = sfn.CfnStateMachine(
        stack,
        "FleetReview",
        state_machine_name=machine.name,
        state_machine_type="STANDARD",
        role_arn=role.role_arn,
        definition_string=machine.render(Partition=Aws.PARTITION, FleetTasksQueueUrl=tasks_queue.queue_url),
        logging_configuration=sfn.CfnStateMachine.LoggingConfigurationProperty(
            level=LOG_LEVEL,
            include_execution_data=False,
            destinations=[
                sfn.CfnStateMachine.LogDestinationProperty(
                    cloud_watch_logs_log_group=sfn.CfnStateMachine.CloudWatchLogsLogGroupProperty(
                        log_group_arn=log_group.log_group_arn
                    )
                )
            ],
        ),
        tracing_configuration=sfn.CfnStateMachine.TracingConfigurationProperty(enabled=True),
    )
    state_machine.node.add_dependency(role)
    CfnOutput(stack, "FleetReviewStateMachineArn", value=state_machine.attr_arn)
    return FleetWorkflow(declaration=machine, state_machine=state_machine, role=role, log_group=log_group)


def add_fleet_tasks_consumer(stack: ChekaStack) -> lambda_.CfnEventSourceMapping:
    """The ``run_fleet_tasks`` function consumes the tasks queue, reporting partial batch failures."""
    from infra.stack import function_name_prefix

    machine = declaration(stack)
    function = next(f for f in stack.functions(stack.api) if f.node.id == CONSUMER_FUNCTION)
    mapping = lambda_.CfnEventSourceMapping(
        stack,
        "FleetTasksConsumer",
        function_name=function_name_prefix(stack.settings) + function.node.id,
        event_source_arn=stack.queues[machine.tasks_queue or ""].queue_arn,
        batch_size=CONSUMER_BATCH_SIZE,
        function_response_types=["ReportBatchItemFailures"],
    )
    mapping.node.add_dependency(function)
    return mapping


def workflow_alarms(stack: ChekaStack, workflow: FleetWorkflow) -> list[cloudwatch.Alarm]:
    """Tasks dead-lettered, and executions failed or timed out (the caller adds the actions)."""
    dead_letters = stack.queues[FLEET_TASKS_DEAD_LETTER_QUEUE_ID]
    alarms = [
        cloudwatch.Alarm(
            stack,
            "FleetTasksDeadLettersAlarm",
            alarm_description="Fleet review tasks are dead-lettered: their batches wait (see the DLQ)",
            metric=dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    ]
    for metric_name, description in ALARMED_EXECUTION_METRICS.items():
        alarms.append(
            cloudwatch.Alarm(
                stack,
                f"FleetReview{metric_name}Alarm",
                alarm_description=description,
                metric=cloudwatch.Metric(
                    namespace="AWS/States",
                    metric_name=metric_name,
                    dimensions_map={"StateMachineArn": workflow.arn},
                    statistic="Sum",
                    period=Duration.minutes(5),
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
    return alarms
