"""Window counters of code asks per client, and the SMS budget's shards, on DynamoDB (``sms-limits``).

A client's counters are taken in one transaction, each an ``ADD tally 1`` conditional on being under
its cap: an ask refused by one counts in none. Two transactions on the same counters at once may be
cancelled as a conflict (``TransactionConflict``): such a take is tried again, up to
``_CONFLICT_TRIES`` times, before the conflict goes up (a retryable 503). A budget shard is one
conditional ``ADD``; a full shard passes the send to the next. A release is a conditional ``ADD -1``
(never below 0). Items expire by TTL a day after their window.

botocore retries a call whose reply was lost; a count must still be made once and answered as made.
A take's transaction carries a guard item (``attempt#<token>``, put only if absent) and the same token
as its ``ClientRequestToken``: DynamoDB answers a retry of a transaction that landed as done, and where
it does not (past its idempotency window, or on the local stack), the retry is cancelled by its own
guard, which says it landed. A guard is a separate item, so no counter grows with the asks it counts;
it expires by TTL with the window. A budget shard's take and a release are plain conditional
updates: the shards are the hottest items (every send of the stage), and a token set on them would
grow with the sends a retry's horizon holds (each update rewriting it). A lost reply there errs on the
safe side: a take retried after its first attempt landed counts one more (on its shard or the next;
at worst the send is refused as over budget and asked again), a release retried counts one less
against an hourly ceiling of thousands.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from pynamodb.exceptions import CancellationReason, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models_sms import SmsLimitModel
from chalicelib.adapters.dynamo.once import new_token
from chalicelib.sms.limits import Counter
from chalicelib.sms.ports import SmsLimitStore

_KEEP = timedelta(days=1)
_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Takes of one ask tried when DynamoDB cancels them as a conflict with a concurrent one.
_CONFLICT_TRIES = 3
#: The pause before a take is tried again, at most (jittered): concurrent asks rarely meet twice.
_CONFLICT_PAUSE_SECONDS = 0.02
#: The key of a take's guard item: ``attempt#<token>``.
_GUARD_PREFIX = "attempt#"


def _epoch(at: datetime) -> int:
    return int((at + _KEEP).timestamp())


def _failed(reason: CancellationReason | None) -> bool:
    """Whether a transaction's item was refused by its condition (for a take's guard: the guard exists,
    so an earlier attempt of the same take landed)."""
    return reason is not None and reason.code in ("ConditionalCheckFailed", _CONDITION_FAILED)


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
                # PynamoDB sends a transaction's puts before its updates: the guard's reason comes first.
                guard, *reasons = exc.cancellation_reasons or [None]
                if _failed(guard):
                    return None  # this take's own first attempt landed; its reply was lost
                for counter, reason in zip(counters, reasons, strict=False):
                    if _failed(reason):
                        return counter
                conflict = any(r is not None and r.code == "TransactionConflict" for r in (guard, *reasons))
                if not conflict or attempt == _CONFLICT_TRIES - 1:
                    raise
                time.sleep(random.uniform(0, _CONFLICT_PAUSE_SECONDS))  # jitter; nothing secret
                continue
            return None
        return None  # pragma: no cover - the loop returns or raises

    def _take_once(self, counters: list[Counter]) -> None:
        """One transaction: every counter under its cap counts one, and the take's guard is put (its
        ``attempt#<token>`` item, the token also the transaction's ``ClientRequestToken``)."""
        token = new_token()
        connection = SmsLimitModel._get_connection().connection
        with TransactWrite(connection=connection, client_request_token=token) as tx:
            for counter in counters:
                tx.update(
                    SmsLimitModel(counter.key),
                    actions=[
                        SmsLimitModel.tally.add(1),
                        SmsLimitModel.expires_epoch.set(_epoch(counter.window_end)),
                    ],
                    condition=SmsLimitModel.tally.does_not_exist() | (SmsLimitModel.tally < counter.limit),
                )
            until = max(counter.window_end for counter in counters)
            tx.save(
                SmsLimitModel(f"{_GUARD_PREFIX}{token}", tally=1, expires_epoch=_epoch(until)),
                condition=SmsLimitModel.counter_id.does_not_exist(),
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
