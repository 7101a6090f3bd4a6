"""The ``spot-checks`` table: operators' spot checks (抽查, 第十条) as cases for the OEM's reviewers."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, ListAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class SpotChecksByStatus(GlobalSecondaryIndex["SpotCheckModel"]):  # type: ignore[no-untyped-call]
    """The spot-check queue: cases by status, earliest deadline first."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class SpotCheckModel(Unbound):
    """抽查: one per operator spot check (callback), answered once."""

    class Meta(Unbound.Meta):
        table_name = "spot-checks"

    check_id = UnicodeAttribute(hash_key=True)
    callback_id = UnicodeAttribute()
    operator = UnicodeAttribute()
    iccid = UnicodeAttribute()
    message_id = UnicodeAttribute()
    registration_id = UnicodeAttribute()
    flow_ids = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    reason_code = UnicodeAttribute(null=True)
    reason_zh = UnicodeAttribute(null=True)
    reason_en = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    received_at = UTCDateTimeAttribute()
    due_at = UTCDateTimeAttribute()
    answered_at = UTCDateTimeAttribute(null=True)
    answered_by = UnicodeAttribute(null=True)
    verdict = UnicodeAttribute(null=True)
    note = UnicodeAttribute(null=True)
    late = BooleanAttribute(null=True)
    answer_record_id = UnicodeAttribute(null=True)

    by_status = SpotChecksByStatus()


SPOT_CHECK_TABLES: tuple[TableSpec, ...] = (TableSpec("spot-checks", SpotCheckModel),)
