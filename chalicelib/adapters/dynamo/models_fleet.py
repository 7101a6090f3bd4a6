"""Tables of fleet batches (``chalicelib.fleet.batches``).

- ``fleet-batches``: one item per batch (``fb_<24 hex>``): its enterprise, kind, status, vehicles, the
  steps recorded on it, the round and the workflow's execution; the responsible person's phone sealed
  with a KMS data key bound to the batch. Index ``by-enterprise`` (the enterprise's batches, newest
  first).
- ``fleet-vehicles``: one item per VIN: the open batch that claims it (a vehicle is in one open batch
  at most: the claim is a conditional write) and the registration batch that last registered it to an
  enterprise, with that batch's responsible person (keyed hash), which a de-registration must match.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class BatchesByEnterprise(GlobalSecondaryIndex["FleetBatchModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-enterprise"
        projection = AllProjection()

    uscc = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)  # "<created_at ISO>#<batch id>"


class FleetBatchModel(Unbound):
    """批次: one per batch id."""

    class Meta(Unbound.Meta):
        table_name = "fleet-batches"

    batch_id = UnicodeAttribute(hash_key=True)
    uscc = UnicodeAttribute()
    created_key = UnicodeAttribute()
    company_name = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    vins = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    dealer_code = UnicodeAttribute(null=True)
    flow_id = UnicodeAttribute(null=True)
    responsible_phone_verified = BooleanAttribute(default=False)
    responsible_phone_masked = UnicodeAttribute(null=True)
    data_key = BinaryAttribute(legacy_encoding=False, null=True)  # the KMS-wrapped data key of the phone
    responsible_phone_enc = BinaryAttribute(legacy_encoding=False, null=True)
    responsible_name_masked = UnicodeAttribute(null=True)
    responsible_id_hash = UnicodeAttribute(null=True)
    consents_json = UnicodeAttribute(default="{}")
    typed_company_name = UnicodeAttribute(null=True)
    submitted_at = UTCDateTimeAttribute(null=True)
    round = NumberAttribute(default=1)
    execution_arn = UnicodeAttribute(null=True)
    resubmit_documents = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    outcome_reasons = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    decision_documents_json = UnicodeAttribute(default="{}")
    cards_total = NumberAttribute(default=0)
    cards_pushed = NumberAttribute(default=0)
    version = NumberAttribute()

    by_enterprise = BatchesByEnterprise()


class FleetVehicleModel(Unbound):
    """A VIN's open batch and its last registration to an enterprise."""

    class Meta(Unbound.Meta):
        table_name = "fleet-vehicles"

    vin = UnicodeAttribute(hash_key=True)
    open_batch = UnicodeAttribute(null=True)
    registered_uscc = UnicodeAttribute(null=True)
    registered_batch = UnicodeAttribute(null=True)
    responsible_id_hash = UnicodeAttribute(null=True)


FLEET_TABLES: tuple[TableSpec, ...] = (
    TableSpec("fleet-batches", FleetBatchModel),
    TableSpec("fleet-vehicles", FleetVehicleModel),
)
