"""SMS codes and send counts on DynamoDB; every change is a conditional write.

A send is counted by one conditional update of its bucket's ``sms-sends`` item (same China day, under
the daily limit, the last send at least the resend interval ago), or, on a new day, one that restarts
the count; when both are refused the stored state says why. A send with a phone total first counts in
it the same way (under the total, no interval), and is taken back from it if its bucket refuses it. A
send given back (``release_send``) counts one less, and its bucket's last send moves back by the
resend interval, on condition that it is still the last. A wrong try and the consumption of a code
are conditional on the code read being still current (its salt), unused and unburnt, so concurrent
checks never allow a sixth try nor a second use.

A code's use may also be one write of a step's transaction (``use_in``: the registration's phone step
uses it with the flow it opens, the registration and the evidence, all or none), on the same condition.

Every conditional update goes through ``dynamo.once.update_once``: botocore's retry of an update whose
reply was lost neither applies it twice nor is refused by it (a correct code answered as used, a send
as too soon, a try or a send counted twice).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_sms import SmsCodeModel, SmsSendsModel
from chalicelib.adapters.dynamo.once import update_once
from chalicelib.kernel.clock import china_day, end_of_china_day
from chalicelib.sms.domain import (
    MatchedCode,
    SendBuckets,
    SendQuota,
    SmsPolicy,
    SmsPurpose,
    StoredCode,
    check_send,
    check_total,
    daily_limit,
    too_soon,
)
from chalicelib.sms.ports import SmsCodeStore

#: Items outlive what they count by this much, then TTL purges them.
_KEEP = timedelta(days=1)


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _quota(item: SmsSendsModel) -> SendQuota:
    return SendQuota(
        day=date.fromisoformat(item.day), sent=int(item.sent), last_sent_at=utc_aware(item.last_sent_at)
    )


class DynamoSmsCodeStore(SmsCodeStore):
    """``sms-codes`` and ``sms-sends`` (models bound by ``models.bind``)."""

    def quota(self, key: str) -> SendQuota | None:
        try:
            return _quota(SmsSendsModel.get(key, consistent_read=True))
        except DoesNotExist:
            return None

    def reserve_send(self, buckets: SendBuckets, now: datetime, policy: SmsPolicy) -> SendQuota:
        total_key = buckets.total_key
        if total_key is not None:
            self._count_total(total_key, buckets.total_limit, now)
        try:
            return self._reserve(buckets.quota_key, now, policy)
        except Exception:
            if total_key is not None:
                self._uncount_total(total_key, now)
            raise

    def release_send(self, buckets: SendBuckets, sent_at: datetime, policy: SmsPolicy) -> None:
        released = update_once(
            SmsSendsModel(buckets.quota_key),
            SmsSendsModel.attempts,
            [SmsSendsModel.sent.add(-1), SmsSendsModel.last_sent_at.set(sent_at - policy.resend_interval)],
            (SmsSendsModel.day == china_day(sent_at).isoformat())
            & (SmsSendsModel.last_sent_at == sent_at)
            & (SmsSendsModel.sent > 0),
        )
        if not released:
            return  # another send came since (or a new day): it stays as counted
        if buckets.total_key is not None:
            self._uncount_total(buckets.total_key, sent_at)

    def _count_total(self, key: str, limit: int, now: datetime) -> None:
        today = china_day(now).isoformat()
        expires = _epoch(end_of_china_day(now) + _KEEP)
        branches: tuple[tuple[list[Action], Condition], ...] = (
            (
                [SmsSendsModel.sent.add(1), SmsSendsModel.last_sent_at.set(now)],
                (SmsSendsModel.day == today) & (SmsSendsModel.sent < limit),
            ),
            (
                [
                    SmsSendsModel.day.set(today),
                    SmsSendsModel.sent.set(1),
                    SmsSendsModel.last_sent_at.set(now),
                    SmsSendsModel.expires_epoch.set(expires),
                ],
                SmsSendsModel.day.does_not_exist() | (SmsSendsModel.day != today),
            ),
        )
        for _ in range(2):
            for actions, condition in branches:
                if update_once(SmsSendsModel(key), SmsSendsModel.attempts, actions, condition):
                    return
            check_total(self.quota(key), now, limit)  # raises sms.daily_limit
        retry_after = max(1, int((end_of_china_day(now) - now).total_seconds()))
        raise daily_limit(limit, retry_after)  # two concurrent new days: rare

    def _uncount_total(self, key: str, now: datetime) -> None:
        update_once(
            SmsSendsModel(key),
            SmsSendsModel.attempts,
            [SmsSendsModel.sent.add(-1)],
            (SmsSendsModel.day == china_day(now).isoformat()) & (SmsSendsModel.sent > 0),
        )

    def _reserve(self, key: str, now: datetime, policy: SmsPolicy) -> SendQuota:
        today = china_day(now).isoformat()
        earliest = now - policy.resend_interval
        expires = _epoch(end_of_china_day(now) + _KEEP)
        interval_passed = SmsSendsModel.last_sent_at.does_not_exist() | (
            SmsSendsModel.last_sent_at <= earliest
        )
        branches: tuple[tuple[list[Action], Condition], ...] = (
            # Another send today, under the limit.
            (
                [
                    SmsSendsModel.sent.add(1),
                    SmsSendsModel.last_sent_at.set(now),
                    SmsSendsModel.expires_epoch.set(expires),
                ],
                (SmsSendsModel.day == today) & (SmsSendsModel.sent < policy.sends_per_day) & interval_passed,
            ),
            # The first send of the bucket, or of a new China day.
            (
                [
                    SmsSendsModel.day.set(today),
                    SmsSendsModel.sent.set(1),
                    SmsSendsModel.last_sent_at.set(now),
                    SmsSendsModel.expires_epoch.set(expires),
                ],
                (SmsSendsModel.day.does_not_exist() | (SmsSendsModel.day != today)) & interval_passed,
            ),
        )
        for _ in range(2):  # a concurrent first send of the day can refuse both; the re-read says why
            for actions, condition in branches:
                item = SmsSendsModel(key)
                if update_once(item, SmsSendsModel.attempts, actions, condition):
                    return _quota(item)
            quota = self.quota(key)
            check_send(quota, now, policy)  # raises sms.daily_limit or sms.too_soon
        raise too_soon(max(1, int(policy.resend_interval.total_seconds())))

    def put_code(self, code: StoredCode) -> None:
        SmsCodeModel(
            code.key,
            purpose=code.purpose.value,
            phone_hash=code.phone_hash,
            code_hash=code.code_hash,
            salt=code.salt,
            sent_at=code.sent_at,
            expires_at=code.expires_at,
            tries=code.tries,
            used_at=code.used_at,
            expires_epoch=_epoch(code.expires_at + _KEEP),
        ).save()

    def get_code(self, key: str) -> StoredCode | None:
        try:
            item = SmsCodeModel.get(key, consistent_read=True)
        except DoesNotExist:
            return None
        return StoredCode(
            key=item.code_key,
            purpose=SmsPurpose(item.purpose),
            phone_hash=item.phone_hash,
            code_hash=item.code_hash,
            salt=item.salt,
            sent_at=utc_aware(item.sent_at),
            expires_at=utc_aware(item.expires_at),
            tries=int(item.tries),
            used_at=utc_aware(item.used_at) if item.used_at else None,
        )

    def add_wrong_try(self, code: StoredCode, max_tries: int) -> int | None:
        item = SmsCodeModel(code.key)
        counted = update_once(
            item,
            SmsCodeModel.attempts,
            [SmsCodeModel.tries.add(1)],
            (SmsCodeModel.salt == code.salt)
            & SmsCodeModel.used_at.does_not_exist()
            & (SmsCodeModel.tries < max_tries),
        )
        return int(item.tries) if counted else None

    def consume(self, code: StoredCode, now: datetime, max_tries: int) -> bool:
        return update_once(
            SmsCodeModel(code.key), SmsCodeModel.attempts, _use(now), _usable(code, now, max_tries)
        )


def use_in(tx: TransactWrite, matched: MatchedCode) -> None:
    """The use of ``matched`` as one write of the transaction ``tx`` (the writes of the step it proves):
    refused, as ``consume`` is, unless the code is still the one read (its salt), unused, unburnt and
    unexpired. The transaction's ``ClientRequestToken`` makes botocore's retry of it idempotent."""
    tx.update(
        SmsCodeModel(matched.code.key),
        actions=_use(matched.at),
        condition=_usable(matched.code, matched.at, matched.max_tries),
        add_version_condition=False,
    )


def _use(now: datetime) -> list[Action]:
    return [SmsCodeModel.used_at.set(now), SmsCodeModel.code_hash.remove()]


def _usable(code: StoredCode, now: datetime, max_tries: int) -> Condition:
    """The code as read is still current (its salt), unused, unburnt and unexpired at ``now``."""
    usable: Condition = (
        (SmsCodeModel.salt == code.salt)
        & SmsCodeModel.used_at.does_not_exist()
        & (SmsCodeModel.tries < max_tries)
        & (SmsCodeModel.expires_at > now)
    )
    return usable
