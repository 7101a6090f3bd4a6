"""Create every resource of a stage on the embedded AWS from the same definitions infra uses.

Tables come from the pynamodb models (``TABLES``), names and keys from ``Settings``. Idempotent.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.aws import client
from chalicelib.core.settings import Settings


def _ensure_tables(settings: Settings) -> list[str]:
    from chalicelib.adapters.dynamo.models import TABLES, bind

    bind(settings)
    made = []
    ddb = client("dynamodb")
    for spec in TABLES:
        if not spec.model.exists():
            spec.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            made.append(spec.model.Meta.table_name)
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=spec.model.Meta.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
    return made


def _ensure_key(kms: Any, alias: str, **create: Any) -> str:
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])
    except kms.exceptions.NotFoundException:
        key_id = str(kms.create_key(**create)["KeyMetadata"]["KeyId"])
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return key_id


def _ensure_keys(settings: Settings) -> str:
    kms = client("kms")
    pii = _ensure_key(kms, settings.pii_key_alias, Description="cheka personal-data field encryption")
    _ensure_key(
        kms,
        settings.hash_key_alias,
        Description="cheka ID-number look-up hashes",
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
    )
    return pii


def _ensure_bucket(settings: Settings, pii_key: str) -> None:
    s3 = client("s3")
    name = settings.documents_bucket
    try:
        s3.head_bucket(Bucket=name)
        return
    except s3.exceptions.ClientError:
        pass
    extra = (
        {}
        if settings.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": settings.region}}
    )
    s3.create_bucket(Bucket=name, **extra)
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
                        "KMSMasterKeyID": pii_key,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )


#: Receives of one outbox message before SQS moves it to the dead-letter queue (infra uses the same).
OUTBOX_MAX_RECEIVES = 5


def create_resources(settings: Settings) -> dict[str, Any]:
    """Tables, KMS keys, the documents bucket. Returns what was created."""
    tables = _ensure_tables(settings)
    pii_key = _ensure_keys(settings)
    _ensure_bucket(settings, pii_key)
    operators = _ensure_operator_secrets(settings)
    _ensure_queues(settings)
    return {
        "tables_created": tables,
        "bucket": settings.documents_bucket,
        "operator_secrets_created": operators,
    }


def _ensure_queues(settings: Settings) -> None:
    """The outbox queue and its dead-letter queue (redrive after as many receives as infra sets)."""
    import json

    from chalicelib.adapters.dynamo.outbox import OUTBOX_DEAD_LETTER_QUEUE, OUTBOX_QUEUE, queue_name
    from chalicelib.core.aws import client

    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=queue_name(settings, OUTBOX_DEAD_LETTER_QUEUE))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": OUTBOX_MAX_RECEIVES})
    sqs.create_queue(
        QueueName=queue_name(settings, OUTBOX_QUEUE),
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "60"},
    )


def _ensure_operator_secrets(settings: Settings) -> list[str]:
    """Random per-operator signing and encryption keys, shared by the platform and the sandbox."""
    from chalicelib.adapters.operator.secrets import bootstrap_operator_secrets
    from chalicelib.core.aws import client

    created = bootstrap_operator_secrets(client("secretsmanager"), settings.operator_secret_pattern)
    return sorted(op.value for op, made in created.items() if made)
