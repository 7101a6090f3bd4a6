"""The table of actual users (实际使用人, 第九条(四)) of enterprise cards.

``actual-users``: per card (hash key = ICCID), one item per record (range key ``r#<valid_from>#<record
id>``, so a query backwards reads the newest first) and one head item (range key ``#head``) whose
``version`` every change of the card's records moves in the same transaction: two changes racing on
one card cannot both pass, so periods never overlap. Name, ID number and phone are sealed under a data
key bound to the record (``actual-users|<iccid>|<record id>``); the ID is looked up by its keyed hash.
"""

from __future__ import annotations

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound

#: The range key of a card's head item.
HEAD_KEY = "#head"
#: The range-key prefix of the records.
RECORD_PREFIX = "r#"


class ActualUserModel(Unbound):
    """实际使用人: one record of one enterprise card, or the card's head item."""

    class Meta(Unbound.Meta):
        table_name = "actual-users"

    iccid = UnicodeAttribute(hash_key=True)
    record_key = UnicodeAttribute(range_key=True)  # r#<valid_from>#<record id>, or HEAD_KEY
    version = NumberAttribute()
    # records only
    record_id = UnicodeAttribute(null=True)
    uscc = UnicodeAttribute(null=True)
    id_type = UnicodeAttribute(null=True)
    id_hash = UnicodeAttribute(null=True)
    data_key = BinaryAttribute(legacy_encoding=False, null=True)
    name_enc = BinaryAttribute(legacy_encoding=False, null=True)
    id_number_enc = BinaryAttribute(legacy_encoding=False, null=True)
    phone_enc = BinaryAttribute(legacy_encoding=False, null=True)
    valid_from = UnicodeAttribute(null=True)  # ISO date (China)
    valid_to = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    ended_by = UnicodeAttribute(null=True)
    push_state = UnicodeAttribute(null=True)
    push_record_id = UnicodeAttribute(null=True)
    push_reason = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)


ACTUAL_USER_TABLES: tuple[TableSpec, ...] = (TableSpec("actual-users", ActualUserModel),)
