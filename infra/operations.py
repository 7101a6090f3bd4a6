"""The alarms that watch a stage's edges and backlogs, beside the platform's own metrics (``infra.stack``):

- the API's 5xx rate (``5XXError`` over ``Count`` as a metric math expression, above 1 % in five minutes);
- throttling: Lambda ``Throttles`` of every function, and requests API Gateway itself throttled (counted
  from the access log by the gateway's error type ``THROTTLED``, ``infra.gateway``: the app's own 429s,
  its SMS and open-flow limits, are not counted);
- the WAF: requests its web ACL blocked (``waf_blocked_alarm_threshold`` in five minutes);
- SMS pumping: the codes sent in an hour past ``SMS_BUDGET_WARNING`` of the platform's hourly budget
  (``sms_global_budget_per_hour``; ``SmsBudgetExhausted`` itself is an alarmed platform metric);
- every declared queue (``chalicelib.core.resources``): the age of its oldest message, past its
  ``QUEUE_MAX_AGE`` (or its own module's alarm: ``infra.campaigns``), and a dead-letter queue's first
  message. A declared queue without either is refused at synthesis.

The caller (``ChekaStack._alarms``) adds the alarm topic as each alarm's action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from chalicelib.core.metric_names import Metric
from chalicelib.core.resources import FLEET_TASKS_QUEUE_ID, OUTBOX_QUEUE_ID
from chalicelib.sms.domain import SmsPurpose

if TYPE_CHECKING:
    from infra.gateway import Edge
    from infra.stack import ChekaStack

#: The oldest message a queue may hold before its consumer is deemed stuck, for the queues whose module
#: does not alarm on it itself. The outbox: pushes go within seconds, retries within the redrive's
#: 5 x 3 minutes. Fleet tasks: one task a call, a few seconds each.
QUEUE_MAX_AGE = {
    OUTBOX_QUEUE_ID: Duration.minutes(30),
    FLEET_TASKS_QUEUE_ID: Duration.minutes(30),
}
#: Share of the hourly SMS budget past which the codes sent alarm (before sends are refused).
SMS_BUDGET_WARNING = 0.8
#: The API's 5xx share of requests in five minutes that alarms.
API_5XX_RATE = 0.01
#: CloudWatch alarms on metric math take at most this many metrics.
MAX_ALARM_METRICS = 10
FIVE_MINUTES = Duration.minutes(5)


def _alarm(
    stack: ChekaStack, construct_id: str, description: str, metric: cloudwatch.IMetric, threshold: float
) -> cloudwatch.Alarm:
    return cloudwatch.Alarm(
        stack,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def api_5xx_rate_alarm(stack: ChekaStack, api_name: str, stage: str) -> cloudwatch.Alarm:
    """5xx answers over all answers of the stage's API, above ``API_5XX_RATE`` in five minutes."""

    def api_metric(name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map={"ApiName": api_name, "Stage": stage},
            statistic="Sum",
            period=FIVE_MINUTES,
        )

    rate = cloudwatch.MathExpression(
        expression="IF(requests > 0, errors / requests, 0)",
        using_metrics={"errors": api_metric("5XXError"), "requests": api_metric("Count")},
        label="5xx share of requests",
        period=FIVE_MINUTES,
    )
    return cloudwatch.Alarm(
        stack,
        "Api5xxRateAlarm",
        alarm_description=f"More than {API_5XX_RATE:.0%} of API requests answered 5xx over five minutes",
        metric=rate,
        threshold=API_5XX_RATE,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def throttle_alarms(
    stack: ChekaStack, function_names: dict[str, str], edge: Edge | None
) -> list[cloudwatch.Alarm]:
    """Each function's Lambda throttles, and the requests API Gateway throttled."""
    alarms = [
        _alarm(
            stack,
            f"{construct}ThrottlesAlarm",
            f"The function {construct} is throttled (concurrency exhausted): requests or messages wait",
            cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Throttles",
                dimensions_map={"FunctionName": function_name},
                statistic="Sum",
                period=FIVE_MINUTES,
            ),
            1,
        )
        for construct, function_name in function_names.items()
    ]
    if edge is not None:
        alarms.append(
            _alarm(
                stack,
                "ApiThrottledAlarm",
                "API Gateway throttled requests (stage or route limits, answered 429): a flood, or "
                "limits too low (api_throttle_*)",
                edge.throttled_metric,
                stack.settings.api_throttle_sensitive_burst,
            )
        )
        if edge.web_acl is not None:
            alarms.append(
                _alarm(
                    stack,
                    "WafBlockedAlarm",
                    "The WAF blocked many requests in five minutes: an attack, or a rule refusing real "
                    "users (see the web ACL's sampled requests)",
                    cloudwatch.Metric(
                        namespace="AWS/WAFV2",
                        metric_name="BlockedRequests",
                        dimensions_map={"WebACL": stack.api_name, "Region": Aws.REGION, "Rule": "ALL"},
                        statistic="Sum",
                        period=FIVE_MINUTES,
                    ),
                    stack.settings.waf_blocked_alarm_threshold,
                )
            )
    return alarms


def sms_budget_alarm(stack: ChekaStack) -> cloudwatch.Alarm:
    """Codes sent in an hour (every purpose) past ``SMS_BUDGET_WARNING`` of the hourly budget."""
    purposes = list(SmsPurpose)
    if len(purposes) > MAX_ALARM_METRICS:
        raise ValueError("more SMS purposes than an alarm's metric math takes: emit a total instead")
    budget = int(getattr(stack.settings, "sms_global_budget_per_hour", 5000))
    hour = Duration.hours(1)
    using: dict[str, cloudwatch.IMetric] = {
        f"p{i}": stack.metric(Metric.SMS_CODES_SENT, purpose=purpose.value).with_(period=hour)
        for i, purpose in enumerate(purposes)
    }
    total = cloudwatch.MathExpression(
        expression=" + ".join(f"FILL({name}, 0)" for name in using),
        using_metrics=using,
        label="SMS codes sent in an hour",
        period=hour,
    )
    return _alarm(
        stack,
        "SmsCodesSentNearBudgetAlarm",
        f"SMS codes sent in an hour passed {SMS_BUDGET_WARNING:.0%} of the budget ({budget}): "
        "pumping or a surge; past the budget sends are refused",
        total,
        SMS_BUDGET_WARNING * budget,
    )


def _queue_name_of(stack: ChekaStack, alarm: cloudwatch.Alarm) -> tuple[str, Any] | None:
    """(metric name, resolved queue name) an existing alarm watches, if it watches a queue."""
    metric = alarm.metric
    if not isinstance(metric, cloudwatch.Metric) or metric.namespace != "AWS/SQS":
        return None
    dimensions = metric.dimensions or {}
    if "QueueName" not in dimensions:
        return None
    return metric.metric_name, stack.resolve(dimensions["QueueName"])


def queue_alarms(stack: ChekaStack, existing: list[cloudwatch.Alarm]) -> list[cloudwatch.Alarm]:
    """The age (or, of a dead-letter queue, the depth) alarm of every declared queue not alarmed yet."""
    import json

    watched = {
        (name, json.dumps(queue, sort_keys=True))
        for name, queue in filter(None, (_queue_name_of(stack, alarm) for alarm in existing))
    }
    dead_letter_ids = {q.dead_letter_queue for q in stack.declared.queues if q.dead_letter_queue}
    alarms = []
    for declared in stack.declared.queues:
        queue = stack.queues[declared.id]
        name = json.dumps(stack.resolve(queue.queue_name), sort_keys=True)
        construct = "".join(part.capitalize() for part in declared.id.split("-"))
        if declared.id in dead_letter_ids:
            if ("ApproximateNumberOfMessagesVisible", name) in watched:
                continue
            alarms.append(
                _alarm(
                    stack,
                    f"{construct}Alarm",
                    f"Messages are dead-lettered on {declared.name}: see the queue, then redrive it",
                    queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                    1,
                )
            )
            continue
        if ("ApproximateAgeOfOldestMessage", name) in watched:
            continue
        if declared.id not in QUEUE_MAX_AGE:
            raise ValueError(f"queue {declared.id} has no age alarm: declare its QUEUE_MAX_AGE")
        max_age = QUEUE_MAX_AGE[declared.id]
        alarms.append(
            _alarm(
                stack,
                f"{construct}OldestMessageAlarm",
                f"A message has waited {max_age.to_human_string()} or more on {declared.name}: its "
                "consumer is failing or cannot keep up",
                queue.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum"),
                max_age.to_seconds(),
            )
        )
    return alarms
