"""Tables of the enterprise-portal accounts (``chalicelib.accounts``).

- ``accounts``: one item per account (``acct_<32 hex>``): kind, status, the bound phone and the e-mail
  sealed with a KMS data key (looked up by the phone's keyed hash only), their masked forms, the argon2id
  password hash, what real-name authentication established (the person by keyed hash, the name masked),
  the enterprise (USCC) or dealer code. Indexes: ``by-phone`` (accounts per phone) and ``by-person``
  (sign-in by ID number).
- ``account-names``: one item per login name, keyed case-insensitively: written in one transaction with
  the account, conditional on the name being free, so a name is claimed once whatever the timing.
- ``account-guards``: failures and locks per account and per identifier (keyed hash); purged by TTL
  two days after their last change or lock (the back-off then starts again from the first lock).
- ``login-challenges``: a password accepted, waiting for the SMS code; purged by TTL.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class AccountsByPhone(GlobalSecondaryIndex["AccountModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-phone"
        projection = KeysOnlyProjection()

    phone_hash = UnicodeAttribute(hash_key=True)


class AccountsByPerson(GlobalSecondaryIndex["AccountModel"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-person"
        projection = KeysOnlyProjection()

    person_hash = UnicodeAttribute(hash_key=True)


class AccountModel(Unbound):
    """账号: one per account id."""

    class Meta(Unbound.Meta):
        table_name = "accounts"

    account_id = UnicodeAttribute(hash_key=True)
    login_name = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    phone_hash = UnicodeAttribute()
    phone_masked = UnicodeAttribute()
    email_masked = UnicodeAttribute(null=True)
    data_key = BinaryAttribute(legacy_encoding=False)  # the KMS-wrapped data key of this item
    phone_enc = BinaryAttribute(legacy_encoding=False)
    email_enc = BinaryAttribute(legacy_encoding=False, null=True)
    password_hash = UnicodeAttribute(null=True)
    password_changed_at = UTCDateTimeAttribute(null=True)
    enterprise_uscc = UnicodeAttribute(null=True)
    dealer_code = UnicodeAttribute(null=True)
    person_hash = UnicodeAttribute(null=True)
    real_name_kind = UnicodeAttribute(null=True)
    real_name_flow_id = UnicodeAttribute(null=True)
    real_name_verified_at = UTCDateTimeAttribute(null=True)
    real_name_masked = UnicodeAttribute(null=True)
    real_name_uscc = UnicodeAttribute(null=True)
    real_name_company = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    version = NumberAttribute()

    by_phone = AccountsByPhone()
    by_person = AccountsByPerson()


class AccountNameModel(Unbound):
    """A login name claimed (case-insensitive key) and the account holding it."""

    class Meta(Unbound.Meta):
        table_name = "account-names"

    name_key = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()


class AccountGuardModel(Unbound):
    """Failures and locks of one key (``acct#<id>`` or ``id#<keyed hash of an identifier>``)."""

    class Meta(Unbound.Meta):
        table_name = "account-guards"

    guard_key = UnicodeAttribute(hash_key=True)
    failures = NumberAttribute()
    locks = NumberAttribute()
    locked_until = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute()
    expires_epoch = NumberAttribute()


class LoginChallengeModel(Unbound):
    """A login waiting for its SMS code."""

    class Meta(Unbound.Meta):
        table_name = "login-challenges"

    challenge_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    attempts = NumberAttribute()
    used = BooleanAttribute()
    version = NumberAttribute()
    expires_epoch = NumberAttribute()


ACCOUNT_TABLES: tuple[TableSpec, ...] = (
    TableSpec("accounts", AccountModel),
    TableSpec("account-names", AccountNameModel),
    TableSpec("account-guards", AccountGuardModel, ttl_attribute="expires_epoch"),
    TableSpec("login-challenges", LoginChallengeModel, ttl_attribute="expires_epoch"),
)
