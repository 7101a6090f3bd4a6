"""Create every resource of a stage on the embedded AWS from the same definitions infra uses.

Tables come from the pynamodb models (``TABLES``); the documents bucket (versioned, with its lifecycle
rules), the KMS keys, the queues, the secrets and the state machines from
``chalicelib.core.resources.declare``, which
``infra.stack`` synthesises too. Names come from ``Settings``. Idempotent.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

from chalicelib.core.aws import client
from chalicelib.core.resources import (
    GENERATED_SECRET_LENGTH,
    OUTBOX_MAX_RECEIVES,
    BucketDeclaration,
    KeyDeclaration,
    LifecycleRule,
    QueueDeclaration,
    SecretDeclaration,
    StageResources,
    declare,
)
from chalicelib.core.settings import Settings
from chalicelib.kernel.operators import Operator

__all__ = [
    "OUTBOX_MAX_RECEIVES",
    "create_declared",
    "create_resources",
    "create_workflows",
    "lifecycle_rule",
    "stop_executions",
]


def _ensure_tables(settings: Settings) -> list[str]:
    from chalicelib.adapters.dynamo.models import TABLES, bind

    bind(settings)
    made = []
    ddb = client("dynamodb")
    # One listing instead of a describe per table, and no wait: a table of the embedded AWS is ACTIVE once
    # created (the tests create every table afresh for each test, so this is most of their set-up).
    existing = set(ddb.get_paginator("list_tables").paginate().build_full_result().get("TableNames", []))
    for spec in TABLES:
        if spec.model.Meta.table_name not in existing:
            # pynamodb's own schema (``_get_schema``, which infra/tables.py reads), without its describes.
            schema = spec.model._get_schema()
            spec.model._get_connection().create_table(
                attribute_definitions=schema["attribute_definitions"],
                key_schema=schema["key_schema"],
                global_secondary_indexes=schema["global_secondary_indexes"],
                local_secondary_indexes=schema["local_secondary_indexes"],
                billing_mode="PAY_PER_REQUEST",
            )
            made.append(spec.model.Meta.table_name)
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=spec.model.Meta.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
    return made


# -- KMS ----------------------------------------------------------------------------------------------


def _ensure_key(kms: Any, key: KeyDeclaration) -> str:
    try:
        return str(kms.describe_key(KeyId=key.alias)["KeyMetadata"]["KeyId"])
    except kms.exceptions.NotFoundException:
        key_id = str(
            kms.create_key(Description=key.description, KeySpec=key.spec, KeyUsage=key.usage)["KeyMetadata"][
                "KeyId"
            ]
        )
        if key.rotation:
            kms.enable_key_rotation(KeyId=key_id)
        kms.create_alias(AliasName=key.alias, TargetKeyId=key_id)
        return key_id


def _ensure_keys(declared: StageResources) -> dict[str, str]:
    """Declared key id → KMS key id."""
    kms = client("kms")
    return {key.id: _ensure_key(kms, key) for key in declared.keys}


# -- S3 -----------------------------------------------------------------------------------------------


def lifecycle_rule(rule: LifecycleRule) -> dict[str, Any]:
    """A declared rule in S3's API form (``put_bucket_lifecycle_configuration``)."""
    out: dict[str, Any] = {"ID": rule.id, "Status": "Enabled", "Filter": {"Prefix": rule.prefix}}
    if rule.expire_days is not None:
        out["Expiration"] = {"Days": rule.expire_days}
    elif rule.expired_delete_markers:
        out["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    if rule.noncurrent_expire_days is not None:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule.noncurrent_expire_days}
    if rule.abort_multipart_days is not None:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule.abort_multipart_days}
    return out


def _ensure_bucket(settings: Settings, bucket: BucketDeclaration, key_id: str) -> None:
    s3 = client("s3")
    name = bucket.name
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        extra = (
            {}
            if settings.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": settings.region}}
        )
        s3.create_bucket(Bucket=name, **extra)
    if bucket.block_public_access:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    if bucket.versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if bucket.cors:
        s3.put_bucket_cors(
            Bucket=name,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": list(rule.methods),
                        "AllowedOrigins": list(rule.origins),
                        "AllowedHeaders": list(rule.headers),
                        "MaxAgeSeconds": rule.max_age_seconds,
                    }
                    for rule in bucket.cors
                ]
            },
        )
    if bucket.lifecycle:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [lifecycle_rule(rule) for rule in bucket.lifecycle]},
        )


# -- SQS ----------------------------------------------------------------------------------------------


def _ensure_queues(declared: StageResources) -> None:
    """Dead-letter queues first, then the queues that redrive to them."""
    sqs = client("sqs")
    arns: dict[str, str] = {}
    ordered = sorted(declared.queues, key=lambda q: q.dead_letter_queue is not None)
    for queue in ordered:
        url = sqs.create_queue(QueueName=queue.name, Attributes=_queue_attributes(declared, queue, arns))[
            "QueueUrl"
        ]
        arns[queue.id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]


def _queue_attributes(
    declared: StageResources, queue: QueueDeclaration, arns: dict[str, str]
) -> dict[str, str]:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(queue.retention_seconds),
        "SqsManagedSseEnabled": "true",
    }
    dead_letter = declared.dead_letter_of(queue)
    if dead_letter is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[dead_letter.id], "maxReceiveCount": queue.max_receives}
        )
    return attributes


# -- Step Functions -----------------------------------------------------------------------------------


#: The embedded AWS's account (moto's default): only named in the state machines' role, which it checks not.
LOCAL_ACCOUNT = "123456789012"


def partition_of(region: str) -> str:
    """The AWS partition of ``region`` (``aws-cn`` for the China regions)."""
    return "aws-cn" if region.startswith("cn-") else "aws"


def _ensure_state_machines(settings: Settings, declared: StageResources) -> list[str]:
    """Every declared state machine with its definition filled as infra fills it (the tasks queue's URL,
    the partition); an existing one gets the current definition. The embedded AWS runs them when its
    Step Functions config ``execute_state_machine`` is on (``chalicelib.local.moto_server`` turns it on;
    the tests' ``mock_aws`` asks for it). Returns the ARNs."""
    if not declared.state_machines:
        return []
    sfn, sqs = client("stepfunctions"), client("sqs")
    partition = partition_of(settings.region)
    existing: dict[str, str] = {}
    for page in sfn.get_paginator("list_state_machines").paginate():
        existing.update({m["name"]: m["stateMachineArn"] for m in page.get("stateMachines", [])})
    arns = []
    for machine in declared.state_machines:
        values: dict[str, str | int] = {"Partition": partition}
        if machine.tasks_queue is not None:
            queue = declared.queue(machine.tasks_queue)
            values["FleetTasksQueueUrl"] = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        definition = machine.render(**values)
        if machine.name in existing:
            sfn.update_state_machine(stateMachineArn=existing[machine.name], definition=definition)
            arns.append(existing[machine.name])
            continue
        role = f"arn:{partition}:iam::{LOCAL_ACCOUNT}:role/{machine.name}"  # the embedded AWS checks no role
        made = sfn.create_state_machine(
            name=machine.name, definition=definition, roleArn=role, type="STANDARD"
        )
        arns.append(made["stateMachineArn"])
    return arns


def stop_executions(settings: Settings, wait_seconds: float = 3.0) -> int:
    """Stop every running execution of the declared state machines (tests, before their embedded AWS
    goes: an execution left waiting would run on and send its tasks to the next one's queue). The embedded
    AWS refuses to stop an execution still reading its definition: tried again for ``wait_seconds``.
    Returns how many were stopped."""
    sfn = client("stepfunctions")
    names = {machine.name for machine in declare(settings).state_machines}
    running: list[str] = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] in names:
            page = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            running += [execution["executionArn"] for execution in page["executions"]]
    deadline = time.monotonic() + wait_seconds
    stopped = 0
    for arn in running:
        while True:
            try:
                sfn.stop_execution(executionArn=arn)
                stopped += 1
                break
            except Exception:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    if stopped:  # a stopped execution still ends the task it was in: its message goes to this queue
        time.sleep(0.3)
    return stopped


# -- Secrets Manager ----------------------------------------------------------------------------------


def _ensure_secrets(settings: Settings, declared: StageResources) -> list[str]:
    """Generated secrets get a random value, operator secrets random keys (shared by the platform and the
    sandbox operator); "provided" secrets (a real provider's credentials) are never made up locally."""
    from chalicelib.adapters.operator.secrets import bootstrap_operator_secrets

    sm = client("secretsmanager")
    created: list[str] = []
    for secret in declared.secrets:
        if secret.content == "generated" and _create_secret(sm, secret, _random_secret()):
            created.append(secret.name)
    made = bootstrap_operator_secrets(sm, settings.operator_secret_pattern)
    created += [settings.operator_secret_pattern.format(operator=op.value) for op, new in made.items() if new]
    return sorted(created)


def _random_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(GENERATED_SECRET_LENGTH))


def _create_secret(sm: Any, secret: SecretDeclaration, value: str) -> bool:
    try:
        sm.describe_secret(SecretId=secret.name)
        return False
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=secret.name, Description=secret.description, SecretString=value)
        return True


def _ensure_schedule_group(settings: Settings) -> str:
    """The scheduler group of the backfill waves' schedules (infra creates it on AWS)."""
    scheduler = client("scheduler")
    name = settings.campaign_schedules_group
    try:
        scheduler.get_schedule_group(Name=name)
    except scheduler.exceptions.ResourceNotFoundException:
        scheduler.create_schedule_group(Name=name)
    return name


# -- all ----------------------------------------------------------------------------------------------


def create_declared(settings: Settings) -> dict[str, Any]:
    """The declared resources of ``settings``' stage (``core.resources.declare``): keys, bucket, queues,
    state machines, secrets. Returns the secrets created."""
    declared = declare(settings)
    keys = _ensure_keys(declared)
    _ensure_bucket(settings, declared.bucket, keys[declared.bucket.encryption_key])
    _ensure_queues(declared)
    _ensure_state_machines(settings, declared)
    _ensure_schedule_group(settings)
    return {"secrets_created": _ensure_secrets(settings, declared)}


def create_workflows(settings: Settings) -> list[str]:
    """The declared queues and state machines alone (the fleet review workflow and its tasks queue), for
    tests that need nothing else. Returns the state machines' ARNs."""
    declared = declare(settings)
    _ensure_queues(declared)
    return _ensure_state_machines(settings, declared)


def create_resources(settings: Settings) -> dict[str, Any]:
    """Tables and every declared resource. Returns what was created."""
    tables = _ensure_tables(settings)
    made = create_declared(settings)
    operators = sorted(
        op.value
        for op in Operator
        if settings.operator_secret_pattern.format(operator=op.value) in made["secrets_created"]
    )
    return {
        "tables_created": tables,
        "bucket": settings.documents_bucket,
        "operator_secrets_created": operators,
        "secrets_created": made["secrets_created"],
    }
