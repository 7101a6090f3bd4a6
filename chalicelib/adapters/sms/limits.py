"""Window counters of code asks per client, and the SMS budget's shards, on DynamoDB (``sms-limits``).

A client's counters are taken in one transaction, each an ``ADD tally 1`` conditional on being under
its cap: an ask refused by one counts in none. A budget shard is one conditional ``ADD``; a full shard
passes the send to the next. Items expire by TTL a day after their window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models_sms import SmsLimitModel
from chalicelib.sms.limits import Counter
from chalicelib.sms.ports import SmsLimitStore

_KEEP = timedelta(days=1)
_CONDITION_FAILED = "ConditionalCheckFailedException"


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
        try:
            with TransactWrite(connection=SmsLimitModel._get_connection().connection) as tx:
                for counter in counters:
                    tx.update(
                        SmsLimitModel(counter.key),
                        actions=[
                            SmsLimitModel.tally.add(1),
                            SmsLimitModel.expires_epoch.set(_epoch(counter.window_end)),
                        ],
                        condition=SmsLimitModel.tally.does_not_exist()
                        | (SmsLimitModel.tally < counter.limit),
                    )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            for counter, reason in zip(counters, reasons, strict=False):
                if reason is not None and reason.code in ("ConditionalCheckFailed", _CONDITION_FAILED):
                    return counter
            raise
        return None

    def take_budget(self, keys_and_caps: list[tuple[str, int]], expires_at: datetime) -> bool:
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
            return True
        return False
