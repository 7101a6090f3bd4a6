"""Tables of the outbox and the card lifecycle (operator push).

- ``outbox``: one item per push. Pending, sent and dead records carry ``open_status`` (sharded,
  ``<status>#<shard>``) and ``status_at``: the sparse ``by-open-status`` index is what the sweeper and the
  admin lists query. Final records drop out of it and expire after their retention.
- ``card-lifecycle``: one item per card that went through the lifecycle (current push, holder's ID hash,
  transfer in progress, retirement). Active cards carry ``active_operator`` for reconciliation.
- ``cards-per-id``: active cards per ID hash and operator (一证多卡, 第十一条), changed only inside the
  transactions that move cards, the increment conditional on the limit.
- ``callbacks-seen``: operator callback ids already handled (idempotency), expiring.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib.adapters.dynamo.base import TableSpec, Unbound

#: Shards of the open-status index: spreads a burst of pending records over several partitions.
OPEN_STATUS_SHARDS = 8


class OutboxByOpenStatus(GlobalSecondaryIndex["OutboxModel"]):  # type: ignore[no-untyped-call]
    """Sparse: only pending, sent and dead records; oldest ``status_at`` first within a shard."""

    class Meta:
        index_name = "by-open-status"
        projection = IncludeProjection(
            [
                "status",
                "kind",
                "iccid",
                "operator",
                "attempts",
                "next_attempt_at",
                "claim_until",
                "created_at",
                "updated_at",
                "last_error",
                "operator_ref",
            ]
        )

    open_status = UnicodeAttribute(hash_key=True)
    status_at = UTCDateTimeAttribute(range_key=True)


class OutboxModel(Unbound):
    """推送发件箱: one push; the holder's personal facts sealed (AES-GCM under a KMS data key)."""

    class Meta(Unbound.Meta):
        table_name = "outbox"

    record_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    kind = UnicodeAttribute()
    iccid = UnicodeAttribute()
    operator = UnicodeAttribute()
    attempts = NumberAttribute()
    next_attempt_at = UTCDateTimeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    message_json = UnicodeAttribute()  # the PushMessage without its holder
    data_key = BinaryAttribute(legacy_encoding=False, null=True)  # KMS-wrapped key of holder_enc
    holder_enc = BinaryAttribute(legacy_encoding=False, null=True)
    last_error = UnicodeAttribute(null=True)
    operator_ref = UnicodeAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    claim_token = UnicodeAttribute(null=True)
    claim_until = UTCDateTimeAttribute(null=True)
    open_status = UnicodeAttribute(null=True)
    status_at = UTCDateTimeAttribute(null=True)
    expires_epoch = NumberAttribute(null=True)

    by_open_status = OutboxByOpenStatus()


class LifecycleByOperator(GlobalSecondaryIndex["CardLifecycleModel"]):  # type: ignore[no-untyped-call]
    """Sparse: cards pending or registered through the lifecycle, per operator (reconciliation)."""

    class Meta:
        index_name = "by-operator"
        projection = KeysOnlyProjection()

    active_operator = UnicodeAttribute(hash_key=True)
    iccid = UnicodeAttribute(range_key=True)


class CardLifecycleModel(Unbound):
    """车联网卡登记状态簿: a card's current push, holder ID hash, pending transfer, retirement."""

    class Meta(Unbound.Meta):
        table_name = "card-lifecycle"

    iccid = UnicodeAttribute(hash_key=True)
    card_version = NumberAttribute()
    message_id = UnicodeAttribute(null=True)
    message_kind = UnicodeAttribute(null=True)
    awaiting = BooleanAttribute(default=False)
    holder_id_hash = UnicodeAttribute(null=True)
    holder_counted = BooleanAttribute(default=False)
    pending_holder_id = UnicodeAttribute(null=True)
    pending_holder_id_hash = UnicodeAttribute(null=True)
    pending_counted = BooleanAttribute(default=False)
    retired = UnicodeAttribute(null=True)
    retired_at = UTCDateTimeAttribute(null=True)
    reason_code = UnicodeAttribute(null=True)
    reason_zh = UnicodeAttribute(null=True)
    reason_en = UnicodeAttribute(null=True)
    active_operator = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()

    by_operator = LifecycleByOperator()


class CardsPerIdModel(Unbound):
    """一证多卡: active cards per ``<id hash>#<operator>``."""

    class Meta(Unbound.Meta):
        table_name = "cards-per-id"

    counter_id = UnicodeAttribute(hash_key=True)
    active = NumberAttribute()
    updated_at = UTCDateTimeAttribute()


class CallbackSeenModel(Unbound):
    """Operator callbacks handled, by ``callback_id``; what became of each (``note``)."""

    class Meta(Unbound.Meta):
        table_name = "callbacks-seen"

    callback_id = UnicodeAttribute(hash_key=True)
    message_id = UnicodeAttribute()
    iccid = UnicodeAttribute()
    outcome = UnicodeAttribute()
    note = UnicodeAttribute()
    received_at = UTCDateTimeAttribute()
    expires_epoch = NumberAttribute()


OUTBOX_TABLES: tuple[TableSpec, ...] = (
    TableSpec("outbox", OutboxModel, ttl_attribute="expires_epoch"),
    TableSpec("card-lifecycle", CardLifecycleModel),
    TableSpec("cards-per-id", CardsPerIdModel),
    TableSpec("callbacks-seen", CallbackSeenModel, ttl_attribute="expires_epoch"),
)
