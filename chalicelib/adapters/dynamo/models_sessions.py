"""The ``sessions`` table: one item per sign-in session (owner, enterprise or staff).

No token is kept in clear: the current refresh token and the one it replaced are kept as keyed hashes
(KMS HMAC). ``by-subject`` finds a subject's sessions (sign out everywhere, a staff account disabled).
Purged by TTL a day after the session would have ended.
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class SessionsBySubject(GlobalSecondaryIndex["SessionModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-subject"
        projection = KeysOnlyProjection()

    subject = UnicodeAttribute(hash_key=True)


class SessionModel(Unbound):
    """登录会话: who (kind, subject, roles), the refresh token hashes, its generation and times."""

    class Meta(Unbound.Meta):
        table_name = "sessions"

    session_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    subject = UnicodeAttribute()
    roles = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    token_hash = UnicodeAttribute()
    previous_hash = UnicodeAttribute(null=True)
    generation = NumberAttribute()
    created_at = UTCDateTimeAttribute()
    rotated_at = UTCDateTimeAttribute()
    idle_expires_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    revoked_reason = UnicodeAttribute(null=True)
    expires_epoch = NumberAttribute()

    by_subject = SessionsBySubject()


SESSION_TABLES: tuple[TableSpec, ...] = (TableSpec("sessions", SessionModel, ttl_attribute="expires_epoch"),)
