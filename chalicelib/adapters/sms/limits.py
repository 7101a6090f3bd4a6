"""Window counters of code asks per client, and the SMS budget's shards, on DynamoDB (``sms-limits``).

A client's counters are taken in one transaction, each an ``ADD tally 1`` conditional on being under
its cap: an ask refused by one counts in none. Two transactions on the same counters at once may be
cancelled as a conflict (``TransactionConflict``): such a take is tried again, up to
``_CONFLICT_TRIES`` times, before the conflict goes up (a retryable 503). A budget shard is one
conditional ``ADD``; a full shard passes the send to the next. A release is a conditional ``ADD -1``
(never below 0). Items expire by TTL a day after their window.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models_sms import SmsLimitModel
from chalicelib.sms.limits import Counter
from chalicelib.sms.ports import SmsLimitStore

_KEEP = timedelta(days=1)
_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Takes of one ask tried when DynamoDB cancels them as a conflict with a concurrent one.
_CONFLICT_TRIES = 3
#: The pause before a take is tried again, at most (jittered): concurrent asks rarely meet twice.
_CONFLICT_PAUSE_SECONDS = 0.02


def _epoch(at: datetime) -> int:
    return int((at + _KEEP).timestamp())


class DynamoSmsLimitStore(SmsLimitStore):
    """``sms-limits`` (bound by ``models.bind``)."""

    def tallies(self, keys: list[str]) -> dict[str, int]:
        found = dict.fromkeys(keys, 0)
        if keys:
            for item in SmsLimitModel.batch_get(keys, consistent_read=True):
                found[item.counter_id] = int(item.tally)
        return found

    def take(self, counters: list[Counter]) -> Counter | None:
        if not counters:
            return None
        for attempt in range(_CONFLICT_TRIES):
            try:
                self._take_once(counters)
            except TransactWriteError as exc:
                reasons = exc.cancellation_reasons or []
                for counter, reason in zip(counters, reasons, strict=False):
                    if reason is not None and reason.code in ("ConditionalCheckFailed", _CONDITION_FAILED):
                        return counter
                conflict = any(r is not None and r.code == "TransactionConflict" for r in reasons)
                if not conflict or attempt == _CONFLICT_TRIES - 1:
                    raise
                time.sleep(random.uniform(0, _CONFLICT_PAUSE_SECONDS))  # jitter; nothing secret
                continue
            return None
        return None  # pragma: no cover - the loop returns or raises

    def _take_once(self, counters: list[Counter]) -> None:
        with TransactWrite(connection=SmsLimitModel._get_connection().connection) as tx:
            for counter in counters:
                tx.update(
                    SmsLimitModel(counter.key),
                    actions=[
                        SmsLimitModel.tally.add(1),
                        SmsLimitModel.expires_epoch.set(_epoch(counter.window_end)),
                    ],
                    condition=SmsLimitModel.tally.does_not_exist() | (SmsLimitModel.tally < counter.limit),
                )

    def release(self, keys: list[str]) -> None:
        for key in keys:
            try:
                SmsLimitModel(key).update(
                    actions=[SmsLimitModel.tally.add(-1)], condition=SmsLimitModel.tally > 0
                )
            except UpdateError as exc:
                if exc.cause_response_code != _CONDITION_FAILED:
                    raise

    def mark(self, key: str, until: datetime) -> None:
        SmsLimitModel(key, tally=1, expires_epoch=int(until.timestamp())).save()

    def take_budget(self, keys_and_caps: list[tuple[str, int]], expires_at: datetime) -> str | None:
        for key, cap in keys_and_caps:
            try:
                SmsLimitModel(key).update(
                    actions=[SmsLimitModel.tally.add(1), SmsLimitModel.expires_epoch.set(_epoch(expires_at))],
                    condition=SmsLimitModel.tally.does_not_exist() | (SmsLimitModel.tally < cap),
                )
            except UpdateError as exc:
                if exc.cause_response_code != _CONDITION_FAILED:
                    raise
                continue
            return key
        return None
