"""Tables of dealers (经销商, 第二十条).

- ``dealer-handoffs``: one item per on-the-spot hand-off of a registration to the dealer's tablet, keyed
  by the keyed hash of its code (never the code): the VIN, the dealer, when it expires, who used it and
  the registration it opened. Purged by TTL a day after it expired.
- ``dealer-accounts``: which portal accounts the OEM created for which dealer code (the account itself
  lives in ``accounts``): the admin's listing of a dealer's accounts.

A dealer's vehicles are read through the ``by-dealer`` index of ``vehicles`` (``models.VehicleModel``).
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class DealerHandoffModel(Unbound):
    """现场协助登记: a single-use hand-off of one VIN's registration from a dealer to its owner."""

    class Meta(Unbound.Meta):
        table_name = "dealer-handoffs"

    code_hash = UnicodeAttribute(hash_key=True)
    vin = UnicodeAttribute()
    dealer_code = UnicodeAttribute()
    dealer_account_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    used_at = UTCDateTimeAttribute(null=True)
    used_by = UnicodeAttribute(null=True)
    registration_id = UnicodeAttribute(null=True)
    expires_epoch = NumberAttribute()
    attempts = UnicodeSetAttribute(null=True)  # the token of its use (``dynamo.once``)


class DealerAccountModel(Unbound):
    """经销商账号: an account the OEM created for a dealer code."""

    class Meta(Unbound.Meta):
        table_name = "dealer-accounts"

    dealer_code = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute(range_key=True)
    login_name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()


DEALER_TABLES: tuple[TableSpec, ...] = (
    TableSpec("dealer-handoffs", DealerHandoffModel, ttl_attribute="expires_epoch"),
    TableSpec("dealer-accounts", DealerAccountModel),
)
