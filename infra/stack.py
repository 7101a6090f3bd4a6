"""The cheka stack of one stage: KMS keys, DynamoDB tables, the documents bucket, the Lambda role, the API.

Names come from ``Settings(stage=...)`` (the same definitions the local bootstrap uses), tables from the
pynamodb models (``infra.tables``), the API and its functions from ``chalice package`` through Chalice's CDK
construct. The Lambda role is created here with least privilege; Chalice neither manages nor widens it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rekognition as rekognition
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.adapters.dynamo.models import TABLES
from chalicelib.adapters.dynamo.outbox import OUTBOX_DEAD_LETTER_QUEUE, OUTBOX_QUEUE, queue_name
from chalicelib.core.settings import Settings
from chalicelib.kernel.operators import Operator
from chalicelib.local.bootstrap import OUTBOX_MAX_RECEIVES
from infra.tables import build_table, construct_id, model_schema

PROJECT_DIR = Path(__file__).resolve().parents[1]

#: Defaults of the deployed functions; ``.chalice/config.json``'s section of the stage overrides them.
DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 30
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS

#: Objects under this prefix are unvalidated uploads: expired after a day.
RAW_PREFIX = "raw/"

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
#: Tables the housekeeping jobs scan (``services.registration.RegistrationService.purge_abandoned``).
SCANNED_TABLES = ("flows", "registrations")
XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)


def table_env_var(short_name: str) -> str:
    """``card-history`` -> ``CHEKA_TABLE_CARD_HISTORY``."""
    return "CHEKA_TABLE_" + short_name.replace("-", "_").upper()


def function_name_prefix(settings: Settings) -> str:
    """Every function of the stage is named ``<prefix>-<stage>-<logical id>`` (logs are scoped by it)."""
    return f"{settings.resource_prefix}-{settings.stage}-"


@contextlib.contextmanager
def _packaging(project_dir: Path, build_dir: Path, region: str) -> Iterator[None]:
    """Run ``chalice package`` (inside the construct) without leaving traces in this process.

    Packaging writes ``chalice.out/`` into the working directory, asks botocore for the region (to name
    the partition's service principals), and imports ``app.py`` after copying the stage's environment
    variables (CDK tokens included) into ``os.environ`` and the project onto ``sys.path``. Afterwards the
    directory, environment and path are restored, and project modules first imported while packaging
    are forgotten, so a later ``import app`` (tests, ``chalice local``) sees the caller's settings.
    """
    from chalicelib.core.settings import get_settings

    build_dir.mkdir(parents=True, exist_ok=True)
    cwd, environ, path, modules = Path.cwd(), dict(os.environ), list(sys.path), set(sys.modules)
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
        for name in set(sys.modules) - modules:
            if _is_project_module(project_dir, name):
                del sys.modules[name]
        if not settings_cached:
            get_settings.cache_clear()  # filled from the stage's environment while importing app.py


def _is_project_module(project_dir: Path, name: str) -> bool:
    """``app``, ``chalicelib.x``...: modules of the project's own top-level packages (not the venv's)."""
    top = name.partition(".")[0]
    return (project_dir / f"{top}.py").is_file() or (project_dir / top / "__init__.py").is_file()


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
        **kwargs: Any,
    ) -> None:
        if settings.is_local:
            raise ValueError(f"stage {settings.stage!r} is local-only (moto); deploy dev or prod")
        super().__init__(scope, stack_id, **kwargs)
        self.settings = settings
        Tags.of(self).add("project", settings.resource_prefix)
        Tags.of(self).add("stage", settings.stage)

        self.pii_key, self.hash_key = self._keys()
        self.tables: dict[str, dynamodb.Table] = {
            spec.short_name: build_table(self, spec, settings, self.pii_key) for spec in TABLES
        }
        self.bucket = self._documents_bucket()
        # The faces bound to identities on Rekognition stages (one face, one identity: 一脸多证).
        self.face_collection = rekognition.CfnCollection(
            self, "FaceCollection", collection_id=settings.face_collection
        )
        self.face_collection.apply_removal_policy(RemovalPolicy.RETAIN)
        self.token_secret = secretsmanager.Secret(
            self,
            "TokenSigningKey",
            secret_name=settings.token_secret_name,
            description=f"cheka {settings.stage}: HS256 key that signs bearer tokens",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.outbox_dlq, self.outbox_queue = self._outbox_queues()
        self.operator_secrets = self._operator_secrets()
        self.authority_secret = self._authority_secret()
        self.role = self._lambda_role()
        self.chalice_config = self.stage_config(project_dir)
        self.api = self._api(project_dir, build_dir or project_dir)
        self._outbox_consumer()
        self._outputs()

    # -- outbox (operator push) ----------------------------------------------------------------------

    def _outbox_queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        """The outbox queue and its dead-letter queue, with an alarm on any dead letter."""
        dlq = sqs.Queue(
            self,
            "OutboxDeadLetters",
            queue_name=queue_name(self.settings, OUTBOX_DEAD_LETTER_QUEUE),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=Duration.days(14),
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            "Outbox",
            queue_name=queue_name(self.settings, OUTBOX_QUEUE),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            # Six times the function timeout, as AWS advises for an SQS event source.
            visibility_timeout=Duration.seconds(6 * DEFAULT_TIMEOUT_S),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=OUTBOX_MAX_RECEIVES, queue=dlq),
            enforce_ssl=True,
        )
        cloudwatch.Alarm(
            self,
            "OutboxDeadLettersAlarm",
            alarm_description="Operator pushes are dead-lettered: see `cheka outbox status --status dead`",
            metric=dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return dlq, queue

    def _operator_secrets(self) -> list[secretsmanager.Secret]:
        """One secret per operator; its keys come from the key exchange with the operator."""
        return [
            secretsmanager.Secret(
                self,
                "OperatorKeys" + "".join(part.capitalize() for part in op.value.split("_")),
                secret_name=self.settings.operator_secret_pattern.format(operator=op.value),
                description=f"cheka {self.settings.stage}: signing and encryption keys of {op.value}",
                removal_policy=RemovalPolicy.RETAIN,
            )
            for op in Operator
        ]

    def _authority_secret(self) -> secretsmanager.Secret | None:
        """The identity provider's credentials (``secret_id``, ``secret_key``), put in by operations;
        none when the stage's authority needs none (a sandbox)."""
        if self.settings.authority_kind == "sandbox":
            return None
        return secretsmanager.Secret(
            self,
            "IdentityAuthorityKeys",
            secret_name=self.settings.authority_secret_name,
            description=f"cheka {self.settings.stage}: {self.settings.authority_kind} authority keys",
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

    def _keys(self) -> tuple[kms.Key, kms.Key]:
        pii = kms.Key(
            self,
            "PiiKey",
            alias=self.settings.pii_key_alias,
            description="cheka personal-data encryption (field data keys, tables, documents)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        hash_key = kms.Key(
            self,
            "PiiHashKey",
            alias=self.settings.hash_key_alias,
            description="cheka ID-number look-up hashes (HMAC, the key never leaves KMS)",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            removal_policy=RemovalPolicy.RETAIN,
        )
        return pii, hash_key

    # -- S3 ----------------------------------------------------------------------------------------------

    def _documents_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "DocumentsBucket",
            bucket_name=self.settings.documents_bucket,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.pii_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-raw-uploads",
                    prefix=RAW_PREFIX,
                    expiration=Duration.days(1),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    # -- IAM ---------------------------------------------------------------------------------------------

    def _dynamodb_resources(self) -> list[str]:
        """Exactly the tables and each of their indexes: no wildcard."""
        arns: list[str] = []
        for spec in TABLES:
            table_arn = self.tables[spec.short_name].table_arn
            schema = model_schema(spec)
            arns.append(table_arn)
            arns.extend(
                f"{table_arn}/index/{index.name}" for index in (*schema.global_indexes, *schema.local_indexes)
            )
        return arns

    def _lambda_role(self) -> iam.Role:
        lambda_log_groups = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
            f"/aws/lambda/{function_name_prefix(self.settings)}*"
        )
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{lambda_log_groups}:*"],
            ),
            # X-Ray's write actions have no resource-level permissions: "*" is the only valid resource.
            iam.PolicyStatement(sid="XRay", actions=list(XRAY_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                sid="Tables", actions=list(DYNAMODB_ITEM_ACTIONS), resources=self._dynamodb_resources()
            ),
            # The housekeeping jobs (purge of abandoned flows, recovery of interrupted submissions)
            # scan these two tables, which TTL keeps small; no other table may be scanned.
            iam.PolicyStatement(
                sid="HousekeepingScan",
                actions=["dynamodb:Scan"],
                resources=[self.tables[short].table_arn for short in SCANNED_TABLES],
            ),
            iam.PolicyStatement(
                sid="DocumentObjects",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                sid="DocumentBucket", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="PiiKey",
                actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
                resources=[self.pii_key.key_arn],
            ),
            iam.PolicyStatement(
                sid="TokenSigningKey",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.token_secret.secret_arn],
            ),
            # Rekognition's face and liveness actions have no resource-level permissions.
            iam.PolicyStatement(
                sid="FacesAndLiveness",
                actions=[
                    "rekognition:DetectFaces",
                    "rekognition:CompareFaces",
                    "rekognition:CreateFaceLivenessSession",
                    "rekognition:GetFaceLivenessSessionResults",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="FaceCollection",
                actions=[
                    "rekognition:IndexFaces",
                    "rekognition:SearchFacesByImage",
                    "rekognition:DeleteFaces",
                ],
                resources=[self.face_collection.attr_arn],
            ),
            # SMS codes go straight to a phone number: such a publish has no topic ARN to scope to.
            iam.PolicyStatement(sid="Sms", actions=["sns:Publish"], resources=["*"]),
            iam.PolicyStatement(
                sid="OutboxQueue",
                actions=[
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                ],
                resources=[self.outbox_queue.queue_arn, self.outbox_dlq.queue_arn],
            ),
            iam.PolicyStatement(
                sid="OperatorKeys",
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[secret.secret_arn for secret in self.operator_secrets],
            ),
            iam.PolicyStatement(
                sid="PiiHashKey",
                actions=["kms:GenerateMac", "kms:VerifyMac", "kms:DescribeKey"],
                resources=[self.hash_key.key_arn],
            ),
        ]
        if self.authority_secret is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="IdentityAuthorityKeys",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.authority_secret.secret_arn],
                )
            )
        # Inline in the role: the functions reference the role, so they never start without the policy.
        return iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"cheka {self.settings.stage} Lambda functions (least privilege)",
            inline_policies={"cheka-runtime": iam.PolicyDocument(statements=statements)},
        )

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
        return env

    def stage_config(self, project_dir: Path) -> dict[str, Any]:
        section = _chalice_stage_section(project_dir, self.settings.stage)
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
            "iam_role_arn": self.role.role_arn,
            "autogen_policy": False,
            "xray": True,
            "environment_variables": {**env, **self.function_environment()},
        }

    def _api(self, project_dir: Path, build_dir: Path) -> Any:
        from chalice.cdk import Chalice  # imported late: it imports the chalice CLI machinery

        source = self._package_source(project_dir, build_dir)
        with _packaging(project_dir, build_dir, self.settings.region):
            api = Chalice(self, "Api", source_dir=str(source), stage_config=self.chalice_config)
        for function in self.functions(api):
            # The included resources keep chalice's logical ids (``APIHandler``...): name = prefix + id.
            # (chalice's own ``log_retention_in_days`` names the API handler's group wrongly in SAM output,
            # so the log groups are made here, before the functions can create them without retention.)
            name = function_name_prefix(self.settings) + function.node.id
            function.add_property_override("FunctionName", name)
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
        return api

    def _package_source(self, project_dir: Path, build_dir: Path) -> Path:
        """What ``chalice package`` packages: the project itself, or, when the stage's providers need
        SDKs of their own (``Settings.lambda_requirement_files``), a copy of the app whose
        ``requirements.txt`` adds them, so that each stage's package holds only the SDKs it uses."""
        extra = self.settings.lambda_requirement_files
        if not extra:
            return project_dir
        source = build_dir / "package-source"
        if source.exists():
            shutil.rmtree(source)
        source.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments")
        shutil.copy2(project_dir / "app.py", source / "app.py")
        for folder in ("chalicelib", ".chalice"):
            shutil.copytree(project_dir / folder, source / folder, ignore=ignore)
        parts = [(project_dir / "requirements.txt").read_text(encoding="utf-8")]
        parts += [(project_dir / name).read_text(encoding="utf-8") for name in extra]
        (source / "requirements.txt").write_text("\n".join(parts), encoding="utf-8")
        return source

    @staticmethod
    def functions(api: Any) -> list[CfnResource]:
        """The ``AWS::Serverless::Function`` resources ``chalice package`` produced."""
        return [
            child
            for child in api.sam_template.node.children
            if isinstance(child, CfnResource) and child.cfn_resource_type == "AWS::Serverless::Function"
        ]

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

    @staticmethod
    def _rest_api(api: Any) -> CfnResource | None:
        """Chalice's ``RestAPI`` (``AWS::Serverless::Api``); none when the app has no HTTP routes."""
        try:
            resource = api.get_resource("RestAPI")
        except RuntimeError:  # jsii: "Resource with logical ID 'RestAPI' was not found in the template"
            return None
        return resource if isinstance(resource, CfnResource) else None
