"""DynamoDB tables built from the pynamodb models (``TABLES``): nothing here is hand-written per table.

The schema is pynamodb's own ``Model._get_schema()``, the one ``Model.create_table`` (and so the local
bootstrap) uses: key schema, attribute types, global and local secondary indexes with their projections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from chalicelib.adapters.dynamo.base import TableSpec
from chalicelib.core.settings import Settings

_ATTRIBUTE_TYPES: Mapping[str, dynamodb.AttributeType] = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}

_PROJECTIONS: Mapping[str, dynamodb.ProjectionType] = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
    "INCLUDE": dynamodb.ProjectionType.INCLUDE,
}


@dataclass(frozen=True)
class KeySchema:
    """Partition key and optional sort key of a table or index, as CDK attributes."""

    partition_key: dynamodb.Attribute
    sort_key: dynamodb.Attribute | None


@dataclass(frozen=True)
class IndexSchema:
    name: str
    keys: KeySchema
    projection: dynamodb.ProjectionType
    non_key_attributes: Sequence[str] | None


@dataclass(frozen=True)
class ModelSchema:
    """What CDK needs of one pynamodb model."""

    keys: KeySchema
    global_indexes: Sequence[IndexSchema]
    local_indexes: Sequence[IndexSchema]


def _keys(key_schema: Sequence[Mapping[str, str]], types: Mapping[str, str]) -> KeySchema:
    by_role = {element["KeyType"]: element["AttributeName"] for element in key_schema}
    if "HASH" not in by_role:
        raise ValueError(f"key schema without a partition key: {key_schema}")

    def attribute(name: str) -> dynamodb.Attribute:
        return dynamodb.Attribute(name=name, type=_ATTRIBUTE_TYPES[types[name]])

    sort = by_role.get("RANGE")
    return KeySchema(partition_key=attribute(by_role["HASH"]), sort_key=attribute(sort) if sort else None)


def _index(index: Mapping[str, Any], types: Mapping[str, str]) -> IndexSchema:
    projection = index["projection"]
    non_key = projection.get("NonKeyAttributes")
    return IndexSchema(
        name=index["index_name"],
        keys=_keys(index["key_schema"], types),
        projection=_PROJECTIONS[projection["ProjectionType"]],
        non_key_attributes=list(non_key) if non_key else None,
    )


def model_schema(spec: TableSpec) -> ModelSchema:
    """The table schema of ``spec.model`` as pynamodb would create it."""
    schema: Mapping[str, Any] = spec.model._get_schema()
    types = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    return ModelSchema(
        keys=_keys(schema["key_schema"], types),
        global_indexes=[_index(i, types) for i in schema["global_secondary_indexes"]],
        local_indexes=[_index(i, types) for i in schema["local_secondary_indexes"]],
    )


def construct_id(short_name: str) -> str:
    """``card-history`` -> ``CardHistoryTable``: a stable logical id per table."""
    return "".join(part.capitalize() for part in short_name.replace("_", "-").split("-")) + "Table"


def build_table(scope: Construct, spec: TableSpec, settings: Settings, key: kms.IKey) -> dynamodb.Table:
    """One on-demand, PITR, KMS-encrypted, retained table for ``spec``, named by ``settings``."""
    schema = model_schema(spec)
    table = dynamodb.Table(
        scope,
        construct_id(spec.short_name),
        table_name=settings.table_name(spec.short_name),
        partition_key=schema.keys.partition_key,
        sort_key=schema.keys.sort_key,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        time_to_live_attribute=spec.ttl_attribute,
        deletion_protection=settings.stage == "prod",
        removal_policy=RemovalPolicy.RETAIN,
    )
    for index in schema.global_indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=index.keys.partition_key,
            sort_key=index.keys.sort_key,
            projection_type=index.projection,
            non_key_attributes=index.non_key_attributes,
        )
    for index in schema.local_indexes:
        if index.keys.sort_key is None:
            raise ValueError(f"local index {index.name} of {spec.short_name} has no sort key")
        table.add_local_secondary_index(
            index_name=index.name,
            sort_key=index.keys.sort_key,
            projection_type=index.projection,
            non_key_attributes=index.non_key_attributes,
        )
    return table
