"""Tables of the owner's entrances: complaints (投诉举报, 第二十一条) and the platform texts (用户协议,
隐私政策) accepted at login.

- ``complaints``: one item per complaint number; the description and the contact phone sealed with a
  KMS data key, the person by their pseudonym (the token's subject); indexes by person (their own
  list) and by status (the OEM's listing), newest first.
- ``account-consents``: one item per login that accepted the texts: the person's pseudonym, when, and
  each text's kind, version and SHA-256.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    MapAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class ComplaintsBySubject(GlobalSecondaryIndex["ComplaintModel"]):  # type: ignore[no-untyped-call]
    """One person's complaints, by time."""

    class Meta:
        index_name = "by-subject"
        projection = AllProjection()

    subject = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ComplaintsByStatus(GlobalSecondaryIndex["ComplaintModel"]):  # type: ignore[no-untyped-call]
    """The OEM's listing: complaints by status, by time."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ComplaintModel(Unbound):
    """投诉举报: one per complaint number."""

    class Meta(Unbound.Meta):
        table_name = "complaints"

    complaint_id = UnicodeAttribute(hash_key=True)
    subject = UnicodeAttribute()
    category = UnicodeAttribute()
    status = UnicodeAttribute()
    vin = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    data_key = BinaryAttribute(legacy_encoding=False)  # the KMS-wrapped data key of this item
    description_enc = BinaryAttribute(legacy_encoding=False)
    contact_phone_enc = BinaryAttribute(legacy_encoding=False)
    # The OEM's answer (第二十一条), sealed with its own data key; who answered and when.
    answer_key = BinaryAttribute(legacy_encoding=False, null=True)
    answer_enc = BinaryAttribute(legacy_encoding=False, null=True)
    answered_by = UnicodeAttribute(null=True)
    answered_at = UTCDateTimeAttribute(null=True)

    by_subject = ComplaintsBySubject()
    by_status = ComplaintsByStatus()


class AcceptedTextMap(MapAttribute[str, str]):
    kind = UnicodeAttribute()
    version = UnicodeAttribute()
    sha256 = UnicodeAttribute()


class AccountConsentModel(Unbound):
    """用户协议 and 隐私政策 accepted at one login."""

    class Meta(Unbound.Meta):
        table_name = "account-consents"

    subject = UnicodeAttribute(hash_key=True)
    accepted_at = UTCDateTimeAttribute(range_key=True)
    texts = ListAttribute(of=AcceptedTextMap)


COMPLAINT_TABLES: tuple[TableSpec, ...] = (
    TableSpec("complaints", ComplaintModel),
    TableSpec("account-consents", AccountConsentModel),
)
