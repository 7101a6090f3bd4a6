"""The engines function of a stage: a container-image Lambda serving the engines its API runs remotely.

Added when the stage's settings name at least one ``remote`` engine (``Settings.remote_engines``: OCR on
every deployed stage, faces and liveness where Rekognition is not offered). The image is built from
``engines/Dockerfile`` (the pinned ``requirements-engines.txt``) by ``cdk deploy``; ``cdk synth`` only
fingerprints the build context (what ``.dockerignore`` and ``ENGINES_ASSET_EXCLUDE`` let through), so it
stays offline and needs no Docker.

Sizing, from measurements on the development machine (``bench/bench_engines.py``): one process that has
read a 3000-px card and compared two faces peaks at about 500 MB; the function gets ``ENGINES_MEMORY_MB``
(four times that, and above the 1,769 MB at which Lambda grants a whole vCPU: OCR is CPU-bound). Its
timeout is the API's wait (``engines_timeout_seconds``) plus ``TIMEOUT_MARGIN_S``, so a first call that
also loads the models is not cut short while the API still waits for it.

The function has its own role: its logs and X-Ray, the face-templates table (with its indexes) and the
personal-data key for the face index, and reading staged images under ``engine-io/`` of the documents
bucket. The roles of the functions that run engines (``infra.roles``) may invoke exactly this function.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from chalicelib.adapters.engines.staging import ENGINE_IO_PREFIX
from infra.roles import FUNCTION_ACCESS, role_name

if TYPE_CHECKING:
    from infra.stack import ChekaStack

#: Memory of the engines function (MB): see the module docstring.
ENGINES_MEMORY_MB = 2048
#: Seconds the function may run beyond the API's wait for it.
TIMEOUT_MARGIN_S = 10
#: The Dockerfile, relative to the project root (the build context).
DOCKERFILE = "engines/Dockerfile"
#: Never part of the image's build context (on top of ``.dockerignore``): keeps the asset's fingerprint
#: off the virtualenv, caches and build output.
ENGINES_ASSET_EXCLUDE = [
    ".venv",
    ".git",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".import_linter_cache",
    ".chalice",
    "cdk.out",
    "chalice.out",
    "build",
    "tests",
    "bench",
    "infra",
    "scripts",
    "**/__pycache__",
]
#: The engines function's role, by the name ``infra.roles.role_name`` makes of it.
ENGINES_ROLE = "Engines"
#: The table the face index keeps its templates in.
TEMPLATES_TABLE = "face-templates"


def add_engines_function(stack: ChekaStack, project_dir: Path) -> lambda_.DockerImageFunction | None:
    """The stage's engines function, with its role and log group, and the grant to invoke it to the roles
    of the functions that run engines (``infra.roles``: the API's among them);
    None when the stage runs no engine remotely. Call after the API is built (its functions then wait
    for the grant)."""
    settings = stack.settings
    if not settings.remote_engines:
        return None
    name = settings.engines_function
    log_group = logs.LogGroup(
        stack,
        "EnginesLogs",
        log_group_name=f"/aws/lambda/{name}",
        retention=logs.RetentionDays.THREE_MONTHS,
        removal_policy=RemovalPolicy.RETAIN,
    )
    function = lambda_.DockerImageFunction(
        stack,
        "Engines",
        function_name=name,
        description=f"cheka {settings.stage}: engines ({', '.join(settings.remote_engines)})",
        code=lambda_.DockerImageCode.from_image_asset(
            str(project_dir),
            file=DOCKERFILE,
            exclude=ENGINES_ASSET_EXCLUDE,
            platform=ecr_assets.Platform.LINUX_AMD64,
        ),
        architecture=lambda_.Architecture.X86_64,
        memory_size=ENGINES_MEMORY_MB,
        timeout=Duration.seconds(math.ceil(settings.engines_timeout_seconds) + TIMEOUT_MARGIN_S),
        role=_engines_role(stack, name),
        environment=dict(stack.chalice_config["environment_variables"]),
        tracing=lambda_.Tracing.ACTIVE,
    )
    function.node.add_dependency(log_group)
    grant = iam.Policy(
        stack,
        "EnginesInvoke",
        statements=[
            iam.PolicyStatement(
                sid="EnginesFunction", actions=["lambda:InvokeFunction"], resources=[function.function_arn]
            )
        ],
        roles=[stack.function_roles[f] for f, access in FUNCTION_ACCESS.items() if access.engines],
    )
    for api_function in stack.functions(stack.api) if stack.api is not None else []:
        api_function.node.add_dependency(grant)
    return function


def _engines_role(stack: ChekaStack, function_name: str) -> iam.Role:
    from infra.stack import XRAY_ACTIONS

    log_group = (
        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/lambda/{function_name}"
    )
    table = stack.tables[TEMPLATES_TABLE]
    statements = [
        iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group}:*"]
        ),
        iam.PolicyStatement(sid="XRay", actions=list(XRAY_ACTIONS), resources=["*"]),
        # The face index: its templates, read by their change index, sealed with the personal-data key.
        iam.PolicyStatement(
            sid="FaceTemplates",
            actions=[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "dynamodb:DescribeTable",
            ],
            resources=[table.table_arn, f"{table.table_arn}/index/*"],
        ),
        iam.PolicyStatement(
            sid="PiiKey",
            actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
            resources=[stack.pii_key.key_arn],
        ),
        # Images too large for an invoke, staged by the API for the length of one call.
        iam.PolicyStatement(
            sid="StagedImages",
            actions=["s3:GetObject"],
            resources=[stack.bucket.arn_for_objects(f"{ENGINE_IO_PREFIX}*")],
        ),
    ]
    return iam.Role(
        stack,
        "EnginesRole",
        # Named: the personal-data key's policy names it (``infra.roles``).
        role_name=role_name(stack, ENGINES_ROLE),
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"cheka {stack.settings.stage} engines function (least privilege)",
        inline_policies={"cheka-engines": iam.PolicyDocument(statements=statements)},
    )
