"""DynamoDB tables as pynamodb models: the one definition of every table (infra reads these too).

Table names and the endpoint come from settings when the models are bound (``bind``), so importing
this module does no I/O and reads no environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.core.settings import LocalCredentials, Settings


class _Unbound(Model):
    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"


class VehicleModel(_Unbound):
    """车辆: one item per VIN."""

    class Meta(_Unbound.Meta):
        table_name = "vehicles"

    vin = UnicodeAttribute(hash_key=True)
    engine_no = UnicodeAttribute()
    brand = UnicodeAttribute()
    model = UnicodeAttribute()
    colour = UnicodeAttribute()
    production_date = UnicodeAttribute(null=True)
    dealer_code = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class CardsByVin(GlobalSecondaryIndex["CardModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-vin"
        projection = AllProjection()

    vin = UnicodeAttribute(hash_key=True)


class CardsByMsisdn(GlobalSecondaryIndex["CardModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-msisdn"
        projection = KeysOnlyProjection()

    msisdn = UnicodeAttribute(hash_key=True)


class CardsByHolder(GlobalSecondaryIndex["CardModel"]):  # type: ignore[no-untyped-call]
    """Sparse: only cards registered to somebody carry ``holder_id``."""

    class Meta:
        index_name = "by-holder"
        projection = AllProjection()

    holder_id = UnicodeAttribute(hash_key=True)


class CardModel(_Unbound):
    """车联网卡: one item per ICCID; ``version`` guards every state change."""

    class Meta(_Unbound.Meta):
        table_name = "cards"

    iccid = UnicodeAttribute(hash_key=True)
    msisdn = UnicodeAttribute()
    operator = UnicodeAttribute()
    vin = UnicodeAttribute()
    state = UnicodeAttribute()
    functions = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    version = NumberAttribute()
    holder_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_vin = CardsByVin()
    by_msisdn = CardsByMsisdn()
    by_holder = CardsByHolder()


class CardHistoryModel(_Unbound):
    """A card's history, never overwritten: ``seq`` is the card version the event produced."""

    class Meta(_Unbound.Meta):
        table_name = "card-history"

    iccid = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    at = UTCDateTimeAttribute()
    event = UnicodeAttribute()
    from_state = UnicodeAttribute(null=True)
    to_state = UnicodeAttribute()
    actor = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)


class PartiesByIdHash(GlobalSecondaryIndex["PartyModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-id-hash"
        projection = KeysOnlyProjection()

    id_hash = UnicodeAttribute(hash_key=True)


class PartyModel(_Unbound):
    """登记人: personal fields are stored encrypted (AES-GCM under a KMS data key)."""

    class Meta(_Unbound.Meta):
        table_name = "parties"

    party_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    id_type = UnicodeAttribute()
    by_id_hash = PartiesByIdHash()
    id_hash = UnicodeAttribute()  # keyed hash (KMS HMAC) of id_type + id_number, for look-ups
    data_key = BinaryAttribute(legacy_encoding=False)  # the KMS-wrapped data key of this item
    name_enc = BinaryAttribute(legacy_encoding=False)
    id_number_enc = BinaryAttribute(legacy_encoding=False)
    address_enc = BinaryAttribute(legacy_encoding=False, null=True)
    phone_enc = BinaryAttribute(legacy_encoding=False, null=True)
    id_valid_until = UnicodeAttribute(null=True)
    id_permanent = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()


class EvidenceModel(_Unbound):
    """查验日志: entries (seq ≥ 1) and the chain head (seq 0) of each flow, never overwritten.

    Entry attributes are absent on the head item and the head's on entries, hence ``null=True``.
    """

    class Meta(_Unbound.Meta):
        table_name = "evidence"

    flow_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    # entries
    at = UTCDateTimeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    public_json = UnicodeAttribute(null=True)  # canonical JSON, as hashed
    data_key = BinaryAttribute(legacy_encoding=False, null=True)  # KMS-wrapped key of personal_enc
    personal_enc = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # field name -> AES-GCM ciphertext (bytes)
    prev_hash = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    # head
    last_seq = NumberAttribute(null=True)
    last_hash = UnicodeAttribute(null=True)


@dataclass(frozen=True)
class TableSpec:
    """How a model becomes a table: its short name and TTL attribute (if any)."""

    short_name: str
    model: type[Model]
    ttl_attribute: str | None = None


TABLES: tuple[TableSpec, ...] = (
    TableSpec("vehicles", VehicleModel),
    TableSpec("cards", CardModel),
    TableSpec("card-history", CardHistoryModel),
    TableSpec("parties", PartyModel),
    TableSpec("evidence", EvidenceModel),
)

_bound: Settings | None = None


def bind(settings: Settings) -> None:
    """Point every model at the stage's table names and endpoint (idempotent)."""
    global _bound
    if _bound == settings:
        return
    creds = LocalCredentials() if settings.endpoint_url else None
    for spec in TABLES:
        meta = spec.model.Meta
        meta.table_name = settings.table_name(spec.short_name)
        meta.region = settings.region
        meta.host = settings.endpoint_url
        meta.aws_access_key_id = creds.access_key_id if creds else None
        meta.aws_secret_access_key = creds.secret_access_key if creds else None
        meta.max_pool_connections = 32
        spec.model._connection = None  # drop a connection made for other settings
    _bound = settings
