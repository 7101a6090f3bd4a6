"""The ``enterprises`` table: one item per enterprise (单位), keyed by its USCC, naming the one
legal-person account that holds it (seed 001: 每家企业只允许注册一个法人账号).

The contact address is sealed with a KMS data key bound to the USCC; the legal representative is kept
as a masked name and the keyed hash of their ID type and number.

``real-name-applications``: one item per account, its latest real-name authentication sent to a reviewer
(人工实名认证) or decided; nothing personal (the flow holds the identity, sealed).
"""

from __future__ import annotations

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class EnterpriseModel(Unbound):
    """单位: the enterprise and its legal-person account."""

    class Meta(Unbound.Meta):
        table_name = "enterprises"

    uscc = UnicodeAttribute(hash_key=True)
    company_name = UnicodeAttribute()
    enterprise_type = UnicodeAttribute()
    legal_person_type = UnicodeAttribute()
    representative_name_masked = UnicodeAttribute()
    representative_person_hash = UnicodeAttribute()
    legal_account_id = UnicodeAttribute()
    flow_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    data_key = BinaryAttribute(legacy_encoding=False)  # the KMS-wrapped data key of this item
    address_enc = BinaryAttribute(legacy_encoding=False)


class RealNameApplicationModel(Unbound):
    """实名认证申请: an account's latest real-name authentication that went to a reviewer or was decided
    (its flow, the legal person's choices, the review case, the refusal shown to the account)."""

    class Meta(Unbound.Meta):
        table_name = "real-name-applications"

    account_id = UnicodeAttribute(hash_key=True)
    flow_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    submitted_at = UTCDateTimeAttribute()
    enterprise_type = UnicodeAttribute(null=True)
    legal_person_type = UnicodeAttribute(null=True)
    uscc = UnicodeAttribute(null=True)
    company_name = UnicodeAttribute(null=True)
    case_id = UnicodeAttribute(null=True)
    case_number = UnicodeAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    refusal = UnicodeAttribute(null=True)


ENTERPRISE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("enterprises", EnterpriseModel),
    TableSpec("real-name-applications", RealNameApplicationModel),
)
