"""The API's edge on a stage: access logs, throttling, and the AWS WAF web ACL.

- **Access logs** go to a log group of their own (retained ``ACCESS_LOG_RETENTION``) in JSON, one line
  per request: request id, time, method, the route's *template* (``/v1/registrations/{registration_id}``,
  never the path a caller sent: paths carry VINs and ICCIDs), status, latencies, response length, user
  agent and the WAF's verdict. No source IP (the platform keeps IPs only hashed or truncated, and API
  Gateway can do neither), no query string, no header, no body. API Gateway writes them with the
  account's CloudWatch role (``AWS::ApiGateway::Account``, one per account and region, retained).
  Execution logging stays off: it would log bodies.
- **Throttling**: the stage's rate and burst (``api_throttle_rate_per_second``, ``api_throttle_burst``)
  and, for each sensitive route (``SENSITIVE_ROUTES``: the SMS codes, the captcha, the logins and
  sign-up, the SMS provider's replies), ``api_throttle_sensitive_*``. API Gateway's throttling counts all
  clients together: it caps what a flood costs (SMS, Lambda); the WAF's rate rules are per IP. Throttled
  requests answer 429 in the error model (``infra.stack.GATEWAY_RESPONSES``) and are counted from the
  access log (``throttled_metric``, alarmed) by API Gateway's own error type (``THROTTLED``): the app's
  own 429s (an SMS sent too soon, a daily limit, too many open flows) are answers, not throttling.
- **WAF** (``waf_enabled``, WAFv2 REGIONAL, associated with the stage): AWS's IP reputation list, a
  rate limit per IP over five minutes on the whole API (``waf_rate_limit_per_ip``) and a tighter one on
  the sensitive routes (``waf_sensitive_rate_limit_per_ip``), AWS's common rule set and known bad inputs.
  The common set's 8 KB body limit (``SizeRestrictions_BODY``) only counts, on every route, and no rule
  blocks on its label: bodies over 8 KB are ordinary here (VIN scans, liveness frames, CSV and VIN-list
  imports of fleets and inventory), a hand-kept list of such routes would fall behind the route table,
  and the body limits are enforced where the routes are known: API Gateway (10 MB) and the app
  (``max_body_bytes``, 5 MB, refused 413 in the error model before any handler runs). Every rule
  publishes CloudWatch metrics and sampled requests (no WAF log: it would hold full IPs and headers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2

if TYPE_CHECKING:
    from aws_cdk import CfnResource

    from infra.stack import ChekaStack

#: (method, route template) whose abuse costs money or guesses secrets: throttled tighter per route and
#: rate-limited tighter per IP. A route not (yet) in the API is left out of the stage's settings.
SENSITIVE_ROUTES = (
    ("POST", "/v1/auth/sms-codes"),
    ("POST", "/v1/captcha"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/accounts/sms-codes"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/accounts/login"),
    ("POST", "/v1/accounts/login/verify"),
    ("POST", "/v1/sms/replies"),
)
#: The common rule set's label on a body over its size limit (counted, never blocked: module docstring).
BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
#: AWS managed rule groups of the web ACL, in priority order around our own rules.
IP_REPUTATION = "AWSManagedRulesAmazonIpReputationList"
COMMON_RULES = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS = "AWSManagedRulesKnownBadInputsRuleSet"
ACCESS_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
#: One JSON line per request (module docstring): no IP, no path as sent, no query string.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTimeEpoch",
    "method": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "responseLength": "$context.responseLength",
    "userAgent": "$context.identity.userAgent",
    "waf": "$context.wafResponseCode",
    "error": "$context.error.responseType",
}
#: The access log's ``error`` of a request API Gateway throttled (the stage's or a route's limits).
THROTTLED_RESPONSE_TYPE = "THROTTLED"


@dataclass(frozen=True)
class Edge:
    access_logs: logs.LogGroup
    web_acl: wafv2.CfnWebACL | None
    throttled_metric: cloudwatch.Metric


def encoded_resource_path(template: str) -> str:
    """A method setting's resource path: ``/v1/auth/sms-codes`` -> ``/~1v1~1auth~1sms-codes``."""
    return "/" + template.replace("/", "~1")


def path_regex(template: str) -> str:
    """A route template as a regex on the URI path (after any stage prefix): ``{x}`` is one segment."""
    parts = re.split(r"\{[^}]+\}", template)
    return "[^/]+".join(re.escape(part) for part in parts) + "$"


def routes_in(definition_paths: dict[str, Any], routes: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """``routes`` present in the API's OpenAPI ``paths``."""
    return [(m, p) for m, p in routes if m.lower() in definition_paths.get(p, {})]


def add_edge(stack: ChekaStack, rest_api: CfnResource, stage: str, paths: dict[str, Any]) -> Edge:
    """Access logs, throttling and the web ACL of the stage's API (module docstring)."""
    settings = stack.settings
    access_logs = logs.LogGroup(
        stack,
        "ApiAccessLogs",
        log_group_name=f"/aws/apigateway/{stack.api_name}/access",
        retention=ACCESS_LOG_RETENTION,
        removal_policy=RemovalPolicy.RETAIN,
    )
    _account_logging_role(stack, rest_api)
    rest_api.add_property_override(
        "AccessLogSetting",
        {"DestinationArn": access_logs.log_group_arn, "Format": json.dumps(ACCESS_LOG_FORMAT)},
    )
    method_settings: list[dict[str, Any]] = [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": settings.api_throttle_rate_per_second,
            "ThrottlingBurstLimit": settings.api_throttle_burst,
            "MetricsEnabled": False,
            "DataTraceEnabled": False,
        }
    ]
    method_settings += [
        {
            "ResourcePath": encoded_resource_path(path),
            "HttpMethod": method,
            "ThrottlingRateLimit": settings.api_throttle_sensitive_rate_per_second,
            "ThrottlingBurstLimit": settings.api_throttle_sensitive_burst,
        }
        for method, path in routes_in(paths, SENSITIVE_ROUTES)
    ]
    rest_api.add_property_override("MethodSettings", method_settings)
    throttled = logs.MetricFilter(
        stack,
        "ApiThrottledFilter",
        log_group=access_logs,
        metric_namespace=throttled_namespace(stack),
        metric_name="ThrottledRequests",
        # API Gateway's own throttling only: the app's 429s carry no gateway error type
        filter_pattern=logs.FilterPattern.string_value("$.error", "=", THROTTLED_RESPONSE_TYPE),
        metric_value="1",
    )
    metric = throttled.metric(statistic="Sum", period=Duration.minutes(5))
    web_acl = _web_acl(stack, rest_api, stage, paths) if settings.waf_enabled else None
    return Edge(access_logs=access_logs, web_acl=web_acl, throttled_metric=metric)


def throttled_namespace(stack: ChekaStack) -> str:
    """The namespace of the stage's count of throttled requests (one per stage: stages may share an
    account)."""
    return f"{stack.settings.metrics_namespace}/ApiGateway/{stack.api_name}"


def _account_logging_role(stack: ChekaStack, rest_api: CfnResource) -> None:
    """API Gateway's CloudWatch role of the account (needed to write any API log), retained."""
    role = iam.Role(
        stack,
        "ApiGatewayLoggingRole",
        assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
        description="API Gateway writes the APIs' access logs (account setting)",
        inline_policies={
            "api-gateway-logs": iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="ApiLogs",
                        actions=[
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:DescribeLogGroups",
                            "logs:DescribeLogStreams",
                            "logs:PutLogEvents",
                        ],
                        resources=[f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"],
                    )
                ]
            )
        },
    )
    role.apply_removal_policy(RemovalPolicy.RETAIN)
    account = apigateway.CfnAccount(stack, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
    account.apply_removal_policy(RemovalPolicy.RETAIN)
    rest_api.node.add_dependency(account)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _regex_set(
    stack: ChekaStack, construct_id: str, routes: list[tuple[str, str]]
) -> wafv2.CfnRegexPatternSet:
    return wafv2.CfnRegexPatternSet(
        stack,
        construct_id,
        scope="REGIONAL",
        regular_expression_list=sorted({path_regex(path) for _, path in routes}),
    )


def _path_in(pattern_set: wafv2.CfnRegexPatternSet) -> wafv2.CfnWebACL.StatementProperty:
    return wafv2.CfnWebACL.StatementProperty(
        regex_pattern_set_reference_statement=wafv2.CfnWebACL.RegexPatternSetReferenceStatementProperty(
            arn=pattern_set.attr_arn,
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
            text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
        )
    )


def _managed(name: str, priority: int, overrides: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in overrides
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


def _web_acl(stack: ChekaStack, rest_api: CfnResource, stage: str, paths: dict[str, Any]) -> wafv2.CfnWebACL:
    settings = stack.settings
    block = wafv2.CfnWebACL.RuleActionProperty(block={})
    sensitive = _regex_set(stack, "WafSensitivePaths", routes_in(paths, SENSITIVE_ROUTES))
    rules = [
        _managed(IP_REPUTATION, 0),
        wafv2.CfnWebACL.RuleProperty(
            name="RatePerIp",
            priority=1,
            action=block,
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=settings.waf_rate_limit_per_ip, aggregate_key_type="IP"
                )
            ),
            visibility_config=_visibility("RatePerIp"),
        ),
        wafv2.CfnWebACL.RuleProperty(
            name="SensitiveRatePerIp",
            priority=2,
            action=block,
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=settings.waf_sensitive_rate_limit_per_ip,
                    aggregate_key_type="IP",
                    scope_down_statement=_path_in(sensitive),
                )
            ),
            visibility_config=_visibility("SensitiveRatePerIp"),
        ),
        _managed(COMMON_RULES, 3, overrides=("SizeRestrictions_BODY",)),
        _managed(KNOWN_BAD_INPUTS, 4),
    ]
    web_acl = wafv2.CfnWebACL(
        stack,
        "WebAcl",
        name=stack.api_name,
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        description=f"cheka {settings.stage}: the API's web ACL",
        rules=rules,
        visibility_config=_visibility(stack.api_name),
    )
    association = wafv2.CfnWebACLAssociation(
        stack,
        "WebAclAssociation",
        resource_arn=f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/restapis/{rest_api.ref}/stages/{stage}",
        web_acl_arn=web_acl.attr_arn,
    )
    # The stage is made by SAM's transform of the API (``<api id><stage>Stage``): associate after it.
    api_id = str(stack.resolve(rest_api.logical_id))
    association.add_override("DependsOn", [api_id, f"{api_id}{_alnum(stage)}Stage"])
    return web_acl


def _alnum(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)
