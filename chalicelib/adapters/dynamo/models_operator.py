"""Tables of the operator integration: nonces of the callbacks received (replay protection)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class OperatorNonceModel(Unbound):
    """A callback nonce seen within the signature window; kept twice the window, then purged by TTL."""

    class Meta(Unbound.Meta):
        table_name = "operator-nonces"

    nonce = UnicodeAttribute(hash_key=True)
    expires_epoch = NumberAttribute()


OPERATOR_TABLES: tuple[TableSpec, ...] = (
    TableSpec("operator-nonces", OperatorNonceModel, ttl_attribute="expires_epoch"),
)
