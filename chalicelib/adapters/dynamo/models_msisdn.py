"""The ``msisdns`` table: which card each MSISDN belongs to (one card per number).

An item is written by a conditional put (absent, or already this card's) before a card with that number
is written, and moved in the same transaction as a card's number change, so of two imports giving one
number to two cards at the same moment exactly one wins. ``GET /v1/cards?msisdn=`` reads it first.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class MsisdnModel(Unbound):
    """车联网卡号码: the ICCID of the card that holds the number."""

    class Meta(Unbound.Meta):
        table_name = "msisdns"

    msisdn = UnicodeAttribute(hash_key=True)
    iccid = UnicodeAttribute()
    claimed_at = UTCDateTimeAttribute()


MSISDN_TABLES: tuple[TableSpec, ...] = (TableSpec("msisdns", MsisdnModel),)
