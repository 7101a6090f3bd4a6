"""Assertions on the synthesised CloudFormation template of the cheka stack.

Table expectations are computed here from the pynamodb models (hash/range key names, attribute types,
``_indexes`` and their ``Meta``), not from ``infra.tables``: a model change that infra does not follow fails.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, LocalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.dynamo.base import TableSpec
from chalicelib.adapters.dynamo.models import TABLES
from chalicelib.core.settings import Settings
from infra.campaigns import CAMPAIGN_FUNCTIONS, SENDER_FUNCTION
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

TABLE = "AWS::DynamoDB::Table"
FUNCTION = "AWS::Serverless::Function"

# -- helpers -------------------------------------------------------------------------------------------


def resources(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in synth.json["Resources"].items() if v["Type"] == kind}


def table_id(synth: Synth, name: str) -> str:
    found = [k for k, v in resources(synth, TABLE).items() if v["Properties"].get("TableName") == name]
    assert len(found) == 1, f"expected one table named {name}, found {found}"
    return found[0]


def single(synth: Synth, kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(synth, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def expected_table(model: type[Model]) -> dict[str, Any]:
    """Key schema, attribute types and indexes, read straight from the model's metadata."""
    attributes = model.get_attributes()
    types: dict[str, str] = {}

    def key(python_name: str, role: str) -> dict[str, str]:
        attribute = attributes[python_name]
        types[attribute.attr_name] = attribute.attr_type
        return {"AttributeName": attribute.attr_name, "KeyType": role}

    assert model._hash_keyname, f"{model.__name__} has no hash key"
    key_schema = [key(model._hash_keyname, "HASH")]
    if model._range_keyname:
        key_schema.append(key(model._range_keyname, "RANGE"))

    indexes: dict[str, dict[str, dict[str, Any]]] = {"global": {}, "local": {}}
    for index in model._indexes.values():
        meta = index.Meta
        keys = sorted(
            (
                {"AttributeName": a.attr_name, "KeyType": "HASH" if a.is_hash_key else "RANGE"}
                for a in meta.attributes.values()
                if a.is_hash_key or a.is_range_key
            ),
            key=lambda k: k["KeyType"] != "HASH",
        )
        for a in meta.attributes.values():
            if a.is_hash_key or a.is_range_key:
                types[a.attr_name] = a.attr_type
        projection: dict[str, Any] = {"ProjectionType": meta.projection.projection_type}
        if meta.projection.non_key_attributes:
            projection["NonKeyAttributes"] = sorted(meta.projection.non_key_attributes)
        kind = "global" if isinstance(index, GlobalSecondaryIndex) else "local"
        indexes[kind][meta.index_name] = {"KeySchema": keys, "Projection": projection}
    return {"key_schema": key_schema, "types": types, **indexes}


def actual_indexes(props: dict[str, Any], prop: str) -> dict[str, dict[str, Any]]:
    out = {}
    for index in props.get(prop, []):
        projection = dict(index["Projection"])
        if "NonKeyAttributes" in projection:
            projection["NonKeyAttributes"] = sorted(projection["NonKeyAttributes"])
        out[index["IndexName"]] = {"KeySchema": index["KeySchema"], "Projection": projection}
    return out


def check_table(props: dict[str, Any], spec: TableSpec, key_id: str) -> None:
    expected = expected_table(spec.model)
    assert props["KeySchema"] == expected["key_schema"]
    defined = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert defined == expected["types"]
    assert actual_indexes(props, "GlobalSecondaryIndexes") == expected["global"]
    assert actual_indexes(props, "LocalSecondaryIndexes") == expected["local"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props


def key_id(synth: Synth, alias: str) -> str:
    aliases = [
        v for v in resources(synth, "AWS::KMS::Alias").values() if v["Properties"]["AliasName"] == alias
    ]
    assert len(aliases) == 1, f"alias {alias} not found once"
    return str(aliases[0]["Properties"]["TargetKeyId"]["Fn::GetAtt"][0])


def role_statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    """Every identity-policy statement of the role ``role_id`` (inline or attached)."""
    role = synth.json["Resources"][role_id]
    assert role["Type"] == "AWS::IAM::Role"
    assert not role["Properties"].get("ManagedPolicyArns"), "a function role must not carry managed policies"
    statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in resources(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def function_role_ids(synth: Synth) -> dict[str, str]:
    """Each Chalice function's role (its own: ``infra.roles``), by the function's logical id."""
    found = {}
    for logical_id, function in resources(synth, FUNCTION).items():
        role_ref = function["Properties"]["Role"]
        assert set(role_ref) == {"Fn::GetAtt"}, f"{logical_id}'s role is not a role of the stack: {role_ref}"
        found[logical_id] = role_ref["Fn::GetAtt"][0]
    return found


def function_role_statements(synth: Synth) -> tuple[str, list[dict[str, Any]]]:
    """The API's role, and every statement of every Chalice function's role together (what the
    functions may do between them; each role's share is asserted in ``test_roles``)."""
    roles = function_role_ids(synth)
    statements = [s for role_id in sorted(set(roles.values())) for s in role_statements(synth, role_id)]
    return roles["APIHandler"], statements


def resource_key(resource: Any) -> tuple[str, str]:
    """``GetAtt X.Arn`` -> (X, ""); ``Join ["", [GetAtt X.Arn, "/suffix"]]`` -> (X, "/suffix")."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0], ""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        sep, parts = resource["Fn::Join"]
        if sep == "" and len(parts) == 2 and "Fn::GetAtt" in parts[0] and isinstance(parts[1], str):
            return parts[0]["Fn::GetAtt"][0], parts[1]
    raise AssertionError(f"unexpected resource form: {resource}")


# -- tables --------------------------------------------------------------------------------------------


def test_one_table_per_model(synth: Synth) -> None:
    synth.template.resource_count_is(TABLE, len(TABLES))
    names = {v["Properties"]["TableName"] for v in resources(synth, TABLE).values()}
    assert names == {synth.settings.table_name(spec.short_name) for spec in TABLES}


@pytest.mark.parametrize("spec", TABLES, ids=[s.short_name for s in TABLES])
def test_table_matches_model(synth: Synth, spec: TableSpec) -> None:
    logical_id = table_id(synth, synth.settings.table_name(spec.short_name))
    table = synth.json["Resources"][logical_id]
    check_table(table["Properties"], spec, key_id(synth, synth.settings.pii_key_alias))
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_prod_tables_have_deletion_protection(synth: Synth) -> None:
    assert synth.settings.stage == "prod"
    for table in resources(synth, TABLE).values():
        assert table["Properties"]["DeletionProtectionEnabled"] is True


# -- documents bucket ----------------------------------------------------------------------------------


def test_documents_bucket(synth: Synth) -> None:
    _, bucket = single(synth, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["BucketName"] == synth.settings.documents_bucket
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id(synth, synth.settings.pii_key_alias), "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_documents_bucket_lets_the_h5_page_post_photos_and_read_the_answer(synth: Synth) -> None:
    # The page uploads with XMLHttpRequest for its progress bar: a CORS preflight, then the POST.
    _, bucket = single(synth, "AWS::S3::Bucket")
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"]
    assert rule["AllowedOrigins"] == ["*"]
    assert rule["AllowedHeaders"] == ["*"]


def test_documents_bucket_lifecycle(synth: Synth) -> None:
    _, bucket = single(synth, "AWS::S3::Bucket")
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(r["Status"] == "Enabled" for r in rules)
    multipart = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert [r["AbortIncompleteMultipartUpload"] for r in multipart] == [{"DaysAfterInitiation": 1}]
    assert "Prefix" not in multipart[0], "incomplete uploads are aborted everywhere in the bucket"
    # Unvalidated uploads and staged engine payloads expire a day after they are written
    expiring = {r["Prefix"]: r for r in rules if "ExpirationInDays" in r}
    assert set(expiring) == {"raw/", "engine-io/"}, "registration documents are kept: only these expire"
    assert all(r["ExpirationInDays"] == 1 for r in expiring.values())
    # Every prefix holding personal data loses a deleted or replaced object's old versions within a day
    noncurrent = {
        r.get("Prefix", ""): r["NoncurrentVersionExpiration"]
        for r in rules
        if "NoncurrentVersionExpiration" in r
    }
    assert set(noncurrent) == {"raw/", "documents/", "liveness/", "engine-io/"}
    assert all(n == {"NoncurrentDays": 1} for n in noncurrent.values())
    # and a delete marker left alone with no version behind it is removed
    markers = [r for r in rules if r.get("ExpiredObjectDeleteMarker")]
    assert len(markers) == 1
    assert "Prefix" not in markers[0]


def test_every_prefix_the_platform_writes_personal_data_under_has_its_old_versions_expired() -> None:
    """Keys the code builds (uploads, stored documents, Rekognition's liveness output, staged engine
    payloads) all fall under a prefix whose noncurrent versions expire."""
    from chalicelib.adapters.liveness.rekognition import OUTPUT_PREFIX
    from chalicelib.core.resources import PERSONAL_DATA_PREFIXES, documents_lifecycle
    from chalicelib.verification.domain.documents import DocumentKind
    from chalicelib.verification.uploads import raw_prefix

    written = [
        raw_prefix("flow", DocumentKind.ID_FRONT),
        "documents/flow/id_front/x.jpg",
        OUTPUT_PREFIX,
        "engine-io/x",
    ]
    expiring = {r.prefix for r in documents_lifecycle() if r.noncurrent_expire_days == 1}
    for key in written:
        assert any(key.startswith(p) for p in PERSONAL_DATA_PREFIXES), key
        assert any(key.startswith(p) for p in expiring), key


def test_bucket_policy_denies_plain_http(synth: Synth) -> None:
    from aws_cdk.assertions import Match

    synth.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )
    bucket_id, _ = single(synth, "AWS::S3::Bucket")
    _, policy = single(synth, "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    denies = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 1
    assert denies[0]["Principal"] == {"AWS": "*"}
    assert {resource_key(r) for r in as_list(denies[0]["Resource"])} == {(bucket_id, ""), (bucket_id, "/*")}


# -- KMS -----------------------------------------------------------------------------------------------


def test_pii_key(synth: Synth) -> None:
    synth.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    synth.template.has_resource_properties("AWS::KMS::Alias", {"AliasName": synth.settings.pii_key_alias})
    key = synth.json["Resources"][key_id(synth, synth.settings.pii_key_alias)]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"].get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert key["DeletionPolicy"] == "Retain"


def test_hash_key_is_hmac(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::KMS::Key", {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}
    )
    key = synth.json["Resources"][key_id(synth, synth.settings.hash_key_alias)]
    assert key["Properties"]["KeySpec"] == "HMAC_256"
    assert key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"
    assert key["DeletionPolicy"] == "Retain"


def test_exactly_the_settings_aliases(synth: Synth) -> None:
    aliases = {v["Properties"]["AliasName"] for v in resources(synth, "AWS::KMS::Alias").values()}
    assert aliases == {synth.settings.pii_key_alias, synth.settings.hash_key_alias}


# -- functions and their role --------------------------------------------------------------------------


def test_functions_are_configured(synth: Synth) -> None:
    from infra.stack import table_env_var

    assert table_env_var("card-history") == "CHEKA_TABLE_CARD_HISTORY"
    functions = resources(synth, FUNCTION)
    assert "APIHandler" in functions
    settings = synth.settings
    bucket_id, _ = single(synth, "AWS::S3::Bucket")
    for logical_id, function in functions.items():
        props = function["Properties"]
        env = props["Environment"]["Variables"]
        assert env["CHEKA_STAGE"] == settings.stage
        assert env["CHEKA_RESOURCE_PREFIX"] == settings.resource_prefix
        assert env["CHEKA_REGION"] == {"Ref": "AWS::Region"}
        assert env["CHEKA_DOCUMENTS_BUCKET"] == {"Ref": bucket_id}
        assert env["CHEKA_PII_KEY_ALIAS"] == settings.pii_key_alias
        assert env["CHEKA_HASH_KEY_ALIAS"] == settings.hash_key_alias
        for spec in TABLES:
            assert env[table_env_var(spec.short_name)] == {
                "Ref": table_id(synth, settings.table_name(spec.short_name))
            }
        assert props["Tracing"] == "Active"
        assert props["MemorySize"] >= 512
        if logical_id not in CAMPAIGN_FUNCTIONS:  # queue consumers, with a timeout of their own
            assert 3 <= props["Timeout"] <= 29 + 1  # API Gateway integrations time out at 29 s
        assert props["FunctionName"] == f"{settings.resource_prefix}-{settings.stage}-{logical_id}"


def test_functions_follow_the_chalice_config_of_the_stage(synth: Synth) -> None:
    """The construct packages under the stack's name, so infra passes ``.chalice/config.json``'s stage on."""
    from infra.stack import PROJECT_DIR

    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text(encoding="utf-8"))
    section = config["stages"][synth.settings.stage]
    for logical_id, function in resources(synth, FUNCTION).items():
        props = function["Properties"]
        if "lambda_memory_size" in section:
            assert props["MemorySize"] == section["lambda_memory_size"]
        if logical_id in CAMPAIGN_FUNCTIONS:  # timeout and concurrency their own (test_campaigns_stack)
            pass
        elif "lambda_timeout" in section:
            assert props["Timeout"] == section["lambda_timeout"]
        if "reserved_concurrency" in section and logical_id != SENDER_FUNCTION:
            assert props["ReservedConcurrentExecutions"] == section["reserved_concurrency"]
        for key, value in section.get("environment_variables", {}).items():
            assert props["Environment"]["Variables"][key] == value
        for key, value in config.get("environment_variables", {}).items():
            assert props["Environment"]["Variables"][key] == value


def test_each_function_has_a_retained_log_group(synth: Synth) -> None:
    groups = resources(synth, "AWS::Logs::LogGroup")
    for function in resources(synth, FUNCTION).values():
        name = f"/aws/lambda/{function['Properties']['FunctionName']}"
        (group_id,) = [k for k, v in groups.items() if v["Properties"]["LogGroupName"] == name]
        assert group_id in as_list(function.get("DependsOn", []))
        assert groups[group_id]["Properties"]["RetentionInDays"] > 0


def test_api_is_regional_and_traced(synth: Synth) -> None:
    api = synth.json["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["EndpointConfiguration"] == "REGIONAL"  # no edge endpoints in China regions
    assert api["Properties"]["TracingEnabled"] is True


def test_role_has_no_wildcard_actions(synth: Synth) -> None:
    _, statements = function_role_statements(synth)
    actions = [a for s in statements for a in as_list(s["Action"])]
    assert actions
    assert not [a for a in actions if "*" in a], "wildcard actions in the function role"
    assert all(s["Effect"] == "Allow" for s in statements)


def test_role_resources_are_scoped(synth: Synth) -> None:
    _, statements = function_role_statements(synth)
    for statement in statements:
        services = {a.split(":")[0] for a in as_list(statement["Action"])}
        if "*" in as_list(statement["Resource"]):
            # X-Ray's writes, Rekognition's face and liveness calls and SMS to a phone number support
            # no resource-level permissions; nothing else gets "*".
            assert services in ({"xray"}, {"rekognition"}, {"sns"}), f"'*' resource on {statement['Action']}"
            if services == {"sns"}:
                assert as_list(statement["Action"]) == ["sns:Publish"]
            if services == {"rekognition"}:
                assert set(as_list(statement["Action"])) <= {
                    "rekognition:DetectFaces",
                    "rekognition:CompareFaces",
                    "rekognition:CreateFaceLivenessSession",
                    "rekognition:GetFaceLivenessSessionResults",
                }


def test_role_dynamodb_access_is_exactly_the_tables_and_indexes(synth: Synth) -> None:
    _, statements = function_role_statements(synth)
    dynamo = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    actions = {a for s in dynamo for a in as_list(s["Action"])}
    assert actions == {
        f"dynamodb:{a}"
        for a in (
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "BatchGetItem",
            "BatchWriteItem",
            "ConditionCheckItem",
            "DescribeTable",
            "Scan",
        )
    }
    scans = [s for s in dynamo if "dynamodb:Scan" in as_list(s["Action"])]
    assert [as_list(s["Action"]) for s in scans] == [["dynamodb:Scan"]]
    scanned = {resource_key(r)[0] for r in as_list(scans[0]["Resource"])}
    assert scanned == {table_id(synth, synth.settings.table_name(t)) for t in ("flows", "registrations")}
    expected: set[tuple[str, str]] = set()
    for spec in TABLES:
        logical_id = table_id(synth, synth.settings.table_name(spec.short_name))
        expected.add((logical_id, ""))
        expected.update((logical_id, f"/index/{name}") for name in spec.model._indexes)
    granted = {resource_key(r) for s in dynamo for r in as_list(s["Resource"])}
    assert granted == expected


def test_role_s3_and_kms_access(synth: Synth) -> None:
    _, statements = function_role_statements(synth)
    bucket_id, _ = single(synth, "AWS::S3::Bucket")
    pii = key_id(synth, synth.settings.pii_key_alias)
    hmac = key_id(synth, synth.settings.hash_key_alias)
    grants: dict[str, set[tuple[str, str]]] = {}
    for s in statements:
        for action in as_list(s["Action"]):
            if action.split(":")[0] in ("s3", "kms"):
                grants.setdefault(action, set()).update(resource_key(r) for r in as_list(s["Resource"]))
    assert grants == {
        "s3:GetObject": {(bucket_id, "/*")},
        "s3:PutObject": {(bucket_id, "/*")},
        "s3:DeleteObject": {(bucket_id, "/*")},
        "s3:DeleteObjectVersion": {(bucket_id, "/*")},
        "s3:ListBucket": {(bucket_id, "")},
        "s3:ListBucketVersions": {(bucket_id, "")},
        "kms:GenerateDataKey": {(pii, "")},
        "kms:Decrypt": {(pii, "")},
        "kms:Encrypt": {(pii, "")},
        "kms:GenerateMac": {(hmac, "")},
        "kms:VerifyMac": {(hmac, "")},
        "kms:DescribeKey": {(pii, ""), (hmac, "")},
    }


# -- template-wide -------------------------------------------------------------------------------------


def test_outputs(synth: Synth) -> None:
    from infra.tables import construct_id

    outputs = synth.json["Outputs"]
    api_url = json.dumps(outputs["ApiUrl"]["Value"])
    assert '{"Ref": "RestAPI"}' in api_url
    assert "AWS::URLSuffix" in api_url  # amazonaws.com.cn in the China regions
    for spec in TABLES:
        assert outputs[construct_id(spec.short_name) + "Name"]["Value"] == {
            "Ref": table_id(synth, synth.settings.table_name(spec.short_name))
        }
    bucket_id, _ = single(synth, "AWS::S3::Bucket")
    assert outputs["DocumentsBucketName"]["Value"] == {"Ref": bucket_id}


def test_no_hard_coded_account_or_partition(synth: Synth) -> None:
    text = json.dumps(synth.json)
    assert not re.findall(r"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])", text), "hard-coded account id"
    assert "arn:aws:" not in text, "hard-coded partition (the stage runs in aws-cn)"


def test_synth_leaves_the_process_as_it_found_it(synth: Synth) -> None:
    """``chalice package`` imports app.py with the stage's variables: none of it may leak into other tests."""
    import os
    import sys

    from chalicelib.core.settings import get_settings

    assert os.environ["CHEKA_STAGE"] == "test"  # set by tests/conftest.py
    assert not [k for k, v in os.environ.items() if "${Token[" in v]
    assert get_settings().stage == "test"
    app_module = sys.modules.get("app")
    if app_module is not None:  # imported by another test, under the test settings
        from chalicelib.core import observability

        assert observability.get_logger().service == get_settings().service_name  # built on first use
    assert (synth.work / "build" / "chalice.out").is_dir()  # chalice.out went to the tmp build dir
    assert (synth.work / "cdk.out" / "manifest.json").is_file()


# -- without chalice: the stage guard and the model -> table conversion -----------------------------------


def test_local_stages_are_refused() -> None:
    from aws_cdk import App

    from infra.stack import ChekaStack

    for stage in ("local", "test"):
        with pytest.raises(ValueError, match="local-only"):
            ChekaStack(App(), f"x-{stage}", settings=Settings(stage=stage))


class _ByKind(GlobalSecondaryIndex["_Toy"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-kind"
        projection = IncludeProjection(["label", "size"])

    kind = UnicodeAttribute(hash_key=True)
    size = NumberAttribute(range_key=True)


class _ByBlob(LocalSecondaryIndex["_Toy"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-blob"
        projection = IncludeProjection(["label"])

    owner = UnicodeAttribute(hash_key=True)
    blob = BinaryAttribute(range_key=True, legacy_encoding=False)


class _Toy(Model):
    class Meta:
        table_name = "toy"

    owner = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True, attr_name="n")
    kind = UnicodeAttribute()
    size = NumberAttribute()
    blob = BinaryAttribute(legacy_encoding=False)
    label = UnicodeAttribute()
    expires_at = NumberAttribute()

    by_kind = _ByKind()
    by_blob = _ByBlob()


def test_tables_follow_any_model_shape() -> None:
    """INCLUDE projections, local indexes, renamed and binary keys, TTL: beyond what today's models use."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk.assertions import Template

    from infra.tables import build_table

    spec = TableSpec("toy-things", _Toy, ttl_attribute="expires_at")
    stack = Stack(App(), "Toy")
    key = kms.Key(stack, "Key")
    build_table(stack, spec, Settings(stage="dev"), key)
    template = Template.from_stack(stack).to_json()
    tables = {k: v for k, v in template["Resources"].items() if v["Type"] == TABLE}
    (props,) = (t["Properties"] for t in tables.values())
    assert props["TableName"] == "cheka-dev-toy-things"
    (key_logical_id,) = (k for k, v in template["Resources"].items() if v["Type"] == "AWS::KMS::Key")
    check_table(props, spec, key_logical_id)
    assert props["KeySchema"][1] == {"AttributeName": "n", "KeyType": "RANGE"}
    assert props["GlobalSecondaryIndexes"][0]["Projection"]["ProjectionType"] == "INCLUDE"


def test_table_check_detects_drift() -> None:
    """The comparison itself: a table that lost an index, changed a key type or a projection fails."""
    spec = TableSpec("toy-things", _Toy, ttl_attribute="expires_at")
    expected = expected_table(_Toy)
    good = {
        "KeySchema": expected["key_schema"],
        "AttributeDefinitions": [
            {"AttributeName": k, "AttributeType": v} for k, v in expected["types"].items()
        ],
        "GlobalSecondaryIndexes": [{"IndexName": k, **v} for k, v in expected["global"].items()],
        "LocalSecondaryIndexes": [{"IndexName": k, **v} for k, v in expected["local"].items()],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Fn::GetAtt": ["K", "Arn"]},
        },
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    }
    check_table(good, spec, "K")
    drifted = [
        {**good, "GlobalSecondaryIndexes": []},
        {**good, "AttributeDefinitions": [{**d, "AttributeType": "S"} for d in good["AttributeDefinitions"]]},
        {
            **good,
            "LocalSecondaryIndexes": [
                {**good["LocalSecondaryIndexes"][0], "Projection": {"ProjectionType": "ALL"}}
            ],
        },
        {**good, "KeySchema": good["KeySchema"][:1]},
        {**good, "TimeToLiveSpecification": {"AttributeName": "other", "Enabled": True}},
        {**good, "BillingMode": "PROVISIONED"},
    ]
    for props in drifted:
        with pytest.raises(AssertionError):
            check_table(props, spec, "K")


@pytest.mark.infra
def test_token_signing_key_is_a_generated_secret_only_the_functions_read(synth: Synth) -> None:
    secrets = {
        k: v
        for k, v in resources(synth, "AWS::SecretsManager::Secret").items()
        if v["Properties"].get("Name") == synth.settings.token_secret_name
    }
    assert len(secrets) == 1
    [(logical_id, secret)] = secrets.items()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] == 64
    _, statements = function_role_statements(synth)
    readers = [s for s in statements if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])]
    token_readers = [s for s in readers if {"Ref": logical_id} in as_list(s["Resource"])]
    # the API reads it (alone in its statement); the rotation function rotates it (infra.rotation)
    assert sorted(s["Sid"] for s in token_readers) == ["RotateTokenSigningKey", "TokenSigningKey"]
    assert [s["Resource"] for s in token_readers if s["Sid"] == "TokenSigningKey"] == [{"Ref": logical_id}]


@pytest.mark.infra
def test_the_sms_reply_key_is_a_provided_secret_the_functions_read(synth: Synth) -> None:
    # The SMS provider's key: operations put it in (no generated key of a declared length).
    [(logical_id, secret)] = [
        (k, v)
        for k, v in resources(synth, "AWS::SecretsManager::Secret").items()
        if v["Properties"].get("Name") == synth.settings.sms_reply_secret_name
    ]
    assert "PasswordLength" not in secret["Properties"].get("GenerateSecretString", {})
    _, statements = function_role_statements(synth)
    [grant] = [s for s in statements if s.get("Sid") == "SmsReplyKey"]
    assert as_list(grant["Action"]) == ["secretsmanager:GetSecretValue"]
    assert as_list(grant["Resource"]) == [{"Ref": logical_id}]


# -- outbox and operator push ----------------------------------------------------------------------------


def test_outbox_queue_redrives_to_a_dead_letter_queue_with_an_alarm(synth: Synth) -> None:
    from chalicelib.local.bootstrap import OUTBOX_MAX_RECEIVES

    queues = resources(synth, "AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: (k, q["Properties"]) for k, q in queues.items()}
    prefix = f"{synth.settings.resource_prefix}-{synth.settings.stage}"
    dlq_id, dlq = by_name[f"{prefix}-outbox-dlq"]
    _, outbox = by_name[f"{prefix}-outbox"]
    assert outbox["RedrivePolicy"]["maxReceiveCount"] == OUTBOX_MAX_RECEIVES
    assert outbox["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert outbox["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 86400
    alarms = resources(synth, "AWS::CloudWatch::Alarm")
    dlq_alarms = [
        a["Properties"]
        for a in alarms.values()
        if any(
            d["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]} for d in a["Properties"].get("Dimensions", [])
        )
    ]
    assert len(dlq_alarms) == 1
    assert dlq_alarms[0]["Threshold"] == 1


def test_dispatcher_consumes_the_outbox_reporting_partial_batch_failures(synth: Synth) -> None:
    (props,) = [
        m["Properties"]
        for m in resources(synth, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"].endswith("DispatchOutbox")
    ]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    functions = resources(synth, FUNCTION)
    assert any(k == "DispatchOutbox" for k in functions)


def test_each_operator_has_a_key_secret_the_functions_may_read(synth: Synth) -> None:
    secrets = resources(synth, "AWS::SecretsManager::Secret")
    names = sorted(
        s["Properties"]["Name"] for s in secrets.values() if "/operator/" in s["Properties"]["Name"]
    )
    assert names == sorted(
        synth.settings.operator_secret_pattern.format(operator=op)
        for op in ("china_mobile", "china_unicom", "china_telecom", "china_broadnet")
    )
    _, statements = function_role_statements(synth)
    keys = [s for s in statements if s.get("Sid") == "OperatorKeys"]
    assert keys  # the API (callbacks) and the push functions (infra.roles), each all four
    assert all(len(as_list(k["Resource"])) == 4 for k in keys)


def test_the_operator_callback_route_is_deployed(synth: Synth) -> None:
    _, api = single(synth, "AWS::Serverless::Api")
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert "post" in paths["/v1/operator/callbacks"]


def test_a_stage_with_remote_engines_has_no_rekognition_grant_and_no_face_collection(synth: Synth) -> None:
    assert synth.settings.remote_engines == ("ocr", "faces", "liveness")
    assert not resources(synth, "AWS::Rekognition::Collection")
    _, statements = function_role_statements(synth)
    assert not [a for s in statements for a in as_list(s["Action"]) if a.startswith("rekognition:")]


def test_the_identity_authority_has_its_secret_its_grant_and_its_sdk_in_the_package(synth: Synth) -> None:
    import zipfile

    # prod's authority is the real provider (no sandbox on a deployed stage unless set so)
    assert synth.settings.authority_kind == "tencent"
    secrets = resources(synth, "AWS::SecretsManager::Secret")
    [secret_id] = [
        k for k, s in secrets.items() if s["Properties"]["Name"] == synth.settings.authority_secret_name
    ]
    _, statements = function_role_statements(synth)
    grants = [s for s in statements if s.get("Sid") == "IdentityAuthorityKeys"]
    assert grants
    for grant in grants:
        assert as_list(grant["Action"]) == ["secretsmanager:GetSecretValue"]
        assert as_list(grant["Resource"]) == [{"Ref": secret_id}]
    for function in resources(synth, FUNCTION).values():
        assert function["Properties"]["Environment"]["Variables"]["CHEKA_IDENTITY_AUTHORITY"] == "tencent"
    # the package holds the provider's SDK, and the project's requirements.txt stays without it
    [package] = list((synth.work / "build").rglob("deployment.zip"))
    names = zipfile.ZipFile(package).namelist()
    assert any(n.startswith("tencentcloud/faceid/") for n in names)
    from infra.stack import PROJECT_DIR

    assert "tencentcloud" not in (PROJECT_DIR / "requirements.txt").read_text(encoding="utf-8")


def test_a_stage_on_the_sandbox_authority_packages_no_provider_sdk() -> None:
    sandboxed = Settings(stage="dev", identity_authority="sandbox")
    assert sandboxed.lambda_requirement_files == ()
    assert Settings(stage="prod").lambda_requirement_files == ("requirements-authority-tencent.txt",)
    assert Settings(stage="local").authority_kind == "sandbox"


# -- stage settings: engines and Rekognition ---------------------------------------------------------------


@functools.cache
def _light_template(overrides: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The prod stack of the declared prod settings with ``overrides``, without the API (no packaging)."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from chalicelib.core.stages import PROJECT_DIR, stage_settings
    from infra.stack import ChekaStack

    settings = stage_settings("prod", PROJECT_DIR, **dict(overrides))
    stack = ChekaStack(App(), "light", settings=settings, package_api=False)
    return dict(Template.from_stack(stack).to_json())


def light_template(**overrides: str) -> dict[str, Any]:
    return _light_template(tuple(sorted(overrides.items())))


def role_statements_of(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the API's role (``APIHandlerRole``, ``infra.roles``)."""
    roles = [
        r
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and k.startswith("APIHandlerRole")
    ]
    assert len(roles) == 1
    return [s for p in roles[0]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


REKOGNITION_STAGE = {
    "CHEKA_REGION": "ap-southeast-1",
    "CHEKA_FACE_ENGINE": "rekognition",
    "CHEKA_LIVENESS_ENGINE": "rekognition",
}


def test_a_rekognition_stage_may_make_exactly_its_engines_calls_and_keeps_its_face_collection() -> None:
    template = light_template(**REKOGNITION_STAGE)
    collections = {
        k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Rekognition::Collection"
    }
    [(collection_id, collection)] = collections.items()
    assert collection["Properties"]["CollectionId"] == "cheka-prod-faces"
    assert collection["DeletionPolicy"] == "Retain"
    statements = role_statements_of(template)
    rekognition = [s for s in statements if any(a.startswith("rekognition:") for a in as_list(s["Action"]))]
    by_resource = {json.dumps(s["Resource"], sort_keys=True): set(as_list(s["Action"])) for s in rekognition}
    assert by_resource == {
        '"*"': {
            "rekognition:DetectFaces",
            "rekognition:CompareFaces",
            "rekognition:CreateFaceLivenessSession",
            "rekognition:GetFaceLivenessSessionResults",
        },
        json.dumps({"Fn::GetAtt": [collection_id, "Arn"]}): {
            "rekognition:IndexFaces",
            "rekognition:SearchFacesByImage",
            "rekognition:DeleteFaces",
        },
    }


def test_a_stage_with_rekognition_liveness_alone_gets_only_the_liveness_calls() -> None:
    template = light_template(CHEKA_REGION="ap-southeast-1", CHEKA_LIVENESS_ENGINE="rekognition")
    assert not [v for v in template["Resources"].values() if v["Type"] == "AWS::Rekognition::Collection"]
    actions = {
        a for s in role_statements_of(template) for a in as_list(s["Action"]) if a.startswith("rekognition:")
    }
    assert actions == {"rekognition:CreateFaceLivenessSession", "rekognition:GetFaceLivenessSessionResults"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"CHEKA_FACE_ENGINE": "local"}, "CHEKA_FACE_ENGINE=local"),
        ({"CHEKA_OCR_ENGINE": "local"}, "CHEKA_OCR_ENGINE=local"),
        ({"CHEKA_FACE_ENGINE": "rekognition"}, "not offered in cn-north-1"),
        ({"CHEKA_ACCEPT_LOCAL_LIVENESS_RISK": "false"}, "CHEKA_ACCEPT_LOCAL_LIVENESS_RISK=true"),
    ],
    ids=["local-faces", "local-ocr", "rekognition-in-china", "liveness-risk-not-accepted"],
)
def test_a_stage_naming_an_engine_it_cannot_run_is_refused_before_synthesis(
    overrides: dict[str, str], named: str
) -> None:
    from aws_cdk import App

    from chalicelib.core.stages import PROJECT_DIR, ConfigurationError, stage_settings
    from infra.stack import ChekaStack

    settings = stage_settings("prod", PROJECT_DIR, **overrides)
    with pytest.raises(ConfigurationError, match="the prod stage cannot start") as refused:
        ChekaStack(App(), "refused", settings=settings, package_api=False)
    assert any(named in problem for problem in refused.value.problems), refused.value.problems


def test_infra_builds_the_stage_from_its_declaration_and_the_alarm_emails_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import infra.app
    from chalicelib.core.stages import stage_settings

    built: list[Settings] = []

    class Recorder:
        def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
            built.append(settings)

    monkeypatch.setattr(infra.app, "ChekaStack", Recorder)
    monkeypatch.setenv("CHEKA_FACE_ENGINE", "local")  # the shell's settings are not the stage's
    monkeypatch.setenv("CHEKA_ALARM_EMAILS", '["ops@example.com"]')
    infra.app.build_app("prod")
    [settings] = built
    assert settings == stage_settings("prod", CHEKA_ALARM_EMAILS='["ops@example.com"]')
    assert settings.face_engine == "remote"
    assert settings.alarm_emails == ["ops@example.com"]


# -- alarms, dashboard, tracing ----------------------------------------------------------------------------


def alarm_topic_id(template: dict[str, Any]) -> str:
    [topic_id] = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::SNS::Topic"]
    return str(topic_id)


def test_every_alarm_notifies_the_stage_alarm_topic_when_it_fires_and_clears(synth: Synth) -> None:
    topic_id = alarm_topic_id(synth.json)
    alarms = resources(synth, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 8
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": topic_id}], logical_id
        assert props["OKActions"] == [{"Ref": topic_id}], logical_id
        assert props.get("AlarmDescription"), logical_id


def test_the_alarm_topic_is_encrypted_named_for_the_stage_and_its_emails_subscribe() -> None:
    template = light_template(CHEKA_ALARM_EMAILS='["ops@example.com", "oncall@example.com"]')
    topic_id = alarm_topic_id(template)
    topic = template["Resources"][topic_id]["Properties"]
    assert topic["TopicName"] == "cheka-prod-alarms"
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in statements)
    subscriptions = [
        v["Properties"] for v in template["Resources"].values() if v["Type"] == "AWS::SNS::Subscription"
    ]
    assert sorted(s["Endpoint"] for s in subscriptions) == ["oncall@example.com", "ops@example.com"]
    assert all(s["Protocol"] == "email" and s["TopicArn"] == {"Ref": topic_id} for s in subscriptions)


def test_each_alarmed_metric_has_its_alarm_in_the_service_namespace(synth: Synth) -> None:
    from chalicelib.core.metric_names import ALARMED, Metric
    from infra.stack import alarm_rules

    settings = synth.settings
    alarms = [a["Properties"] for a in resources(synth, "AWS::CloudWatch::Alarm").values()]
    ours = {a["MetricName"]: a for a in alarms if a.get("Namespace") == settings.metrics_namespace}
    assert set(ours) == {m.value for m in ALARMED}
    rules = alarm_rules(settings)
    for alarm in ours.values():
        assert alarm["Dimensions"] == [{"Name": "service", "Value": settings.service_name}]
        assert alarm["Period"] == rules[Metric(alarm["MetricName"])].period_minutes * 60
        assert alarm["TreatMissingData"] == "notBreaching"
    stale = ours[Metric.OLDEST_PENDING_PUSH_MINUTES.value]
    assert (stale["Statistic"], stale["Threshold"]) == ("Maximum", settings.push_stale_minutes)
    assert stale["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert ours[Metric.OPERATOR_NOT_CONFIGURED.value]["Threshold"] == 1


def test_the_api_5xx_rate_alarm_watches_this_stage_api(synth: Synth) -> None:
    alarms = resources(synth, "AWS::CloudWatch::Alarm")
    [alarm] = [a["Properties"] for k, a in alarms.items() if k.startswith("Api5xxRateAlarm")]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.01, "GreaterThanThreshold")
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {"5XXError", "Count"}
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(requests > 0, errors / requests, 0)"
    api = synth.json["Resources"]["RestAPI"]["Properties"]
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == "AWS/ApiGateway"
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert dims == {"ApiName": api["DefinitionBody"]["info"]["title"], "Stage": api["StageName"]}
        assert dims["ApiName"] == f"{synth.settings.resource_prefix}-{synth.settings.stage}"


def test_each_function_has_an_errors_alarm(synth: Synth) -> None:
    alarms = [a["Properties"] for a in resources(synth, "AWS::CloudWatch::Alarm").values()]
    watched = {
        json.dumps(d["Value"])
        for a in alarms
        if a.get("Namespace") == "AWS/Lambda" and a["MetricName"] == "Errors"
        for d in a["Dimensions"]
        if d["Name"] == "FunctionName"
    }
    names = [json.dumps(f["Properties"]["FunctionName"]) for f in resources(synth, FUNCTION).values()]
    names += [json.dumps({"Ref": k}) for k in resources(synth, "AWS::Lambda::Function")]
    assert names
    assert watched == set(names)


def dashboard_text(body: Any) -> str:
    """The dashboard's JSON body, CloudFormation tokens (queue names, region) replaced by ``<token>``."""
    if isinstance(body, str):
        return body
    separator, parts = body["Fn::Join"]
    return str(separator).join(p if isinstance(p, str) else "<token>" for p in parts)


def test_the_dashboard_shows_every_metric_of_the_catalogue(synth: Synth) -> None:
    from chalicelib.core.metric_names import Metric
    from chalicelib.registration.domain.registrations import Step

    _, dashboard = single(synth, "AWS::CloudWatch::Dashboard")
    props = dashboard["Properties"]
    assert props["DashboardName"] == f"{synth.settings.resource_prefix}-{synth.settings.stage}"
    body = dashboard_text(props["DashboardBody"])
    for metric in Metric:  # a metric of its own, or searched by name
        assert re.search(rf'"{metric.value}\\?"', body), f"{metric.value} is on no widget"
    for step in Step:  # the funnel: entered and passed, one line per step
        assert body.count(f'"step","{step.value}"') == 2, step
    assert "ApproximateNumberOfMessagesVisible" in body  # the dead-letter queue's depth
    assert synth.settings.metrics_namespace in body


def test_every_function_is_traced(synth: Synth) -> None:
    functions = resources(synth, FUNCTION)
    assert {"APIHandler", "DispatchOutbox"} <= set(functions)
    for logical_id, function in functions.items():
        assert function["Properties"]["Tracing"] == "Active", logical_id
    for logical_id, function in resources(synth, "AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, logical_id
    assert synth.json["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True


# -- API Gateway's own replies ------------------------------------------------------------------------------


def test_api_gateway_replies_in_the_error_model_with_the_app_codes(synth: Synth) -> None:
    api = synth.json["Resources"]["RestAPI"]["Properties"]
    responses = api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    expected = {
        "MISSING_AUTHENTICATION_TOKEN": ("404", "route.not_found"),
        "UNSUPPORTED_MEDIA_TYPE": ("415", "media_type.unsupported"),
        "REQUEST_TOO_LARGE": ("413", "request.too_large"),
        "THROTTLED": ("429", "request.throttled"),
        "DEFAULT_4XX": (None, "request.refused"),
        "DEFAULT_5XX": (None, "internal"),
    }
    assert set(responses) == set(expected)
    for response_type, (status, code) in expected.items():
        response = responses[response_type]
        assert response.get("statusCode") == status, response_type
        body = json.loads(response["responseTemplates"]["application/json"])
        assert body["code"] == code
        assert body["message_zh"]
        assert body["message_en"]
        assert body["reference"] == "$context.requestId"
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"


def test_the_gateway_codes_are_the_app_codes() -> None:
    """The codes the app itself answers with for the same situations (``chalicelib.api.http``)."""
    from infra.stack import GATEWAY_RESPONSES, PROJECT_DIR

    http = (PROJECT_DIR / "chalicelib" / "api" / "http.py").read_text(encoding="utf-8")
    for response_type in ("REQUEST_TOO_LARGE", "DEFAULT_5XX"):
        code = GATEWAY_RESPONSES[response_type][1]
        assert f'"{code}"' in http, code


def test_the_api_package_synthesised_carries_its_modules_bytecode(synth: Synth) -> None:
    import importlib.util
    import zipfile

    zips = sorted((synth.work / "build" / "chalice.out").rglob("deployment.zip"))
    assert zips, "chalice package wrote no deployment.zip"
    with zipfile.ZipFile(zips[-1]) as package:
        names = set(package.namelist())
    for module in ("app.py", "chalicelib/api/http.py", "chalicelib/core/stages.py"):
        assert importlib.util.cache_from_source(module) in names
