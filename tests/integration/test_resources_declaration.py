"""One declaration (``chalicelib.core.resources``), two builders: the local bootstrap on the embedded AWS
and the synthesised stack agree on the bucket (versioning, lifecycle, encryption), the KMS keys, the
queues (redrive, visibility, retention) and the secrets of a stage.

The stack is synthesised without its API (``package_api=False``: the declared resources do not depend
on the functions), for the declared prod stage; the bootstrap builds the same stage's resources in moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core.config import Settings
from chalicelib.core.resources import GENERATED_SECRET_LENGTH, PERSONAL_DATA_PREFIXES, declare

pytestmark = pytest.mark.infra

Rule = tuple[str, str, int | None, int | None, int | None, bool]


@pytest.fixture(scope="module")
def settings() -> Settings:
    from chalicelib.core.stages import stage_settings

    return stage_settings("prod")


@pytest.fixture(scope="module")
def template(settings: Settings) -> dict[str, Any]:
    import os

    from aws_cdk import App
    from aws_cdk.assertions import Template

    from infra.stack import ChekaStack

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    stack = ChekaStack(App(), "declared", settings=settings, package_api=False)
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture
def local(settings: Settings) -> Iterator[Any]:
    """The stage's declared resources, created by the local bootstrap in a fresh moto."""
    from moto import mock_aws

    from chalicelib.core import aws
    from chalicelib.local.bootstrap import create_declared

    with mock_aws():
        aws.client.cache_clear()
        create_declared(settings)
        yield aws.client
    aws.client.cache_clear()


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def cfn_rule(rule: dict[str, Any]) -> Rule:
    return (
        rule["Id"],
        rule.get("Prefix", ""),
        rule.get("ExpirationInDays"),
        rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
        rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation"),
        bool(rule.get("ExpiredObjectDeleteMarker", False)),
    )


def s3_rule(rule: dict[str, Any]) -> Rule:
    expiration = rule.get("Expiration", {})
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    return (
        rule["ID"],
        prefix,
        expiration.get("Days"),
        rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
        rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation"),
        bool(expiration.get("ExpiredObjectDeleteMarker", False)),
    )


def key_ids_by_alias(template: dict[str, Any]) -> dict[str, str]:
    return {
        a["Properties"]["AliasName"]: a["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]
        for a in of_type(template, "AWS::KMS::Alias").values()
    }


def test_the_bucket_is_versioned_with_the_same_lifecycle_locally_and_deployed(
    settings: Settings, template: dict[str, Any], local: Any
) -> None:
    declared = declare(settings).bucket
    [bucket] = of_type(template, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    s3 = local("s3")
    # versioning
    assert declared.versioned
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert s3.get_bucket_versioning(Bucket=declared.name)["Status"] == "Enabled"
    # lifecycle: the same rules, rule by rule
    deployed = sorted(cfn_rule(r) for r in props["LifecycleConfiguration"]["Rules"])
    made = sorted(s3_rule(r) for r in s3.get_bucket_lifecycle_configuration(Bucket=declared.name)["Rules"])
    assert deployed == made
    assert len(made) == len(declared.lifecycle)
    noncurrent = {prefix for _, prefix, _, days, _, _ in made if days == 1}
    assert set(PERSONAL_DATA_PREFIXES) <= noncurrent
    # encryption with the personal-data key, public access blocked
    pii_alias = declare(settings).key(declared.encryption_key).alias
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::GetAtt": [key_ids_by_alias(template)[pii_alias], "Arn"]
    }
    [local_rule] = s3.get_bucket_encryption(Bucket=declared.name)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    pii_key = local("kms").describe_key(KeyId=pii_alias)["KeyMetadata"]["KeyId"]
    assert local_rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": pii_key,
    }
    assert local_rule["BucketKeyEnabled"] is rule["BucketKeyEnabled"] is True
    blocked = s3.get_public_access_block(Bucket=declared.name)["PublicAccessBlockConfiguration"]
    assert blocked == props["PublicAccessBlockConfiguration"]
    assert all(blocked.values())


def test_the_keys_have_the_same_aliases_specs_usage_and_rotation(
    settings: Settings, template: dict[str, Any], local: Any
) -> None:
    kms = local("kms")
    deployed = key_ids_by_alias(template)
    declared = declare(settings).keys
    assert set(deployed) == {k.alias for k in declared}
    for key in declared:
        props = template["Resources"][deployed[key.alias]]["Properties"]
        made = kms.describe_key(KeyId=key.alias)["KeyMetadata"]
        assert (props.get("KeySpec", "SYMMETRIC_DEFAULT"), made["KeySpec"]) == (key.spec, key.spec)
        assert (props.get("KeyUsage", "ENCRYPT_DECRYPT"), made["KeyUsage"]) == (key.usage, key.usage)
        assert props["Description"] == made["Description"] == key.description
        assert props.get("EnableKeyRotation", False) is key.rotation
        if key.spec == "SYMMETRIC_DEFAULT":
            assert kms.get_key_rotation_status(KeyId=made["KeyId"])["KeyRotationEnabled"] is key.rotation


def test_the_queues_redrive_alike_with_the_same_visibility_and_retention(
    settings: Settings, template: dict[str, Any], local: Any
) -> None:
    from chalicelib.adapters.dynamo.outbox import OUTBOX_DEAD_LETTER_QUEUE, OUTBOX_QUEUE, queue_name

    sqs = local("sqs")
    declared = declare(settings)
    deployed = {
        q["Properties"]["QueueName"]: (k, q["Properties"])
        for k, q in of_type(template, "AWS::SQS::Queue").items()
    }
    assert set(deployed) == {q.name for q in declared.queues}
    # the names the outbox adapter sends to and infra's consumer reads from
    assert {queue_name(settings, OUTBOX_QUEUE), queue_name(settings, OUTBOX_DEAD_LETTER_QUEUE)} <= set(
        deployed
    )
    ids = {k: name for name, (k, _) in deployed.items()}
    for queue in declared.queues:
        _, props = deployed[queue.name]
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        made = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (
            int(made["VisibilityTimeout"])
            == props.get("VisibilityTimeout", 30)
            == queue.visibility_timeout_seconds
        )
        assert int(made["MessageRetentionPeriod"]) == props.get("MessageRetentionPeriod", 345600)
        assert int(made["MessageRetentionPeriod"]) == queue.retention_seconds
        assert made["SqsManagedSseEnabled"] == "true"
        assert props["SqsManagedSseEnabled"] is True
        dead_letter = declared.dead_letter_of(queue)
        if dead_letter is None:
            assert "RedrivePolicy" not in made
            assert "RedrivePolicy" not in props
            continue
        local_redrive = json.loads(made["RedrivePolicy"])
        assert (
            local_redrive["maxReceiveCount"]
            == props["RedrivePolicy"]["maxReceiveCount"]
            == queue.max_receives
        )
        assert local_redrive["deadLetterTargetArn"].endswith(f":{dead_letter.name}")
        target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert ids[target] == dead_letter.name


def test_the_secrets_have_the_same_names_and_generated_keys_the_same_length(
    settings: Settings, template: dict[str, Any], local: Any
) -> None:
    sm = local("secretsmanager")
    declared = declare(settings).secrets
    deployed = {
        s["Properties"]["Name"]: s["Properties"]
        for s in of_type(template, "AWS::SecretsManager::Secret").values()
    }
    assert set(deployed) == {s.name for s in declared}
    made = {s["Name"] for page in sm.get_paginator("list_secrets").paginate() for s in page["SecretList"]}
    provided = {s.name for s in declared if s.content == "provided"}
    # a real provider's credentials are never made up locally: operations put them in the deployed secret
    assert made == set(deployed) - provided
    # prod's authority is the real provider; the SMS provider signs its reply callbacks with its own key
    assert provided == {settings.authority_secret_name, settings.sms_reply_secret_name}
    for secret in declared:
        if secret.content != "generated":
            continue
        assert deployed[secret.name]["GenerateSecretString"]["PasswordLength"] == GENERATED_SECRET_LENGTH
        value = sm.get_secret_value(SecretId=secret.name)["SecretString"]
        assert len(value) == GENERATED_SECRET_LENGTH
        assert value.isalnum()


def test_the_outbox_max_receives_is_still_importable_from_the_bootstrap() -> None:
    from chalicelib.core import resources
    from chalicelib.local import bootstrap

    assert bootstrap.OUTBOX_MAX_RECEIVES == resources.OUTBOX_MAX_RECEIVES
