"""The cheka stack of one stage: KMS keys, DynamoDB tables, the documents bucket, queues, secrets, the
functions' roles, the API and its edge, and the alarms and dashboard that watch them.

The stage's settings are its declaration in ``.chalice/config.json`` (``chalicelib.core.stages``); a stage
whose settings name an engine it cannot run is refused. Tables come from the pynamodb models
(``infra.tables``), the bucket, keys, queues and secrets from ``chalicelib.core.resources`` (both read by
the local bootstrap too), the API and its functions from ``chalice package`` through Chalice's CDK
construct. Each function's role is created here with least privilege (``infra.roles``), and each key's
policy names the roles that may use it; Chalice neither manages nor widens them. The API's access logs,
throttling and web ACL are ``infra.gateway``'s. Every alarm (``infra.operations`` among them) notifies
the stage's SNS topic, to which ``Settings.alarm_emails`` subscribe.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rekognition as rekognition
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as sns_subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.adapters.dynamo.models import TABLES
from chalicelib.api.headers import GATEWAY_RESPONSE
from chalicelib.core import resources
from chalicelib.core.metric_names import ALARMED, Metric
from chalicelib.core.resources import (
    OUTBOX_DEAD_LETTER_QUEUE_ID,
    OUTBOX_QUEUE_ID,
    PII_HASH_KEY,
    PII_KEY,
    TOKEN_SECRET,
    KeyDeclaration,
    QueueDeclaration,
    SecretDeclaration,
    StageResources,
)
from chalicelib.core.settings import Settings
from chalicelib.core.stages import ConfigurationError
from chalicelib.registration.domain.registrations import Step
from infra.campaigns import (
    SEND_FAILURES_PERIOD_MINUTES,
    SEND_FAILURES_THRESHOLD,
    add_backfill_campaigns,
    add_campaign_scheduling,
    campaign_alarms,
    campaign_widgets,
)
from infra.campaigns import function_environment as campaign_function_environment
from infra.engines import ENGINES_ROLE, add_engines_function
from infra.gateway import Edge, add_edge
from infra.operations import api_5xx_rate_alarm, queue_alarms, sms_budget_alarm, throttle_alarms
from infra.packaging import lambda_requirements, precompiling_chalice
from infra.roles import (
    API_FUNCTION,
    FUNCTION_ACCESS,
    add_function_roles,
    role_arn,
    roles_using,
    stage_role_overrides,
)
from infra.rotation import add_secret_rotation
from infra.staff import add_staff_sign_in
from infra.tables import build_table, construct_id
from infra.workflows import add_fleet_tasks_consumer, add_fleet_workflow, workflow_alarms

PROJECT_DIR = Path(__file__).resolve().parents[1]

#: Defaults of the deployed functions; ``.chalice/config.json``'s section of the stage overrides them.
DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = resources.FUNCTION_TIMEOUT_SECONDS
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS

#: Objects under this prefix are unvalidated uploads: expired after a day.
RAW_PREFIX = resources.RAW_PREFIX

DYNAMODB_ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
)
#: The Rekognition calls of each engine (``adapters.faces.rekognition``, ``adapters.faces.index_rekognition``,
#: ``adapters.liveness.rekognition``).
REKOGNITION_FACE_ACTIONS = ("rekognition:DetectFaces", "rekognition:CompareFaces")
REKOGNITION_COLLECTION_ACTIONS = (
    "rekognition:IndexFaces",
    "rekognition:SearchFacesByImage",
    "rekognition:DeleteFaces",
)
REKOGNITION_LIVENESS_ACTIONS = (
    "rekognition:CreateFaceLivenessSession",
    "rekognition:GetFaceLivenessSessionResults",
)
#: What the account may do with a key: administer it, never use it (``ChekaStack._key_policies``).
KEY_ADMIN_ACTIONS = (
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
#: The calls a key's users make with it, by declared key.
KEY_USE_ACTIONS = {
    PII_KEY: ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"),
    PII_HASH_KEY: ("kms:GenerateMac", "kms:VerifyMac"),
}
#: The ``infra.roles.FunctionAccess`` field that says a function uses the key.
PII_KEY_NEEDS = {PII_KEY: "pii_key", PII_HASH_KEY: "hash_key"}
XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)


#: API Gateway's own replies (no route, a body too large, throttling...) in the app's error model
#: (``{code, message_zh, message_en}``, ``chalicelib.api.http``): response type -> (status or None to keep
#: API Gateway's, code, message_zh, message_en, extra headers). API Gateway answers an unknown path and an
#: undeclared method on a known path alike (MISSING_AUTHENTICATION_TOKEN): both are ``route.not_found``,
#: 404 as the app answers locally; ``method.not_allowed`` (405) only exists where the app routes itself.
GATEWAY_RESPONSES: dict[str, tuple[int | None, str, str, str, dict[str, str]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (404, "route.not_found", "接口不存在", "No such route", {}),
    "UNSUPPORTED_MEDIA_TYPE": (
        415,
        "media_type.unsupported",
        "不支持的请求内容类型",
        "The request's content type is not supported",
        {},
    ),
    "REQUEST_TOO_LARGE": (413, "request.too_large", "请求内容过大", "The request body is too large", {}),
    "THROTTLED": (
        429,
        "request.throttled",
        "请求过于频繁，请稍后再试",
        "Too many requests; try again shortly",
        {"Retry-After": "1"},
    ),
    "DEFAULT_4XX": (None, "request.refused", "请求被拒绝", "The request was refused", {}),
    "DEFAULT_5XX": (
        None,
        "internal",
        "服务器内部错误，请稍后再试",
        "Internal error; try again later",
        {"Retry-After": "5"},
    ),
}

#: The dimensions (beside ``service``) each metric is emitted with (``chalicelib.core.metric_names``);
#: the dashboard searches each metric over exactly these.
METRIC_DIMENSIONS: dict[Metric, tuple[str, ...]] = {
    Metric.STEP_ENTERED: ("step",),
    Metric.STEP_PASSED: ("step",),
    Metric.STEP_FAILED: ("step", "reason"),
    Metric.FACE_ATTEMPT: ("result",),
    Metric.LIVENESS_RESULT: ("result",),
    Metric.REVIEW_OPENED: ("reason",),
    Metric.FLEET_CASE_REMINDER: ("kind",),
    Metric.FLEET_CASE_ESCALATED: ("kind",),
    Metric.FLEET_CARDS_PUSHED: ("kind",),
    Metric.FLEET_BATCH_NOTIFIED: ("outcome", "kind"),
    Metric.SPOT_CHECK_OPENED: ("operator",),
    Metric.SPOT_CHECK_ANSWERED: ("verdict", "late"),
    Metric.SPOT_CHECK_OVERDUE: ("operator",),
    Metric.SPOT_CHECKS_OVERDUE_OPEN: (),
    Metric.RETENTION_PURGED: ("outcome",),
    Metric.PERSONAL_DATA_READ: ("record_kind",),
    Metric.ENGINE_UNAVAILABLE: ("engine",),
    Metric.PUSH_SENT: ("operator",),
    Metric.PUSH_ACCEPTED: ("operator",),
    Metric.PUSH_REFUSED: ("operator",),
    Metric.PUSH_DEAD: ("operator",),
    Metric.OPERATOR_ERROR: ("operator",),
    Metric.OPERATOR_NOT_CONFIGURED: ("operator",),
    Metric.CALLBACK_RECEIVED: ("outcome",),
    Metric.OLDEST_PENDING_PUSH_MINUTES: (),
    Metric.RECONCILIATION_DRIFT: (),
    Metric.CAMPAIGN_TARGETS_PLANNED: ("campaign",),
    Metric.CAMPAIGN_MESSAGES_SENT: ("campaign",),
    Metric.CAMPAIGN_MESSAGES_SKIPPED: ("campaign", "reason"),
    Metric.CAMPAIGN_SEND_FAILURES: ("campaign",),
    Metric.CAMPAIGN_SENDS_DEFERRED: ("campaign", "cause"),
    Metric.CAMPAIGN_REGISTRATIONS_ATTRIBUTED: ("campaign",),
    Metric.SMS_CODES_SENT: ("purpose",),
    Metric.SMS_SEND_REFUSED: ("reason",),
    Metric.SMS_BUDGET_EXHAUSTED: (),
}


@dataclass(frozen=True)
class AlarmRule:
    """When an alarmed metric (``metric_names.ALARMED``, with the ``service`` dimension alone) alarms."""

    statistic: str
    threshold: float
    description: str
    period_minutes: int = 5


def alarm_rules(settings: Settings) -> dict[Metric, AlarmRule]:
    """One rule per alarmed metric, each over five minutes."""
    return {
        Metric.PUSH_DEAD: AlarmRule(
            "Sum", 1, "An operator push is dead: see `cheka outbox status --status dead`"
        ),
        Metric.OPERATOR_ERROR: AlarmRule(
            "Sum", 5, "An operator answers with errors or not at all (pushes are retried)"
        ),
        Metric.OPERATOR_NOT_CONFIGURED: AlarmRule(
            "Sum", 1, "Pushes wait for an operator without URL or keys on this stage: see /health"
        ),
        Metric.OLDEST_PENDING_PUSH_MINUTES: AlarmRule(
            "Maximum",
            settings.push_stale_minutes,
            f"A push waits for the operator's answer for {settings.push_stale_minutes} minutes or more",
        ),
        Metric.ENGINE_UNAVAILABLE: AlarmRule(
            "Sum", 3, "An engine (OCR, faces, liveness) does not answer in time: people are asked to retry"
        ),
        Metric.RECONCILIATION_DRIFT: AlarmRule(
            "Maximum",
            1,
            "Pushes the hourly reconciliation could not settle with their operator: see "
            "`cheka outbox reconcile` and `cheka outbox status --status dead`",
        ),
        Metric.SPOT_CHECKS_OVERDUE_OPEN: AlarmRule(
            "Maximum",
            1,
            "An operator's spot check (抽查) is open past its deadline: see GET /v1/spot-checks?status=open",
        ),
        Metric.CAMPAIGN_SEND_FAILURES: AlarmRule(
            "Sum",
            SEND_FAILURES_THRESHOLD,
            f"{SEND_FAILURES_THRESHOLD} or more campaign SMS refused by the provider in "
            f"{SEND_FAILURES_PERIOD_MINUTES} minutes (the cards are on the call list): check the provider",
            period_minutes=SEND_FAILURES_PERIOD_MINUTES,
        ),
        Metric.SMS_BUDGET_EXHAUSTED: AlarmRule(
            "Sum",
            1,
            "The platform's hourly SMS budget is spent: code sends are refused (503) until the hour "
            "turns; look for pumping (SmsSendRefused by reason, the WAF's blocks)",
        ),
    }


def table_env_var(short_name: str) -> str:
    """``card-history`` -> ``CHEKA_TABLE_CARD_HISTORY``."""
    return "CHEKA_TABLE_" + short_name.replace("-", "_").upper()


#: Logical ids of declared resources whose id is not simply their declared id in CamelCase: ids of a
#: deployed stack never change (CloudFormation would replace the resource, and a retained, named one
#: would collide with its replacement).
_CONSTRUCT_IDS = {
    PII_KEY: "PiiKey",
    PII_HASH_KEY: "PiiHashKey",
    OUTBOX_DEAD_LETTER_QUEUE_ID: "OutboxDeadLetters",
    resources.AUTHORITY_SECRET: "IdentityAuthorityKeys",
}


def construct_id_of(declared_id: str) -> str:
    """``outbox`` -> ``Outbox``, ``operator-china_mobile`` -> ``OperatorKeysChinaMobile``."""
    if declared_id in _CONSTRUCT_IDS:
        return _CONSTRUCT_IDS[declared_id]
    if declared_id.startswith("operator-"):
        declared_id = "operator-keys-" + declared_id.removeprefix("operator-")
    return "".join(part.capitalize() for part in declared_id.replace("_", "-").split("-"))


def function_name_prefix(settings: Settings) -> str:
    """Every function of the stage is named ``<prefix>-<stage>-<logical id>`` (logs are scoped by it)."""
    return f"{settings.resource_prefix}-{settings.stage}-"


def _lifecycle_rule(rule: resources.LifecycleRule) -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id=rule.id,
        prefix=rule.prefix or None,
        expiration=None if rule.expire_days is None else Duration.days(rule.expire_days),
        noncurrent_version_expiration=None
        if rule.noncurrent_expire_days is None
        else Duration.days(rule.noncurrent_expire_days),
        abort_incomplete_multipart_upload_after=None
        if rule.abort_multipart_days is None
        else Duration.days(rule.abort_multipart_days),
        expired_object_delete_marker=rule.expired_delete_markers or None,
    )


@contextlib.contextmanager
def _packaging(project_dir: Path, build_dir: Path, region: str) -> Iterator[None]:
    """Run ``chalice package`` (inside the construct) without leaving traces in this process.

    Packaging writes ``chalice.out/`` into the working directory, asks botocore for the region (to name
    the partition's service principals), and imports ``app.py`` after copying the stage's environment
    variables (CDK tokens included) into ``os.environ`` and the project onto ``sys.path``. Afterwards the
    directory, environment and path are restored and the settings read meanwhile forgotten. The modules
    imported stay: importing them reads no settings (a cold start reads them on first use), and
    forgetting them would leave the modules imported before holding classes a later import makes anew
    (a view model refusing the very class its handler returns).
    """
    from chalicelib.core.settings import get_settings

    build_dir.mkdir(parents=True, exist_ok=True)
    cwd, environ, path = Path.cwd(), dict(os.environ), list(sys.path)
    settings_cached = get_settings.cache_info().currsize > 0
    os.chdir(build_dir)
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
        if not settings_cached:
            get_settings.cache_clear()  # filled from the stage's environment while importing app.py


def _chalice_stage_section(project_dir: Path, stage: str) -> dict[str, Any]:
    """The stage's section of ``.chalice/config.json`` (memory, timeout, concurrency, tags, env)."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text(encoding="utf-8"))
    section = config.get("stages", {}).get(stage, {})
    return dict(section) if isinstance(section, dict) else {}


class ChekaStack(Stack):
    """Everything one stage of cheka needs on AWS."""

    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        settings: Settings,
        project_dir: Path = PROJECT_DIR,
        build_dir: Path | None = None,
        package_api: bool = True,
        **kwargs: Any,
    ) -> None:
        """``package_api=False`` leaves out the API and its functions (``chalice package``): the rest of
        the stage synthesises in seconds, for tests of what does not depend on the functions."""
        if settings.is_local:
            raise ValueError(f"stage {settings.stage!r} is local-only (moto); deploy dev or prod")
        problems = settings.configuration_problems()
        if problems:  # refused here, before a deploy ships functions that would refuse to start
            raise ConfigurationError(settings.stage, problems)
        super().__init__(scope, stack_id, **kwargs)
        self.settings = settings
        self.declared: StageResources = resources.declare(settings)
        Tags.of(self).add("project", settings.resource_prefix)
        Tags.of(self).add("stage", settings.stage)

        self.keys = {key.id: self._key(key) for key in self.declared.keys}
        self.pii_key, self.hash_key = self.keys[PII_KEY], self.keys[PII_HASH_KEY]
        self.tables: dict[str, dynamodb.Table] = {
            spec.short_name: build_table(self, spec, settings, self.pii_key) for spec in TABLES
        }
        self.bucket = self._documents_bucket()
        # The faces bound to identities, on stages whose face engine is Rekognition (一脸多证).
        self.face_collection: rekognition.CfnCollection | None = None
        if settings.face_engine == "rekognition":
            self.face_collection = rekognition.CfnCollection(
                self, "FaceCollection", collection_id=settings.face_collection
            )
            self.face_collection.apply_removal_policy(RemovalPolicy.RETAIN)
        self.secrets = {secret.id: self._secret(secret) for secret in self.declared.secrets}
        self.token_secret = self.secrets[TOKEN_SECRET]
        self.operator_secrets = [s for d, s in self.secrets.items() if d.startswith("operator-")]
        self.authority_secret = self.secrets.get(resources.AUTHORITY_SECRET)
        self.queues = self._queues()
        self.outbox_queue = self.queues[OUTBOX_QUEUE_ID]
        self.outbox_dlq = self.queues[OUTBOX_DEAD_LETTER_QUEUE_ID]
        # Staff sign-in: the stage's Cognito user pool where it has one (infra.staff), before the
        # functions' settings are made (they point at it).
        self.staff_pool = add_staff_sign_in(self, settings)
        # Backfill campaigns' schedule group and scheduler role (infra.campaigns), before the functions'
        # roles (they may pass the scheduler's role) and their settings (they are told its ARN).
        self.campaign_scheduling = add_campaign_scheduling(self)
        # One role per function, each with exactly its calls (infra.roles); the API's is ``role``.
        self.function_roles = add_function_roles(self)
        self.role = self.function_roles[API_FUNCTION]
        # The fleet review state machine (infra.workflows), before the functions: they are told its ARN.
        self.fleet_workflow = add_fleet_workflow(self)
        self.chalice_config = self.stage_config(project_dir)
        self.api = self._api(project_dir, build_dir or project_dir) if package_api else None
        if self.api is not None:
            self._outbox_consumer()
            add_fleet_tasks_consumer(self)
            add_backfill_campaigns(self)
        add_secret_rotation(self)  # the token key's rotation schedule (infra.rotation)
        # The engines the API runs remotely (infra.engines), after the API: its functions wait for the grant.
        self.engines_function = add_engines_function(self, project_dir)
        self._gateway_responses()
        # Access logs, throttling and the web ACL of the API (infra.gateway).
        self.edge = self._edge()
        # (Functions added to the stack before this point get their alarms too.)
        self.alarm_topic = self._alarm_topic()
        self.alarms = self._alarms()
        self.dashboard = self._dashboard()
        # Each key's policy names the roles that may use it (after every role is made).
        self._key_policies()
        self._outputs()

    # -- queues and secrets (declared in chalicelib.core.resources) ------------------------------------

    def _queues(self) -> dict[str, sqs.Queue]:
        """Every declared queue, dead-letter queues first (each redriving queue refers to its own)."""
        made: dict[str, sqs.Queue] = {}
        for queue in sorted(self.declared.queues, key=lambda q: q.dead_letter_queue is not None):
            made[queue.id] = self._queue(queue, made)
        return made

    def _queue(self, queue: QueueDeclaration, made: dict[str, sqs.Queue]) -> sqs.Queue:
        dead_letter = self.declared.dead_letter_of(queue)
        return sqs.Queue(
            self,
            construct_id_of(queue.id),
            queue_name=queue.name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            visibility_timeout=Duration.seconds(queue.visibility_timeout_seconds),
            retention_period=Duration.seconds(queue.retention_seconds),
            dead_letter_queue=None
            if dead_letter is None or queue.max_receives is None
            else sqs.DeadLetterQueue(max_receive_count=queue.max_receives, queue=made[dead_letter.id]),
            enforce_ssl=True,
        )

    def _secret(self, secret: SecretDeclaration) -> secretsmanager.Secret:
        """A declared secret. A generated one gets its random key at creation. The others get CDK's
        placeholder (a random string that holds no keys) until operations put in the operator's or the
        provider's keys; their properties must never change, or an update would overwrite those keys."""
        generated = secret.content == "generated"
        return secretsmanager.Secret(
            self,
            construct_id_of(secret.id),
            secret_name=secret.name,
            description=secret.description,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=resources.GENERATED_SECRET_LENGTH, exclude_punctuation=True
            )
            if generated
            else None,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _outbox_consumer(self) -> None:
        """The dispatcher consumes the outbox queue, reporting partial batch failures (Chalice cannot)."""
        function = next(f for f in self.functions(self.api) if f.node.id == "DispatchOutbox")
        lambda_.CfnEventSourceMapping(
            self,
            "OutboxDispatch",
            function_name=function_name_prefix(self.settings) + function.node.id,
            event_source_arn=self.outbox_queue.queue_arn,
            batch_size=10,
            maximum_batching_window_in_seconds=1,
            function_response_types=["ReportBatchItemFailures"],
        ).node.add_dependency(function)

    # -- KMS ---------------------------------------------------------------------------------------------

    def _key(self, key: KeyDeclaration) -> kms.Key:
        return kms.Key(
            self,
            construct_id_of(key.id),
            alias=key.alias,
            description=key.description,
            key_spec=kms.KeySpec(key.spec),
            key_usage=kms.KeyUsage(key.usage),
            enable_key_rotation=key.rotation,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _key_policies(self) -> None:
        """Each declared key's policy: the account administers it (no data-key use), DynamoDB may use the
        personal-data key for the tables on behalf of the account's callers (the AWS-managed key's own
        rule: it opens no field), and only the roles of the functions that use a key directly, named in
        the policy (``key_users``), may encrypt, decrypt or make data keys (or MACs) with it."""
        for declared in self.declared.keys:
            statements = [
                iam.PolicyStatement(
                    sid="AccountAdministers",
                    principals=[iam.AccountRootPrincipal()],
                    actions=list(KEY_ADMIN_ACTIONS),
                    resources=["*"],  # in a key policy "*" is this key
                ),
                iam.PolicyStatement(
                    sid="ServicesGrants",
                    principals=[iam.AccountRootPrincipal()],
                    actions=["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    resources=["*"],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
            ]
            if declared.id == PII_KEY:
                statements.append(
                    iam.PolicyStatement(
                        sid="TablesThroughDynamoDB",
                        principals=[iam.AnyPrincipal()],
                        actions=[
                            *KEY_USE_ACTIONS[PII_KEY],
                            "kms:ReEncrypt*",
                            "kms:DescribeKey",
                            "kms:CreateGrant",
                        ],
                        resources=["*"],
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"dynamodb.{Aws.REGION}.{Aws.URL_SUFFIX}",
                                "kms:CallerAccount": Aws.ACCOUNT_ID,
                            }
                        },
                    )
                )
            users = self.key_users(declared.id)
            if users:
                # The role's own policy grants the calls too (the account principal delegates to IAM);
                # the condition names the roles by ARN, so the key waits for none of them.
                statements.append(
                    iam.PolicyStatement(
                        sid="FunctionsUseTheKey",
                        principals=[iam.AccountRootPrincipal()],
                        actions=list(KEY_USE_ACTIONS[declared.id]),
                        resources=["*"],
                        conditions={"ArnEquals": {"aws:PrincipalArn": [role_arn(self, u) for u in users]}},
                    )
                )
            key = self.keys[declared.id].node.default_child
            assert isinstance(key, kms.CfnKey)
            key.add_property_override("KeyPolicy", iam.PolicyDocument(statements=statements))

    def key_users(self, key_id: str) -> list[str]:
        """The functions (by role name, ``infra.roles``) that use the key ``key_id`` directly."""
        users = roles_using(PII_KEY_NEEDS[key_id]) if key_id in PII_KEY_NEEDS else []
        if key_id == PII_KEY and self.engines_function is not None:
            users.append(ENGINES_ROLE)  # the face index's templates (infra.engines)
        return users

    # -- S3 ----------------------------------------------------------------------------------------------

    def _documents_bucket(self) -> s3.Bucket:
        declared = self.declared.bucket
        return s3.Bucket(
            self,
            "DocumentsBucket",
            bucket_name=declared.name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL if declared.block_public_access else None,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.keys[declared.encryption_key],
            bucket_key_enabled=True,
            enforce_ssl=True,
            versioned=declared.versioned,
            lifecycle_rules=[_lifecycle_rule(rule) for rule in declared.lifecycle],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods(m) for m in rule.methods],
                    allowed_origins=list(rule.origins),
                    allowed_headers=list(rule.headers),
                    max_age=rule.max_age_seconds,
                )
                for rule in declared.cors
            ]
            or None,
            removal_policy=RemovalPolicy.RETAIN,
        )

    # -- IAM ---------------------------------------------------------------------------------------------

    def rekognition_statements(self) -> list[iam.PolicyStatement]:
        """Exactly the Rekognition calls of the stage's Rekognition engines (none on other stages), for
        the roles of the functions that run the engines (``infra.roles``)."""
        statements = []
        rekognition_actions = []
        if self.settings.face_engine == "rekognition":
            rekognition_actions += list(REKOGNITION_FACE_ACTIONS)
        if self.settings.liveness_engine == "rekognition":
            rekognition_actions += list(REKOGNITION_LIVENESS_ACTIONS)
        if rekognition_actions:
            # Rekognition's face comparison and liveness actions have no resource-level permissions.
            statements.append(
                iam.PolicyStatement(sid="FacesAndLiveness", actions=rekognition_actions, resources=["*"])
            )
        if self.face_collection is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="FaceCollection",
                    actions=list(REKOGNITION_COLLECTION_ACTIONS),
                    resources=[self.face_collection.attr_arn],
                )
            )
        return statements

    # -- API (Chalice) -----------------------------------------------------------------------------------

    def function_environment(self) -> dict[str, str]:
        """What the functions are told: the stage, and every name they use (derived from settings)."""
        env = {
            "CHEKA_STAGE": self.settings.stage,
            "CHEKA_REGION": Aws.REGION,
            "CHEKA_RESOURCE_PREFIX": self.settings.resource_prefix,
            "CHEKA_DOCUMENTS_BUCKET": self.bucket.bucket_name,
            "CHEKA_PII_KEY_ALIAS": self.settings.pii_key_alias,
            "CHEKA_HASH_KEY_ALIAS": self.settings.hash_key_alias,
            # Told explicitly: the package holds this authority's SDK and no other.
            "CHEKA_IDENTITY_AUTHORITY": self.settings.authority_kind,
        }
        env.update({table_env_var(short): table.table_name for short, table in self.tables.items()})
        env["CHEKA_FLEET_STATE_MACHINE_ARN"] = self.fleet_workflow.arn
        env.update(campaign_function_environment(self))
        if self.staff_pool is not None:
            env.update(self.staff_pool.function_environment())
        return env

    def stage_config(self, project_dir: Path) -> dict[str, Any]:
        section = _chalice_stage_section(project_dir, self.settings.stage)
        overridden = stage_role_overrides(section)
        if overridden:  # Chalice would prefer them to the declaration (infra.roles)
            raise ValueError(
                f"stage {self.settings.stage!r} gives {overridden} a role in .chalice/config.json: "
                "roles are declared in infra/roles.py (FUNCTION_ACCESS)"
            )
        env: Mapping[str, str] = section.pop("environment_variables", {})
        return {
            **section,
            "api_gateway_stage": section.get("api_gateway_stage", "api"),
            "lambda_memory_size": section.get("lambda_memory_size", DEFAULT_MEMORY_MB),
            "lambda_timeout": section.get("lambda_timeout", DEFAULT_TIMEOUT_S),
            # Edge-optimised endpoints do not exist in the China regions; regional works everywhere.
            "api_gateway_endpoint_type": section.get("api_gateway_endpoint_type", "REGIONAL"),
            "automatic_layer": False,
            "manage_iam_role": False,
            # The API's role; every function gets its own in ``_api`` (infra.roles).
            "iam_role_arn": self.role.role_arn,
            "autogen_policy": False,
            "xray": True,
            "environment_variables": {**env, **self.function_environment()},
        }

    def _api(self, project_dir: Path, build_dir: Path) -> Any:
        # The package carries its modules' bytecode: a cold start compiles nothing (infra.packaging).
        Chalice = precompiling_chalice()  # a class, made late (chalice's CLI is heavy to import)

        source = self._package_source(project_dir, build_dir)
        with _packaging(project_dir, build_dir, self.settings.region):
            api = Chalice(self, "Api", source_dir=str(source), stage_config=self.chalice_config)
        for function in self.functions(api):
            # The included resources keep chalice's logical ids (``APIHandler``...): name = prefix + id.
            # (chalice's own ``log_retention_in_days`` names the API handler's group wrongly in SAM output,
            # so the log groups are made here, before the functions can create them without retention.)
            name = function_name_prefix(self.settings) + function.node.id
            function.add_property_override("FunctionName", name)
            if function.node.id not in FUNCTION_ACCESS:
                raise ValueError(f"function {function.node.id} has no role declared in infra/roles.py")
            function.add_property_override("Role", self.function_roles[function.node.id].role_arn)
            log_group = logs.LogGroup(
                self,
                f"{function.node.id}Logs",
                log_group_name=f"/aws/lambda/{name}",
                retention=LOG_RETENTION,
                removal_policy=RemovalPolicy.RETAIN,
            )
            function.node.add_dependency(log_group)
        rest_api = self._rest_api(api)
        if rest_api is not None:
            rest_api.add_property_override("TracingEnabled", True)
            # The REST API is named after the stage (chalice names it after the app): its metrics, and so
            # the 5xx alarm, are the stage's own even when two stages share an account and region.
            rest_api.add_property_override("DefinitionBody.info.title", self.api_name)
        return api

    @property
    def api_name(self) -> str:
        return f"{self.settings.resource_prefix}-{self.settings.stage}"

    def _gateway_responses(self) -> None:
        """API Gateway's own replies in the app's error model, in the API's OpenAPI definition: each
        change then makes a new deployment of the stage (a separate GatewayResponse resource would wait
        for the next deployment). Each carries the browser headers of every app answer
        (``chalicelib.api.headers.GATEWAY_RESPONSE``) as static values: single-quoted, which API Gateway
        takes with the quotes inside them (the policy's ``'none'``)."""
        rest_api = self._rest_api(self.api)
        if rest_api is None:
            return
        responses: dict[str, Any] = {}
        for response_type, (status, code, zh, en, headers) in GATEWAY_RESPONSES.items():
            body = {"code": code, "message_zh": zh, "message_en": en, "reference": "$context.requestId"}
            response: dict[str, Any] = {
                "responseTemplates": {"application/json": json.dumps(body, ensure_ascii=False)},
                "responseParameters": {
                    f"gatewayresponse.header.{name}": f"'{value}'"
                    for name, value in {**GATEWAY_RESPONSE, **headers}.items()
                },
            }
            if status is not None:
                response["statusCode"] = str(status)
            if not response["responseParameters"]:
                del response["responseParameters"]
            responses[response_type] = response
        rest_api.add_property_override("DefinitionBody.x-amazon-apigateway-gateway-responses", responses)

    def _edge(self) -> Edge | None:
        """The API's access logs, throttling and web ACL (``infra.gateway``); none without an API."""
        rest_api = self._rest_api(self.api)
        if rest_api is None or self.api is None:
            return None
        # The routes as ``chalice package`` wrote them in the API's OpenAPI definition.
        sam = json.loads((Path(self.api._sam_package_dir) / "sam.json").read_text(encoding="utf-8"))
        paths = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
        return add_edge(self, rest_api, self.chalice_config["api_gateway_stage"], paths)

    def _package_source(self, project_dir: Path, build_dir: Path) -> Path:
        """What ``chalice package`` packages: a copy of the app whose ``requirements.txt`` is the stage's
        hashed lock (``infra.packaging.lambda_requirements``: ``requirements.txt`` plus the SDKs of the
        stage's providers, ``Settings.lambda_requirement_files``), so that each stage's package holds
        only the SDKs it uses, every file checked against its hash."""
        extra = self.settings.lambda_requirement_files
        source = build_dir / "package-source"
        if source.exists():
            shutil.rmtree(source)
        source.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments")
        shutil.copy2(project_dir / "app.py", source / "app.py")
        for folder in ("chalicelib", ".chalice"):
            shutil.copytree(project_dir / folder, source / folder, ignore=ignore)
        requirements = lambda_requirements(tuple(extra), project_dir)
        (source / "requirements.txt").write_text(requirements, encoding="utf-8")
        return source

    @staticmethod
    def functions(api: Any) -> list[CfnResource]:
        """The ``AWS::Serverless::Function`` resources ``chalice package`` produced."""
        if api is None:
            return []
        return [
            child
            for child in api.sam_template.node.children
            if isinstance(child, CfnResource) and child.cfn_resource_type == "AWS::Serverless::Function"
        ]

    # -- alarms and dashboard --------------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic:
        """The stage's alarm topic, encrypted with a key of its own that CloudWatch may use (an alarm
        cannot publish to a topic under the AWS-managed SNS key); ``alarm_emails`` subscribe."""
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"cheka {self.settings.stage}: alarm notifications (no personal data)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" is this key
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{self.settings.resource_prefix}-{self.settings.stage}-alarms",
            display_name=f"cheka {self.settings.stage} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        for address in self.settings.alarm_emails:
            topic.add_subscription(sns_subscriptions.EmailSubscription(address))
        return topic

    def metric(self, name: Metric, statistic: str = "Sum", **dimensions: str) -> cloudwatch.Metric:
        """A platform metric: namespace ``metrics_namespace``, dimension ``service`` and ``dimensions``."""
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=name.value,
            dimensions_map={"service": self.settings.service_name, **dimensions},
            statistic=statistic,
            period=Duration.minutes(5),
        )

    def metric_search(
        self, name: Metric, statistic: str = "Sum", label: str = ""
    ) -> cloudwatch.MathExpression:
        """``name`` split by its dimensions (``METRIC_DIMENSIONS``): a line per value (step, operator...)."""
        dims = ",".join(("service", *METRIC_DIMENSIONS[name]))
        search = (
            f'SEARCH(\'{{{self.settings.metrics_namespace},{dims}}} MetricName="{name.value}" '
            f"service=\"{self.settings.service_name}\"', '{statistic}', 300)"
        )
        return cloudwatch.MathExpression(
            expression=search, label=label or name.value, period=Duration.minutes(5), using_metrics={}
        )

    def _function_names(self) -> dict[str, str]:
        """Construct id -> function name of every function of the stack (chalice's and any other)."""
        names = {f.node.id: function_name_prefix(self.settings) + f.node.id for f in self.functions(self.api)}
        for child in self.node.find_all():
            if isinstance(child, lambda_.CfnFunction):
                owner = child.node.scope
                construct = (
                    owner.node.id if child.node.id == "Resource" and owner is not None else child.node.id
                )
                names[construct] = child.ref
        return names

    def _alarms(self) -> list[cloudwatch.Alarm]:
        """Every alarm of the stage, each notifying the alarm topic when it fires and when it clears."""
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        alarms = [
            cloudwatch.Alarm(
                self,
                "OutboxDeadLettersAlarm",
                alarm_description="Operator pushes are dead-lettered: `cheka outbox status --status dead`",
                metric=self.outbox_dlq.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5)
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        ]
        rules = alarm_rules(self.settings)
        missing = [m.value for m in ALARMED if m not in rules]
        if missing:
            raise ValueError(f"alarmed metrics without an alarm rule: {missing}")
        for name in ALARMED:
            rule = rules[name]
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"{name.value}Alarm",
                    alarm_description=rule.description,
                    metric=self.metric(name, rule.statistic).with_(
                        period=Duration.minutes(rule.period_minutes)
                    ),
                    threshold=rule.threshold,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        if self._rest_api(self.api) is not None:
            alarms.append(api_5xx_rate_alarm(self, self.api_name, self.chalice_config["api_gateway_stage"]))
        for construct, function_name in self._function_names().items():
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"{construct}ErrorsAlarm",
                    alarm_description=f"The function {construct} fails (errors, timeouts)",
                    metric=cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name="Errors",
                        dimensions_map={"FunctionName": function_name},
                        statistic="Sum",
                        period=Duration.minutes(5),
                    ),
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        alarms += workflow_alarms(self, self.fleet_workflow)
        alarms += campaign_alarms(self)
        # Throttles, WAF blocks, the SMS budget and every declared queue's backlog (infra.operations).
        alarms += throttle_alarms(self, self._function_names(), self.edge)
        alarms.append(sms_budget_alarm(self))
        alarms += queue_alarms(self, alarms)
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        return alarms

    def _dashboard(self) -> cloudwatch.Dashboard:
        """The registration funnel and the push pipeline of the stage."""
        funnel_steps = list(Step)

        def per_step(name: Metric) -> list[cloudwatch.IMetric]:
            return [self.metric(name, step=step.value).with_(label=step.value) for step in funnel_steps]

        def graph(title: str, metrics: list[cloudwatch.IMetric], width: int = 12) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, width=width, height=6)

        dlq_depth = self.outbox_dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5))
        queue_age = self.outbox_queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(5))
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{self.settings.resource_prefix}-{self.settings.stage}",
            default_interval=Duration.hours(24),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# cheka {self.settings.stage}\nRegistration funnel (per step) and operator pushes",
                width=24,
                height=1,
            )
        )
        dashboard.add_widgets(
            graph("Funnel: steps entered", per_step(Metric.STEP_ENTERED), 8),
            graph("Funnel: steps passed", per_step(Metric.STEP_PASSED), 8),
            graph("Funnel: steps failed, by step and reason", [self.metric_search(Metric.STEP_FAILED)], 8),
        )
        dashboard.add_widgets(
            graph("Face attempts, by result", [self.metric_search(Metric.FACE_ATTEMPT)], 6),
            graph("Liveness results", [self.metric_search(Metric.LIVENESS_RESULT)], 6),
            graph("Reviews opened, by reason", [self.metric_search(Metric.REVIEW_OPENED)], 6),
            graph(
                "Fleet cases (单位批次审核): reminded, escalated to a lead",
                [
                    self.metric_search(Metric.FLEET_CASE_REMINDER, label="reminded"),
                    self.metric_search(Metric.FLEET_CASE_ESCALATED, label="escalated"),
                ],
                6,
            ),
            graph(
                "Fleet batches: cards pushed, outcomes notified",
                [
                    self.metric_search(Metric.FLEET_CARDS_PUSHED, label="cards pushed"),
                    self.metric_search(Metric.FLEET_BATCH_NOTIFIED, label="notified"),
                ],
                6,
            ),
            graph("Engines unavailable, by engine", [self.metric_search(Metric.ENGINE_UNAVAILABLE)], 6),
        )
        dashboard.add_widgets(
            graph(
                "Operators' spot checks (抽查): opened, answered, answered late",
                [
                    self.metric_search(Metric.SPOT_CHECK_OPENED, label="opened"),
                    self.metric_search(Metric.SPOT_CHECK_ANSWERED, label="answered"),
                    self.metric_search(Metric.SPOT_CHECK_OVERDUE, label="late"),
                    self.metric(Metric.SPOT_CHECKS_OVERDUE_OPEN, "Maximum").with_(label="open past deadline"),
                ],
                8,
            ),
            graph(
                "Retention purge (第十八条), holders by outcome",
                [self.metric_search(Metric.RETENTION_PURGED)],
                8,
            ),
            graph(
                "Personal data read in clear (查阅日志), by record kind",
                [self.metric_search(Metric.PERSONAL_DATA_READ)],
                8,
            ),
        )
        dashboard.add_widgets(
            graph(
                "Pushes (all operators)",
                [
                    self.metric(name).with_(label=name.value)
                    for name in (
                        Metric.PUSH_SENT,
                        Metric.PUSH_ACCEPTED,
                        Metric.PUSH_REFUSED,
                        Metric.PUSH_DEAD,
                    )
                ],
                8,
            ),
            graph("Pushes sent, by operator", [self.metric_search(Metric.PUSH_SENT, label="sent")], 8),
            graph(
                "Operator answers, by operator",
                [
                    self.metric_search(Metric.PUSH_ACCEPTED, label="accepted"),
                    self.metric_search(Metric.PUSH_REFUSED, label="refused"),
                    self.metric_search(Metric.PUSH_DEAD, label="dead"),
                ],
                8,
            ),
        )
        dashboard.add_widgets(
            graph(
                "Operator errors and waiting pushes",
                [
                    self.metric_search(Metric.OPERATOR_ERROR, label="errors"),
                    self.metric_search(Metric.OPERATOR_NOT_CONFIGURED, label="not configured"),
                    self.metric(Metric.RECONCILIATION_DRIFT, "Maximum").with_(label="reconciliation drift"),
                ],
                6,
            ),
            graph(
                "Oldest pending push (minutes)",
                [self.metric(Metric.OLDEST_PENDING_PUSH_MINUTES, "Maximum").with_(label="oldest pending")],
                6,
            ),
            graph(
                "Outbox queue",
                [dlq_depth.with_(label="dead letters"), queue_age.with_(label="oldest message age (s)")],
                6,
            ),
            graph("Operator callbacks, by outcome", [self.metric_search(Metric.CALLBACK_RECEIVED)], 6),
        )
        dashboard.add_widgets(
            graph("SMS codes sent, by purpose", [self.metric_search(Metric.SMS_CODES_SENT)], 8),
            graph("SMS code sends refused, by limit", [self.metric_search(Metric.SMS_SEND_REFUSED)], 8),
            graph(
                "SMS sends refused while the hourly budget is spent",
                [self.metric(Metric.SMS_BUDGET_EXHAUSTED).with_(label="budget spent")],
                8,
            ),
        )
        dashboard.add_widgets(*campaign_widgets(self))  # backfill campaigns (infra.campaigns)
        return dashboard

    # -- outputs -----------------------------------------------------------------------------------------

    def _outputs(self) -> None:
        rest_api = self._rest_api(self.api)
        if rest_api is not None:
            stage = self.chalice_config["api_gateway_stage"]
            CfnOutput(
                self,
                "ApiUrl",
                value=f"https://{rest_api.ref}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{stage}/",
                description="Base URL of the cheka API",
            )
        for short, table in self.tables.items():
            CfnOutput(self, construct_id(short) + "Name", value=table.table_name)
        CfnOutput(self, "DocumentsBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "PiiKeyArn", value=self.pii_key.key_arn)
        CfnOutput(self, "PiiHashKeyArn", value=self.hash_key.key_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)

    @staticmethod
    def _rest_api(api: Any) -> CfnResource | None:
        """Chalice's ``RestAPI`` (``AWS::Serverless::Api``); none when the app has no HTTP routes."""
        if api is None:
            return None
        try:
            resource = api.get_resource("RestAPI")
        except RuntimeError:  # jsii: "Resource with logical ID 'RestAPI' was not found in the template"
            return None
        return resource if isinstance(resource, CfnResource) else None
