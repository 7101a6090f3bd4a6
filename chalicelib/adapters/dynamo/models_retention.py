"""Tables of retention (第十八条).

- ``retention``: one item per holder (party) whose materials are kept: its registrations, earlier parties
  of the same person merged in, the cards whose service to it ended. Out of service it carries
  ``due_shard`` and ``due_at``: the sparse ``by-due`` index is all the purge schedule reads.
- ``retention-purges``: what each purge deleted, when and why (counts and opaque ids, no personal data),
  one item per subject (hash key) and due date (range key), written by a conditional put.
"""

from __future__ import annotations

from pynamodb.attributes import (
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class RetentionByDue(GlobalSecondaryIndex["RetentionModel"]):  # type: ignore[no-untyped-call]
    """Sparse: only subjects whose service ended; oldest due first within a shard."""

    class Meta:
        index_name = "by-due"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class RetentionModel(Unbound):
    """留存: one holder's retained materials."""

    class Meta(Unbound.Meta):
        table_name = "retention"

    party_id = UnicodeAttribute(hash_key=True)
    registrations = UnicodeSetAttribute(null=True)
    parties = UnicodeSetAttribute(null=True)
    iccids = UnicodeSetAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    #: Bumped by every end and hold: a purge deletes the item only at the version it read.
    version = NumberAttribute(default=0)

    by_due = RetentionByDue()


class PurgeRecordModel(Unbound):
    """清除记录: one purge of one subject's materials (what, when, why)."""

    class Meta(Unbound.Meta):
        table_name = "retention-purges"

    party_id = UnicodeAttribute(hash_key=True)  # an opaque id: the party itself is deleted
    due_at = UTCDateTimeAttribute(range_key=True)
    reason = UnicodeAttribute()
    ended_at = UTCDateTimeAttribute(null=True)
    started_at = UTCDateTimeAttribute()
    completed_at = UTCDateTimeAttribute(null=True)
    registration_ids = UnicodeSetAttribute(null=True)
    counts_json = UnicodeAttribute(null=True)


RETENTION_TABLES: tuple[TableSpec, ...] = (
    TableSpec("retention", RetentionModel),
    TableSpec("retention-purges", PurgeRecordModel),
)
