"""The ``staff-revocations`` table: staff sign-ins ended by a logout, until their tokens expire.

The staff IdP's access tokens are self-contained (verified against its keys, not looked up): a logout
records the token's revocation key (its IdP session ``sid:``, else ``ojti:``/``jti:``) here, and every
staff request reads it (one consistent ``GetItem``). Purged by TTL a day after the token's expiry.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class StaffRevocationModel(Unbound):
    """A revoked staff sign-in: its key, who, when, and until when its tokens could still verify."""

    class Meta(Unbound.Meta):
        table_name = "staff-revocations"

    revocation_key = UnicodeAttribute(hash_key=True)
    subject = UnicodeAttribute()
    revoked_at = UTCDateTimeAttribute()
    token_expires_epoch = NumberAttribute()
    expires_epoch = NumberAttribute()


STAFF_TABLES: tuple[TableSpec, ...] = (
    TableSpec("staff-revocations", StaffRevocationModel, ttl_attribute="expires_epoch"),
)
