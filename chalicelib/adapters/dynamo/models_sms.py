"""Tables of SMS verification codes (短信验证码) and their sends.

Neither holds a phone number nor a code: items are keyed by the keyed hash (KMS HMAC) of the number,
and a code is kept only as a keyed hash of itself with its own salt.

- ``sms-codes``: the current code of one purpose and phone (``<purpose>#<phone hash>``; a signed-in
  caller's own ``…#<caller>``, a known device's login code ``login#<phone hash>#dev#<device hash>``): its
  hash and salt, when it was sent and expires, the wrong tries, when it was used. Purged by TTL a day
  after expiry.
- ``sms-sends``: one item per bucket of sends: the China day counted, the sends that day and the last send,
  which the conditional writes of the resend interval and the daily limit check. Purged by TTL.
  Keyed ``<phone hash>#<purpose>`` (anonymous purposes), ``<phone hash>#<purpose>#<caller>`` (a
  signed-in caller's own bucket), ``<phone hash>#login#dev#<device hash>`` (a known device's logins),
  ``<phone hash>#all`` (the phone's anonymous total) and ``<phone hash>#signed-in`` (its signed-in total).
- ``sms-limits``: window counters of code asks per client (``ip#<ip hash>#h#<hour>``,
  ``dev#<device hash>#d#<day>``, ``who#<caller>#h#<hour>``…) and of failed login tries
  (``try#ip#…``, ``try#dev#…``), the marks of devices a phone signed in from
  (``seen#<phone hash>#<device hash>``), and the shards of the platform's hourly budget
  (``budget#<hour>#<shard>``); purged by TTL after their window.
- ``captchas``: the local captcha's challenges: the answer's keyed hash, the expiry, whether spent.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute, UTCDateTimeAttribute

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class SmsCodeModel(Unbound):
    """短信验证码: the current code of one purpose and phone; ``code_hash`` is removed once used."""

    class Meta(Unbound.Meta):
        table_name = "sms-codes"

    code_key = UnicodeAttribute(hash_key=True)  # <purpose>#<phone hash>[#<caller> | #dev#<device hash>]
    purpose = UnicodeAttribute()
    phone_hash = UnicodeAttribute()
    code_hash = UnicodeAttribute(null=True)
    salt = UnicodeAttribute()
    sent_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    tries = NumberAttribute()
    used_at = UTCDateTimeAttribute(null=True)
    expires_epoch = NumberAttribute()
    attempts = UnicodeSetAttribute(null=True)  # tokens of the tries and use counted (``dynamo.once``)


class SmsSendsModel(Unbound):
    """Codes sent to one phone: the China day (``YYYY-MM-DD``), how many that day, the last send."""

    class Meta(Unbound.Meta):
        table_name = "sms-sends"

    phone_hash = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute()
    sent = NumberAttribute()
    last_sent_at = UTCDateTimeAttribute()
    expires_epoch = NumberAttribute()
    attempts = UnicodeSetAttribute(null=True)  # tokens of the latest counts (``dynamo.once``)


class SmsLimitModel(Unbound):
    """A window counter (asks from one client in an hour or a day, or a shard of the SMS budget)."""

    class Meta(Unbound.Meta):
        table_name = "sms-limits"

    counter_id = UnicodeAttribute(hash_key=True)
    tally = NumberAttribute()
    expires_epoch = NumberAttribute()
    attempts = UnicodeSetAttribute(null=True)  # tokens of the latest counts (``dynamo.once``)


class CaptchaModel(Unbound):
    """图片验证码: one challenge; ``spent_at`` is set by its one try."""

    class Meta(Unbound.Meta):
        table_name = "captchas"

    challenge_id = UnicodeAttribute(hash_key=True)
    answer_hash = UnicodeAttribute()
    expires_at = UTCDateTimeAttribute()
    spent_at = UTCDateTimeAttribute(null=True)
    expires_epoch = NumberAttribute()


SMS_TABLES: tuple[TableSpec, ...] = (
    TableSpec("sms-codes", SmsCodeModel, ttl_attribute="expires_epoch"),
    TableSpec("sms-sends", SmsSendsModel, ttl_attribute="expires_epoch"),
    TableSpec("sms-limits", SmsLimitModel, ttl_attribute="expires_epoch"),
    TableSpec("captchas", CaptchaModel, ttl_attribute="expires_epoch"),
)
