"""The ``read-log`` table (查阅日志): one item per record whose personal data was read in clear.

Who (subject, roles, token issuer), when, which record (kind + opaque id), which fields (names only),
why (the reason, checked to carry no phone or ID number), the route and the correlation id: no personal
value, so nothing here is sealed. Three time-sorted indexes answer the auditors without a scan:
``by-actor``, ``by-record`` (``<kind>#<id>``) and ``by-day`` (the UTC day, for a search by time alone).
Kept by TTL (``expires_epoch``) ``read_log_retention_years`` after the read.
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class ReadsByActor(GlobalSecondaryIndex["ReadLogModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-actor"
        projection = AllProjection()

    actor = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute(range_key=True)


class ReadsByRecord(GlobalSecondaryIndex["ReadLogModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-record"
        projection = AllProjection()

    record_key = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute(range_key=True)


class ReadsByDay(GlobalSecondaryIndex["ReadLogModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-day"
        projection = AllProjection()

    day = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute(range_key=True)


class ReadLogModel(Unbound):
    """查阅日志: one read of one record's personal fields in clear."""

    class Meta(Unbound.Meta):
        table_name = "read-log"

    read_id = UnicodeAttribute(hash_key=True)
    actor = UnicodeAttribute()
    roles = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    issuer = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    day = UnicodeAttribute()  # YYYY-MM-DD (UTC) of ``at``
    record_kind = UnicodeAttribute()
    record_id = UnicodeAttribute()
    record_key = UnicodeAttribute()  # ``<record_kind>#<record_id>``
    fields = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    reason = UnicodeAttribute()
    route = UnicodeAttribute(null=True)
    correlation_id = UnicodeAttribute(null=True)
    expires_epoch = NumberAttribute()

    by_actor = ReadsByActor()
    by_record = ReadsByRecord()
    by_day = ReadsByDay()


AUDIT_TABLES: tuple[TableSpec, ...] = (TableSpec("read-log", ReadLogModel, ttl_attribute="expires_epoch"),)
