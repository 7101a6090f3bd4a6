"""Least privilege and operations in the synthesised stack: a role per function with only its calls
(``infra.roles``), key policies naming the roles that use each key, access logs and log retention,
throttling and the web ACL (``infra.gateway``), and the alarms on 5xx, throttles, WAF blocks, the SMS
budget and every queue (``infra.operations``).

Every assertion reads the session's one synthesis (``tests/infra/conftest.py``)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chalicelib.api.headers import GATEWAY_RESPONSE
from chalicelib.core.resources import declare
from chalicelib.core.stages import PROJECT_DIR, stage_settings
from infra.gateway import (
    ACCESS_LOG_FORMAT,
    BODY_SIZE_LABEL,
    SENSITIVE_ROUTES,
    THROTTLED_RESPONSE_TYPE,
    encoded_resource_path,
    path_regex,
)
from infra.roles import FUNCTION_ACCESS, OUTBOX_TABLES, role_name, stage_role_overrides
from tests.infra.conftest import Synth
from tests.infra.test_stack import function_role_ids, resources, role_statements, table_id

pytestmark = pytest.mark.infra

FUNCTION = "AWS::Serverless::Function"
ALARM = "AWS::CloudWatch::Alarm"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str:
    """A CloudFormation value as text, references shown as ``<Name>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(text(part) for part in value["Fn::Join"][1])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value, sort_keys=True)


def statements_of(synth: Synth, logical_id: str) -> list[dict[str, Any]]:
    return role_statements(synth, function_role_ids(synth)[logical_id])


def granted(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    """Resources (as text) of every statement granting an action starting with ``prefix``."""
    return {
        text(r)
        for s in statements
        if any(a.startswith(prefix) for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    }


def by_prefix(synth: Synth, kind: str, prefix: str) -> dict[str, Any]:
    (found,) = [v["Properties"] for k, v in resources(synth, kind).items() if k.startswith(prefix)]
    return dict(found)


def rest_api(synth: Synth) -> dict[str, Any]:
    return dict(synth.json["Resources"]["RestAPI"]["Properties"])


# -- one role per function ------------------------------------------------------------------------------


def test_every_function_runs_as_a_role_of_its_own_declared_in_infra_roles(synth: Synth) -> None:
    roles = function_role_ids(synth)
    assert set(roles) == set(FUNCTION_ACCESS), (
        "a function without its declaration, or a declaration left over"
    )
    every = {k: v["Properties"]["Role"] for k, v in resources(synth, "AWS::Lambda::Function").items()}
    every.update({k: {"Fn::GetAtt": [v, "Arn"]} for k, v in roles.items()})
    shared = [json.dumps(r) for r in every.values()]
    assert len(set(shared)) == len(shared), "two functions share a role"
    for logical_id, role_id in roles.items():
        props = synth.json["Resources"][role_id]["Properties"]
        assert props["RoleName"] == role_name(synth.stack, logical_id)
        assert props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "lambda.amazonaws.com"
        }
        logs = granted(role_statements(synth, role_id), "logs:")
        assert logs == {
            f"arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/"
            f"cheka-prod-{logical_id}:*"
        }, "a function writes its own log group only"


def test_the_campaign_sender_cannot_write_registrations_nor_read_the_token_secret(synth: Synth) -> None:
    statements = statements_of(synth, "SendCampaignMessages")
    tables = granted(statements, "dynamodb:")
    registrations = f"<{table_id(synth, synth.settings.table_name('registrations'))}.Arn>"
    assert registrations not in tables
    assert not [t for t in tables if t.startswith(registrations)]
    assert granted(statements, "secretsmanager:") == set()
    assert granted(statements, "states:") == set()
    assert granted(statements, "s3:") == set()
    assert granted(statements, "kms:GenerateMac") == set()
    # what it does need: the campaign tables, the sealed phones' key, SMS and its own queue
    assert f"<{table_id(synth, synth.settings.table_name('campaign-opt-outs'))}.Arn>" in tables
    assert granted(statements, "sns:Publish") == {"*"}


def test_the_consumers_touch_only_their_tables_and_secrets(synth: Synth) -> None:
    dispatch = granted(statements_of(synth, "DispatchOutbox"), "dynamodb:")
    tables = {t for t in dispatch if "/index/" not in t}
    assert tables == {f"<{table_id(synth, synth.settings.table_name(t))}.Arn>" for t in OUTBOX_TABLES}
    token = [
        k
        for k, v in resources(synth, "AWS::SecretsManager::Secret").items()
        if v["Properties"]["Name"] == synth.settings.token_secret_name
    ]
    readers = [
        logical_id
        for logical_id in FUNCTION_ACCESS
        if f"<{token[0]}>"
        in granted([s for s in statements_of(synth, logical_id) if s["Sid"] == "TokenSigningKey"], "secrets")
    ]
    assert readers == ["APIHandler"], "only the API signs and checks tokens"
    rotation = statements_of(synth, "RotateSecrets")  # secrets alone (infra.rotation)
    for service in ("dynamodb:", "s3:", "kms:", "sqs:", "sns:", "states:"):
        assert granted(rotation, service) == set(), service
    scanners = [
        logical_id
        for logical_id in FUNCTION_ACCESS
        if [s for s in statements_of(synth, logical_id) if "dynamodb:Scan" in as_list(s["Action"])]
    ]
    assert scanners == ["PurgeAbandoned"]
    for logical_id in ("RunCampaignWaves", "SendCampaignMessages", "DispatchOutbox", "SweepOutbox"):
        assert granted(statements_of(synth, logical_id), "lambda:InvokeFunction") == set(), logical_id


#: The functions whose code builds the identity authority (``deps.identity_authority``, through
#: ``verification_service``): the API; the fleet tasks' automatic checks; the abandoned purge
#: (``registration_service().purge_abandoned``); the reconciliation, when a push it settles reaches
#: ``registration_service().on_push_result``. On a deployed stage that authority is Tencent's, built from
#: its secret: each of them must be able to read it.
AUTHORITY_BUILDERS = {"APIHandler", "RunFleetTasks", "PurgeAbandoned", "ReconcilePushes"}


def test_every_function_that_builds_the_identity_authority_may_read_its_secret_and_no_other(
    synth: Synth,
) -> None:
    assert synth.settings.authority_kind == "tencent"
    (secret,) = [
        k
        for k, v in resources(synth, "AWS::SecretsManager::Secret").items()
        if v["Properties"]["Name"] == synth.settings.authority_secret_name
    ]
    readers = {
        logical_id
        for logical_id in FUNCTION_ACCESS
        if f"<{secret}>" in granted(statements_of(synth, logical_id), "secretsmanager:GetSecretValue")
    }
    assert readers == AUTHORITY_BUILDERS


def test_a_stage_config_may_not_give_a_function_a_role_of_its_own() -> None:
    assert stage_role_overrides({"lambda_functions": {"dispatch_outbox": {"lambda_memory_size": 512}}}) == []
    assert stage_role_overrides(
        {
            "lambda_functions": {
                "dispatch_outbox": {"iam_role_arn": "arn:aws:iam::1:role/x"},
                "api_handler": {},
            }
        }
    ) == ["dispatch_outbox"]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text(encoding="utf-8"))
    for stage, section in config["stages"].items():
        assert stage_role_overrides(section) == [], stage


# -- keys ---------------------------------------------------------------------------------------------------


def key_policy(synth: Synth, alias: str) -> list[dict[str, Any]]:
    from tests.infra.test_stack import key_id

    key = synth.json["Resources"][key_id(synth, alias)]["Properties"]
    return list(key["KeyPolicy"]["Statement"])


@pytest.mark.parametrize(
    ("alias_setting", "use", "identity_sid"),
    [
        ("pii_key_alias", {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"}, "PiiKey"),
        ("hash_key_alias", {"kms:GenerateMac", "kms:VerifyMac"}, "PiiHashKey"),
    ],
)
def test_each_key_policy_names_exactly_the_roles_that_use_the_key(
    synth: Synth, alias_setting: str, use: set[str], identity_sid: str
) -> None:
    statements = key_policy(synth, getattr(synth.settings, alias_setting))
    by_sid = {s["Sid"]: s for s in statements}
    root = "arn:<AWS::Partition>:iam::<AWS::AccountId>:root"
    admin = by_sid["AccountAdministers"]
    assert text(admin["Principal"]["AWS"]) == root
    data_plane = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateMac", "kms:ReEncrypt")
    assert not [a for a in as_list(admin["Action"]) if a.startswith(data_plane) or a == "kms:*"]
    users = by_sid["FunctionsUseTheKey"]
    assert set(as_list(users["Action"])) == use
    named = {text(a).rsplit("/", 1)[1] for a in users["Condition"]["ArnEquals"]["aws:PrincipalArn"]}
    # exactly the roles whose own policy uses the key
    expected = set()
    for role_id, role in resources(synth, "AWS::IAM::Role").items():
        if any(s.get("Sid") == identity_sid for s in role_statements(synth, role_id)):
            expected.add(text(role["Properties"]["RoleName"]))
    assert named == expected
    assert "cheka-prod-APIHandler" in named
    assert "cheka-prod-RunCampaignWaves" not in named
    # nobody else may use the key outside DynamoDB's own use for the tables
    for statement in statements:
        if statement["Sid"] in ("AccountAdministers", "FunctionsUseTheKey", "ServicesGrants"):
            continue
        assert statement["Sid"] == "TablesThroughDynamoDB"
        assert text(statement["Condition"]["StringEquals"]["kms:ViaService"]).startswith("dynamodb.")
    assert by_sid["ServicesGrants"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


# -- logs ---------------------------------------------------------------------------------------------------


def test_every_log_group_has_a_retention_and_every_function_one_group(synth: Synth) -> None:
    groups = resources(synth, "AWS::Logs::LogGroup")
    assert all(g["Properties"].get("RetentionInDays", 0) > 0 for g in groups.values())
    names = {text(g["Properties"]["LogGroupName"]) for g in groups.values()}
    functions = [f["Properties"]["FunctionName"] for f in resources(synth, FUNCTION).values()]
    functions += [v["Properties"]["FunctionName"] for v in resources(synth, "AWS::Lambda::Function").values()]
    for name in functions:
        assert f"/aws/lambda/{text(name)}" in names
    assert "/aws/apigateway/cheka-prod/access" in names
    assert "/aws/vendedlogs/states/cheka-prod-fleet-review" in names


def test_api_access_logs_are_json_without_personal_data(synth: Synth) -> None:
    setting = rest_api(synth)["AccessLogSetting"]
    (group_id,) = [
        k
        for k, v in resources(synth, "AWS::Logs::LogGroup").items()
        if v["Properties"]["LogGroupName"] == "/aws/apigateway/cheka-prod/access"
    ]
    assert setting["DestinationArn"] == {"Fn::GetAtt": [group_id, "Arn"]}
    fields = json.loads(setting["Format"])
    assert fields == ACCESS_LOG_FORMAT
    assert {"requestId", "method", "resourcePath", "status", "latency", "userAgent"} <= set(fields)
    variables = " ".join(fields.values())
    for leak in ("sourceIp", "$context.path", "querystring", "authorizer", "requestOverride", "$input"):
        assert leak not in variables
    settings = rest_api(synth)["MethodSettings"]
    assert not [m for m in settings if m.get("DataTraceEnabled") or m.get("LoggingLevel")]
    account = by_prefix(synth, "AWS::ApiGateway::Account", "ApiGatewayAccount")
    assert "CloudWatchRoleArn" in account
    (account_id,) = list(resources(synth, "AWS::ApiGateway::Account"))
    assert account_id in synth.json["Resources"]["RestAPI"]["DependsOn"]  # logging allowed before the stage


# -- throttling ---------------------------------------------------------------------------------------------


def test_the_stage_and_each_sensitive_route_are_throttled_from_the_settings(synth: Synth) -> None:
    settings = synth.settings
    method_settings = rest_api(synth)["MethodSettings"]
    stage = [m for m in method_settings if m["ResourcePath"] == "/*"]
    assert stage == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": settings.api_throttle_rate_per_second,
            "ThrottlingBurstLimit": settings.api_throttle_burst,
            "MetricsEnabled": False,
            "DataTraceEnabled": False,
        }
    ]
    routes = {(m["HttpMethod"], m["ResourcePath"]): m for m in method_settings if m["ResourcePath"] != "/*"}
    paths = rest_api(synth)["DefinitionBody"]["paths"]
    expected = {(m, encoded_resource_path(p)) for m, p in SENSITIVE_ROUTES if m.lower() in paths.get(p, {})}
    assert set(routes) == expected
    for must in ("/v1/auth/sms-codes", "/v1/auth/login", "/v1/accounts/login", "/v1/sms/replies"):
        assert ("POST", encoded_resource_path(must)) in routes
    for route in routes.values():
        assert route["ThrottlingRateLimit"] == settings.api_throttle_sensitive_rate_per_second
        assert route["ThrottlingBurstLimit"] == settings.api_throttle_sensitive_burst
    assert encoded_resource_path("/v1/auth/sms-codes") == "/~1v1~1auth~1sms-codes"


def test_api_gateways_own_answers_carry_the_browser_headers_of_every_answer(synth: Synth) -> None:
    responses = rest_api(synth)["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(responses)
    for response_type, response in responses.items():
        params = response["responseParameters"]
        for name, value in GATEWAY_RESPONSE.items():
            # static values are single-quoted; the policy's own quotes stay inside
            assert params[f"gatewayresponse.header.{name}"] == f"'{value}'", (response_type, name)
    csp = responses["DEFAULT_4XX"]["responseParameters"]["gatewayresponse.header.Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert (
        responses["DEFAULT_5XX"]["responseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"
    )
    # a response's own header (a throttled answer's Retry-After) is kept beside them
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"


# -- WAF ----------------------------------------------------------------------------------------------------


def test_the_web_acl_guards_the_stage_with_rate_rules_and_managed_rules(synth: Synth) -> None:
    settings = synth.settings
    assert settings.waf_enabled
    acl = by_prefix(synth, "AWS::WAFv2::WebACL", "WebAcl")
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert [r["Name"] for r in sorted(acl["Rules"], key=lambda r: r["Priority"])] == [
        "AWSManagedRulesAmazonIpReputationList",
        "RatePerIp",
        "SensitiveRatePerIp",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    ]
    for rule in acl["Rules"]:
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    overall = rules["RatePerIp"]["Statement"]["RateBasedStatement"]
    assert (overall["Limit"], overall["AggregateKeyType"]) == (settings.waf_rate_limit_per_ip, "IP")
    assert rules["RatePerIp"]["Action"] == {"Block": {}}
    tight = rules["SensitiveRatePerIp"]["Statement"]["RateBasedStatement"]
    assert tight["Limit"] == settings.waf_sensitive_rate_limit_per_ip < overall["Limit"]
    sensitive_set = tight["ScopeDownStatement"]["RegexPatternSetReferenceStatement"]["Arn"]["Fn::GetAtt"][0]
    regexes = synth.json["Resources"][sensitive_set]["Properties"]["RegularExpressionList"]
    assert any(re.search(r, "/api/v1/auth/sms-codes") for r in regexes)
    assert not any(re.search(r, "/api/v1/flows/f1/documents") for r in regexes)
    # the common set's 8 KB body rule only counts, and nothing blocks on its label (next test)
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    association = by_prefix(synth, "AWS::WAFv2::WebACLAssociation", "WebAclAssociation")
    assert text(association["ResourceArn"]) == (
        "arn:<AWS::Partition>:apigateway:<AWS::Region>::/restapis/<RestAPI>/stages/"
        + rest_api(synth)["StageName"]
    )
    (assoc_id,) = list(resources(synth, "AWS::WAFv2::WebACLAssociation"))
    assert "RestAPIapiStage" in synth.json["Resources"][assoc_id]["DependsOn"]


def test_no_waf_rule_blocks_a_body_for_its_size_so_large_uploads_reach_the_apps_own_limit(
    synth: Synth,
) -> None:
    """VIN scans, liveness frames, fleet CSVs and VIN lists are over 8 KB by design: the body limits are the
    app's (``max_body_bytes``, 413 in the error model) and API Gateway's, on every route alike."""
    acl = by_prefix(synth, "AWS::WAFv2::WebACL", "WebAcl")
    blocking = [r for r in acl["Rules"] if "Block" in r.get("Action", {})]
    assert {r["Name"] for r in blocking} == {"RatePerIp", "SensitiveRatePerIp"}
    for rule in acl["Rules"]:
        assert BODY_SIZE_LABEL not in json.dumps(rule["Statement"]), rule["Name"]
        assert "SizeConstraintStatement" not in json.dumps(rule["Statement"]), rule["Name"]
    assert synth.settings.max_body_bytes < 10 * 1024 * 1024  # API Gateway's own payload limit


def test_every_sensitive_route_is_a_route_of_the_app() -> None:
    import app  # noqa: F401  (fills the route table)
    from chalicelib.api.http import ROUTES

    table = {(r.method, r.path) for r in ROUTES}
    assert path_regex("/v1/flows/{flow_id}/uploads") == "/v1/flows/[^/]+/uploads$"
    missing = [r for r in SENSITIVE_ROUTES if r not in table and r != ("POST", "/v1/captcha")]
    assert missing == []


#: Lambda's synchronous invocation payload: the request body together with the headers and the rest of
#: API Gateway's event.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


def test_the_body_limit_leaves_room_under_lambdas_payload_for_the_event_around_the_body() -> None:
    limit = stage_settings("prod").max_body_bytes
    assert limit == 5 * 1024 * 1024
    # headers (up to API Gateway's 10 KB each way), request context and JSON escaping fit in the rest
    assert LAMBDA_SYNC_PAYLOAD_BYTES - limit >= 1024 * 1024


def test_the_waf_can_be_turned_off_per_stage() -> None:
    assert stage_settings("prod", CHEKA_WAF_ENABLED="false").waf_enabled is False


# -- alarms -------------------------------------------------------------------------------------------------


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources(synth, ALARM).items()}


def test_every_function_has_a_throttles_alarm_and_api_gateway_429s_alarm(synth: Synth) -> None:
    found = alarms(synth).values()
    watched = {
        text(d["Value"])
        for a in found
        if a.get("Namespace") == "AWS/Lambda" and a["MetricName"] == "Throttles"
        for d in a["Dimensions"]
    }
    names = {text(f["Properties"]["FunctionName"]) for f in resources(synth, FUNCTION).values()}
    names |= {f"<{k}>" for k in resources(synth, "AWS::Lambda::Function")}
    assert watched == names
    (throttled,) = [a for a in found if a.get("MetricName") == "ThrottledRequests"]
    assert throttled["Namespace"] == "Cheka/ApiGateway/cheka-prod"
    (metric_filter,) = [v["Properties"] for v in resources(synth, "AWS::Logs::MetricFilter").values()]
    # API Gateway's own throttling only, never the app's 429s (SMS sent too soon, daily and open-flow limits)
    assert metric_filter["FilterPattern"] == '{ $.error = "THROTTLED" }'
    assert ACCESS_LOG_FORMAT["error"] == "$context.error.responseType"
    assert THROTTLED_RESPONSE_TYPE == "THROTTLED"


def test_waf_blocked_requests_alarm(synth: Synth) -> None:
    (blocked,) = [a for a in alarms(synth).values() if a.get("MetricName") == "BlockedRequests"]
    assert blocked["Namespace"] == "AWS/WAFV2"
    dims = {d["Name"]: text(d["Value"]) for d in blocked["Dimensions"]}
    assert dims == {"WebACL": "cheka-prod", "Region": "<AWS::Region>", "Rule": "ALL"}
    assert blocked["Threshold"] == synth.settings.waf_blocked_alarm_threshold


def test_the_sms_budget_alarms_when_spent_and_at_eighty_percent(synth: Synth) -> None:
    found = alarms(synth)
    (spent,) = [a for a in found.values() if a.get("MetricName") == "SmsBudgetExhausted"]
    assert spent["Threshold"] == 1
    assert spent["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    near = by_prefix(synth, ALARM, "SmsCodesSentNearBudgetAlarm")
    budget = getattr(synth.settings, "sms_global_budget_per_hour", 5000)
    assert near["Threshold"] == 0.8 * budget
    stats = [m["MetricStat"] for m in near["Metrics"] if "MetricStat" in m]
    assert {s["Metric"]["MetricName"] for s in stats} == {"SmsCodesSent"}
    assert all(s["Period"] == 3600 and s["Stat"] == "Sum" for s in stats)
    from chalicelib.sms.domain import SmsPurpose

    purposes = {d["Value"] for s in stats for d in s["Metric"]["Dimensions"] if d["Name"] == "purpose"}
    assert purposes == {p.value for p in SmsPurpose}


def test_every_declared_queue_has_an_age_alarm_and_every_dead_letter_queue_a_depth_alarm(
    synth: Synth,
) -> None:
    declared = declare(synth.settings)
    queue_ids = {v["Properties"]["QueueName"]: k for k, v in resources(synth, "AWS::SQS::Queue").items()}
    watched = {
        (a["MetricName"], d["Value"]["Fn::GetAtt"][0])
        for a in alarms(synth).values()
        if a.get("Namespace") == "AWS/SQS"
        for d in a["Dimensions"]
        if d["Name"] == "QueueName"
    }
    dead_letters = {q.dead_letter_queue for q in declared.queues if q.dead_letter_queue}
    assert declared.queues
    for queue in declared.queues:
        metric = (
            "ApproximateNumberOfMessagesVisible"
            if queue.id in dead_letters
            else "ApproximateAgeOfOldestMessage"
        )
        assert (metric, queue_ids[queue.name]) in watched, f"{queue.id} has no {metric} alarm"


def test_a_declared_queue_without_an_age_alarm_is_refused_at_synthesis() -> None:
    from types import SimpleNamespace

    from aws_cdk import App, Stack
    from aws_cdk import aws_sqs as sqs

    from chalicelib.core.resources import QueueDeclaration
    from infra.operations import queue_alarms

    stack: Any = Stack(App(), "queues")
    declared = [
        QueueDeclaration(id="new-work-dlq", name="cheka-prod-new-work-dlq"),
        QueueDeclaration(
            id="new-work", name="cheka-prod-new-work", dead_letter_queue="new-work-dlq", max_receives=3
        ),
    ]
    stack.declared = SimpleNamespace(queues=declared)
    stack.queues = {q.id: sqs.Queue(stack, q.id, queue_name=q.name) for q in declared}
    with pytest.raises(ValueError, match="new-work has no age alarm"):
        queue_alarms(stack, [])
