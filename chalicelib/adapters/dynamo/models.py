"""DynamoDB tables as pynamodb models: the one definition of every table (infra reads these too).

Table names and the endpoint come from settings when the models are bound (``bind``), so importing
this module does no I/O and reads no environment.
"""

from __future__ import annotations

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
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib.adapters.dynamo.base import TableSpec, Unbound, bound_connections, share_botocore_loader
from chalicelib.adapters.dynamo.models_accounts import ACCOUNT_TABLES
from chalicelib.adapters.dynamo.models_actual_users import ACTUAL_USER_TABLES
from chalicelib.adapters.dynamo.models_agents import AGENT_TABLES
from chalicelib.adapters.dynamo.models_audit import AUDIT_TABLES
from chalicelib.adapters.dynamo.models_campaigns import CAMPAIGN_TABLES
from chalicelib.adapters.dynamo.models_complaints import COMPLAINT_TABLES
from chalicelib.adapters.dynamo.models_dealers import DEALER_TABLES
from chalicelib.adapters.dynamo.models_enterprise import ENTERPRISE_TABLES
from chalicelib.adapters.dynamo.models_faces import FACE_TABLES
from chalicelib.adapters.dynamo.models_fleet import FLEET_TABLES
from chalicelib.adapters.dynamo.models_fleet_cases import FLEET_CASE_TABLES
from chalicelib.adapters.dynamo.models_msisdn import MSISDN_TABLES
from chalicelib.adapters.dynamo.models_operator import OPERATOR_TABLES
from chalicelib.adapters.dynamo.models_outbox import OUTBOX_TABLES
from chalicelib.adapters.dynamo.models_retention import RETENTION_TABLES
from chalicelib.adapters.dynamo.models_sessions import SESSION_TABLES
from chalicelib.adapters.dynamo.models_sms import SMS_TABLES
from chalicelib.adapters.dynamo.models_spot_checks import SPOT_CHECK_TABLES
from chalicelib.adapters.dynamo.models_staff import STAFF_TABLES
from chalicelib.core.settings import LocalCredentials, Settings


class VehiclesByDealer(GlobalSecondaryIndex["VehicleModel"]):  # type: ignore[no-untyped-call]
    """A dealer's vehicles (第二十条: a dealer account sees only the vehicles sold through its code)."""

    class Meta:
        index_name = "by-dealer"
        projection = AllProjection()

    dealer_code = UnicodeAttribute(hash_key=True)
    vin = UnicodeAttribute(range_key=True)


class VehicleModel(Unbound):
    """车辆: one item per VIN."""

    class Meta(Unbound.Meta):
        table_name = "vehicles"

    vin = UnicodeAttribute(hash_key=True)
    engine_no = UnicodeAttribute()
    brand = UnicodeAttribute()
    model = UnicodeAttribute()
    colour = UnicodeAttribute()
    production_date = UnicodeAttribute(null=True)
    dealer_code = UnicodeAttribute(null=True)
    #: Keyed hash of the sales record's contact phone (proof of possession), never the number.
    owner_phone_hash = UnicodeAttribute(null=True)
    #: The functions the vehicle's model needs beside emergency (最小必要, 第十四条); absent: the OEM default.
    functions = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_dealer = VehiclesByDealer()


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


class CardsByBackfill(GlobalSecondaryIndex["CardModel"]):  # type: ignore[no-untyped-call]
    """Sparse: the backfill targets (in service, unregistered or deregistered), split in 16 shards
    (``backfill_shard``); a card leaves it in the very write that makes it pending or registered."""

    class Meta:
        index_name = "by-backfill"
        projection = AllProjection()

    backfill_shard = UnicodeAttribute(hash_key=True)
    iccid = UnicodeAttribute(range_key=True)


class CardsByContact(GlobalSecondaryIndex["CardModel"]):  # type: ignore[no-untyped-call]
    """Sparse: cards whose in-service record names a contact phone, by that person's sign-in subject
    (the owner's in-app notice)."""

    class Meta:
        index_name = "by-contact"
        projection = AllProjection()

    contact_subject = UnicodeAttribute(hash_key=True)


class CardModel(Unbound):
    """车联网卡: one item per ICCID; ``version`` guards every state change."""

    class Meta(Unbound.Meta):
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
    #: The in-service feed (补登记, 第二十二条): the day the vehicle went into use (ISO date), and the
    #: sales record's contact phone, sealed, with its keyed hash and the subject of whoever signs in with it.
    in_service_since = UnicodeAttribute(null=True)
    contact_phone = UnicodeAttribute(null=True)
    contact_phone_hash = UnicodeAttribute(null=True)
    contact_subject = UnicodeAttribute(null=True)
    #: Present only while the card is a backfill target (``cards.domain.inventory.backfill_shard``).
    backfill_shard = UnicodeAttribute(null=True)

    by_vin = CardsByVin()
    by_msisdn = CardsByMsisdn()
    by_holder = CardsByHolder()
    by_backfill = CardsByBackfill()
    by_contact = CardsByContact()


class CardHistoryModel(Unbound):
    """A card's history, never overwritten: ``seq`` is the card version the event produced."""

    class Meta(Unbound.Meta):
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


class PartyModel(Unbound):
    """登记人: personal fields are stored encrypted (AES-GCM under a KMS data key)."""

    class Meta(Unbound.Meta):
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
    id_valid_until = UnicodeAttribute(null=True)  # items written before the validity was sealed
    id_valid_until_enc = BinaryAttribute(legacy_encoding=False, null=True)  # ISO end date, sealed
    id_permanent = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()


class EvidenceModel(Unbound):
    """查验日志: entries (seq ≥ 1) and the chain head (seq 0) of each flow, never overwritten.

    Entry attributes are absent on the head item and the head's on entries, hence ``null=True``.
    """

    class Meta(Unbound.Meta):
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
    #: Retention purge (第十八条): the digest of the deleted ciphertext, so the chain still verifies.
    purged_digest = UnicodeAttribute(null=True)
    prev_hash = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    # head
    last_seq = NumberAttribute(null=True)
    last_hash = UnicodeAttribute(null=True)


class FlowsByOwner(GlobalSecondaryIndex["FlowModel"]):  # type: ignore[no-untyped-call]
    """A person's flows with their status and expiry: the open ones are counted (``open_flows_per_owner``)."""

    class Meta:
        index_name = "by-owner"
        projection = IncludeProjection(["status", "expires_epoch"])

    owner = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class FlowModel(Unbound):
    """办理流程: one verification flow (registration, de-registration, ...) owned by one caller.

    The typed identity is sealed like a party's fields; ``documents`` maps a document kind to the key
    of its stored photo. An expired flow is purged with its photos by the housekeeping job; TTL
    (``purge_after_epoch``, days later) only removes a record the job somehow missed.
    """

    class Meta(Unbound.Meta):
        table_name = "flows"

    flow_id = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    purpose = UnicodeAttribute()
    status = UnicodeAttribute()
    version = NumberAttribute()
    person_hash = UnicodeAttribute(null=True)  # keyed hash of the typed id_type + id_number
    data_key = BinaryAttribute(legacy_encoding=False, null=True)
    identity_enc = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # field -> ciphertext
    documents = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # kind -> S3 key
    checks = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # check -> verdict summary
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    expires_epoch = NumberAttribute()
    purge_after_epoch = NumberAttribute(null=True)  # TTL: PURGE_GRACE after expiry
    by_owner = FlowsByOwner()


#: TTL deletes an expired flow or registration only this long after its expiry, so that the purge job
#: (every 15 minutes) deletes it first, with its photos; DynamoDB's TTL would leave the photos behind.
PURGE_GRACE_SECONDS = 3 * 86_400


class AttemptCounterModel(Unbound):
    """Face-attempt counters: ``flow#<id>`` per flow and ``person#<hash>#<day>`` per person and day; and
    ``opens#<scope>#<owner>``, the turn one owner's opens take (``chalicelib.adapters.dynamo.opens``)."""

    class Meta(Unbound.Meta):
        table_name = "attempts"

    counter_id = UnicodeAttribute(hash_key=True)
    tally = NumberAttribute()
    expires_epoch = NumberAttribute()
    #: ``opens#…`` only: the ids opened in the last minutes (JSON ``{id: epoch}``), not yet on the index.
    recent = UnicodeAttribute(null=True)


class LivenessSessionModel(Unbound):
    """活体检测会话: single use, bound to one flow and one person, valid for minutes."""

    class Meta(Unbound.Meta):
        table_name = "liveness-sessions"

    session_id = UnicodeAttribute(hash_key=True)
    flow_id = UnicodeAttribute()
    owner = UnicodeAttribute()
    person_hash = UnicodeAttribute()
    engine = UnicodeAttribute()
    provider_session_id = UnicodeAttribute(null=True)
    challenge_json = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    used_at = UTCDateTimeAttribute(null=True)
    flow_version = NumberAttribute(null=True)
    client_json = UnicodeAttribute(null=True)
    expires_epoch = NumberAttribute()
    #: Live-guidance previews asked for in this session (a per-session limit).
    previews = NumberAttribute(null=True)


class ReviewCasesByStatus(GlobalSecondaryIndex["ReviewCaseModel"]):  # type: ignore[no-untyped-call]
    """The review queue: open cases oldest first."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ReviewCaseModel(Unbound):
    """人工审核 case: one per flow and reason, decided once."""

    class Meta(Unbound.Meta):
        table_name = "review-cases"

    case_id = UnicodeAttribute(hash_key=True)
    flow_id = UnicodeAttribute()
    owner = UnicodeAttribute()
    purpose = UnicodeAttribute()
    reason = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    summary_json = UnicodeAttribute()  # non-personal facts for the reviewer's list
    decided_at = UTCDateTimeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    decision_note = UnicodeAttribute(null=True)
    case_number = UnicodeAttribute(null=True)  # 审核编号 the owner is told

    by_status = ReviewCasesByStatus()


class RegistrationsByOwner(GlobalSecondaryIndex["RegistrationModel"]):  # type: ignore[no-untyped-call]
    """A person's registrations and de-registrations, newest last."""

    class Meta:
        index_name = "by-owner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class RegistrationsForOwner(GlobalSecondaryIndex["RegistrationModel"]):  # type: ignore[no-untyped-call]
    """委托登记: the delegated registrations made for an owner (their sign-in subject), newest last."""

    class Meta:
        index_name = "by-registered-for"
        projection = AllProjection()

    registered_for = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class RegistrationsByReceipt(GlobalSecondaryIndex["RegistrationModel"]):  # type: ignore[no-untyped-call]
    """受理编号 → the registration given it (sparse: only submitted ones have one); support's lookup."""

    class Meta:
        index_name = "by-receipt"
        projection = KeysOnlyProjection()

    receipt_no = UnicodeAttribute(hash_key=True)


class RegistrationModel(Unbound):
    """实名登记 / 实名注销 of one vehicle's cards by one person.

    The phone and a delegation's owner identity are sealed under a data key bound to the registration
    id. An open registration expires (``expires_epoch``, removed once submitted) and is purged by the
    housekeeping job; TTL (``purge_after_epoch``) only backs the job up.
    """

    class Meta(Unbound.Meta):
        table_name = "registrations"

    registration_id = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    kind = UnicodeAttribute()  # registration | deregistration
    delegated = BooleanAttribute(default=False)
    vin = UnicodeAttribute()
    iccids = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    status = UnicodeAttribute()
    version = NumberAttribute()
    flow_id = UnicodeAttribute(null=True)
    confirmed_at = UTCDateTimeAttribute(null=True)
    phone_hash = UnicodeAttribute(null=True)
    data_key = BinaryAttribute(legacy_encoding=False, null=True)
    sealed = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # field -> ciphertext
    letter_key = UnicodeAttribute(null=True)
    owner_id_key = UnicodeAttribute(null=True)
    owner_id_back_key = UnicodeAttribute(null=True)  # 委托登记: the owner's ID back (its validity)
    owner_phone_hash = UnicodeAttribute(null=True)  # 委托登记: keyed hash of the owner's phone
    #: 委托登记: the owner's sign-in subject (of the phone given for them): the owner's 我的车辆 and 注销.
    registered_for = UnicodeAttribute(null=True)
    delegation_confirmed_by = UnicodeAttribute(null=True)  # sms | face
    delegation_confirmed_at = UTCDateTimeAttribute(null=True)
    owner_flow_id = UnicodeAttribute(null=True)  # 委托登记: the flow of the owner's own face check
    consents_json = UnicodeAttribute(null=True)
    #: Proof of possession of the car (method, time; a head-unit code only as its keyed hash; contest).
    possession_json = UnicodeAttribute(null=True)
    party_id = UnicodeAttribute(null=True)
    onsite_photo = UnicodeAttribute(null=True)  # S3 key of the kept live capture (SSE-KMS)
    record_ids = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    receipt_no = UnicodeAttribute(null=True)  # 受理编号, given at the submission
    assisted_by = UnicodeAttribute(null=True)  # the dealer code of an on-the-spot registration
    submitted_at = UTCDateTimeAttribute(null=True)
    notified_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    expires_epoch = NumberAttribute(null=True)
    purge_after_epoch = NumberAttribute(null=True)

    by_owner = RegistrationsByOwner()
    by_registered_for = RegistrationsForOwner()
    by_receipt = RegistrationsByReceipt()


class RegistrationPushModel(Unbound):
    """Which registration an operator push (outbox record id) belongs to: the result SMS finds it."""

    class Meta(Unbound.Meta):
        table_name = "registration-pushes"

    record_id = UnicodeAttribute(hash_key=True)
    registration_id = UnicodeAttribute()


TABLES: tuple[TableSpec, ...] = (
    TableSpec("vehicles", VehicleModel),
    TableSpec("cards", CardModel),
    TableSpec("card-history", CardHistoryModel),
    TableSpec("parties", PartyModel),
    TableSpec("evidence", EvidenceModel),
    TableSpec("flows", FlowModel, ttl_attribute="purge_after_epoch"),
    TableSpec("attempts", AttemptCounterModel, ttl_attribute="expires_epoch"),
    TableSpec("liveness-sessions", LivenessSessionModel, ttl_attribute="expires_epoch"),
    TableSpec("review-cases", ReviewCaseModel),
    TableSpec("registrations", RegistrationModel, ttl_attribute="purge_after_epoch"),
    TableSpec("registration-pushes", RegistrationPushModel),
    *OUTBOX_TABLES,
    *OPERATOR_TABLES,
    *SMS_TABLES,
    *FACE_TABLES,
    *MSISDN_TABLES,
    *RETENTION_TABLES,
    *SPOT_CHECK_TABLES,
    *SESSION_TABLES,
    *ACCOUNT_TABLES,
    *COMPLAINT_TABLES,
    *AGENT_TABLES,
    *DEALER_TABLES,
    *ENTERPRISE_TABLES,
    *AUDIT_TABLES,
    *STAFF_TABLES,
    *ACTUAL_USER_TABLES,
    *FLEET_CASE_TABLES,
    *FLEET_TABLES,
    *CAMPAIGN_TABLES,
)

_bound: Settings | None = None


def bind(settings: Settings) -> None:
    """Point every model at the stage's table names and endpoint (idempotent)."""
    global _bound
    if _bound == settings:
        return
    share_botocore_loader()
    creds = LocalCredentials() if settings.endpoint_url else None
    for spec in TABLES:
        meta = spec.model.Meta
        meta.table_name = settings.table_name(spec.short_name)
        meta.region = settings.region
        meta.host = settings.endpoint_url
        meta.aws_access_key_id = creds.access_key_id if creds else None
        meta.aws_secret_access_key = creds.secret_access_key if creds else None
        meta.max_pool_connections = 32
        bound_connections(meta, settings)
        spec.model._connection = None  # drop a connection made for other settings
    _bound = settings
