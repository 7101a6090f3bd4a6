"""What each wave did with each card, its counters and plan cursors, and the campaign's token bucket, on
DynamoDB (``campaign-sends`` and ``campaign-waves``, models in ``models_campaigns``).

A send record is created by a ``PutItem`` conditional on its absence (a card is handled once per wave,
whoever delivers its message twice), and moved out of ``claimed`` only by an update conditional on that
status. Counters are added with ``ADD`` on the wave's ``stats`` item (no read). The token bucket is one
item per campaign: read, refilled for the time since, written back conditional on the version read (a
lost race reads again).

The wave's ``called`` count lives on an item of its own (``calls``), written only by the transaction of
an entry's first outcome (``campaign_reach.DynamoCallList``): a plain ``UpdateItem`` on an item held by
a transaction in flight is refused (``TransactionConflictException``, which botocore does not retry), so
were ``called`` on the ``stats`` item, a batch's ``sent``/``failed`` or a page's ``targeted`` could be
refused by a call's outcome. ``progress`` adds both items' ``called`` (waves counted before the split
hold it on ``stats``). A ``count`` refused that way all the same is tried again (``COUNT_ATTEMPTS``,
jittered): the refused update changed nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from datetime import datetime

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_campaigns import CampaignSendModel, CampaignWaveModel
from chalicelib.campaigns.domain import SendRecord, SendStatus, SkipReason, WaveProgress
from chalicelib.campaigns.ports import RateLimiter, SendLedger
from chalicelib.core.outbound import Unavailable, error_code_in
from chalicelib.kernel.errors import Conflict

_CONDITION_FAILED = "ConditionalCheckFailedException"
#: The wave item holding its counters; a shard's plan cursor is ``shard#NN``.
STATS_PART = "stats"
#: The wave item holding its ``called`` count: written only by first-outcome transactions, so that they
#: never hold the ``stats`` item the sender, planner and attribution update with plain writes.
CALLS_PART = "calls"
BUCKET_PART = "bucket"
#: The counters ``count`` accepts (``skipped_<reason>`` besides, one per ``SkipReason``).
COUNTERS = ("targeted", "sent", "failed", "called", "registered", "deferred")
SKIP_COUNTERS = tuple(f"skipped_{r.value}" for r in SkipReason)
#: Reads of the bucket before a sender gives up on a contended write (and waits a little instead).
BUCKET_ATTEMPTS = 5
#: Attempts of a counters update refused for a transaction in flight on the item, and the longest first
#: pause between them (doubled each time, jittered).
COUNT_ATTEMPTS = 4
COUNT_PAUSE_SECONDS = 0.05
_TRANSACTION_CONFLICT = "TransactionConflictException"


def campaign_wave_key(campaign_id: str, wave: int) -> str:
    return f"{campaign_id}#{wave:02d}"


def rate_key(key: str) -> str:
    return f"{key}#rate"


def _condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == _CONDITION_FAILED


def _transaction_conflict(err: BaseException) -> bool:
    """Whether ``err`` (PynamoDB's ``UpdateError``, or the ``Unavailable`` lifted from it) is DynamoDB's
    refusal of a plain write to an item a transaction in flight holds: nothing was written."""
    return error_code_in(err, _TRANSACTION_CONFLICT)


def _record(item: CampaignSendModel) -> SendRecord:
    return SendRecord(
        iccid=item.iccid,
        campaign_id=item.campaign_id,
        wave=int(item.wave),
        status=SendStatus(item.status),
        at=utc_aware(item.at),
        reason=SkipReason(item.reason) if item.reason else None,
        message_id=item.message_id,
        attempts=int(item.attempts or 0),
        registered_at=utc_aware(item.registered_at) if item.registered_at else None,
    )


class DynamoSendLedger(SendLedger):
    def _create(self, record: SendRecord) -> bool:
        item = CampaignSendModel(
            iccid=record.iccid,
            campaign_wave=campaign_wave_key(record.campaign_id, record.wave),
            campaign_id=record.campaign_id,
            wave=record.wave,
            status=record.status.value,
            at=record.at,
            reason=record.reason.value if record.reason else None,
            attempts=record.attempts,
        )
        try:
            item.save(condition=CampaignSendModel.iccid.does_not_exist())
        except PutError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def claim(self, campaign_id: str, wave: int, iccid: str, at: datetime) -> SendRecord | None:
        record = SendRecord(iccid=iccid, campaign_id=campaign_id, wave=wave, status=SendStatus.CLAIMED, at=at)
        return record if self._create(record) else None

    def finish(
        self,
        record: SendRecord,
        status: SendStatus,
        at: datetime,
        *,
        reason: SkipReason | None = None,
        message_id: str | None = None,
        attempts: int = 0,
    ) -> SendRecord:
        item = CampaignSendModel(
            iccid=record.iccid, campaign_wave=campaign_wave_key(record.campaign_id, record.wave)
        )
        actions: list[Action] = [
            CampaignSendModel.status.set(status.value),
            CampaignSendModel.at.set(at),
            CampaignSendModel.attempts.set(attempts),
        ]
        actions.append(
            CampaignSendModel.reason.set(reason.value) if reason else CampaignSendModel.reason.remove()
        )
        if message_id:
            actions.append(CampaignSendModel.message_id.set(message_id))
        try:
            item.update(actions=actions, condition=CampaignSendModel.status == SendStatus.CLAIMED.value)
        except UpdateError as err:
            if _condition_failed(err):
                raise Conflict(
                    "campaign.send_recorded",
                    "该发送已记录",
                    "This send is recorded already",
                    details={"campaign_id": record.campaign_id, "wave": record.wave},
                ) from err
            raise
        return SendRecord(
            iccid=record.iccid,
            campaign_id=record.campaign_id,
            wave=record.wave,
            status=status,
            at=at,
            reason=reason,
            message_id=message_id,
            attempts=attempts,
        )

    def skip(self, campaign_id: str, wave: int, iccid: str, reason: SkipReason, at: datetime) -> bool:
        return self._create(
            SendRecord(
                iccid=iccid,
                campaign_id=campaign_id,
                wave=wave,
                status=SendStatus.SKIPPED,
                at=at,
                reason=reason,
            )
        )

    def records_of(self, iccid: str) -> list[SendRecord]:
        return [_record(item) for item in CampaignSendModel.query(iccid)]

    def mark_registered(self, record: SendRecord, at: datetime) -> bool:
        item = CampaignSendModel(
            iccid=record.iccid, campaign_wave=campaign_wave_key(record.campaign_id, record.wave)
        )
        try:
            item.update(
                actions=[CampaignSendModel.registered_at.set(at)],
                condition=(CampaignSendModel.status == SendStatus.SENT.value)
                & CampaignSendModel.registered_at.does_not_exist(),
            )
        except UpdateError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def count(self, campaign_id: str, wave: int, **counts: int) -> None:
        actions: list[Action] = []
        for name, n in counts.items():
            if name not in COUNTERS and name not in SKIP_COUNTERS:
                raise ValueError(f"unknown counter {name}")
            if n:
                actions.append(getattr(CampaignWaveModel, name).add(n))
        if not actions:
            return
        stats = CampaignWaveModel(campaign_wave=campaign_wave_key(campaign_id, wave), part=STATS_PART)
        for attempt in range(COUNT_ATTEMPTS):
            try:
                stats.update(actions=actions)
                return
            except (UpdateError, Unavailable) as err:
                # Refused (nothing added) for a transaction in flight on the item: wait a little, again.
                if not _transaction_conflict(err) or attempt + 1 == COUNT_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, COUNT_PAUSE_SECONDS * 2**attempt))  # jitter; nothing secret

    def progress(self, campaign_id: str, wave: int) -> WaveProgress:
        """The wave's counters: the ``stats`` item's, with ``called`` from the ``calls`` item added (one
        strongly consistent BatchGetItem of both)."""
        key = campaign_wave_key(campaign_id, wave)
        items = {
            item.part: item
            for item in CampaignWaveModel.batch_get(
                [(key, STATS_PART), (key, CALLS_PART)], consistent_read=True
            )
        }
        stats, calls = items.get(STATS_PART), items.get(CALLS_PART)
        counts = {name: int(getattr(stats, name, None) or 0) for name in COUNTERS}
        counts["called"] += int(getattr(calls, "called", None) or 0)
        skipped = {
            name.removeprefix("skipped_"): int(value)
            for name in SKIP_COUNTERS
            if (value := getattr(stats, name, None)) is not None and int(value) > 0
        }
        return WaveProgress(campaign_id=campaign_id, wave=wave, skipped=skipped, **counts)

    def plan_cursor(self, campaign_id: str, wave: int, shard: str) -> tuple[str | None, bool]:
        try:
            item = CampaignWaveModel.get(
                campaign_wave_key(campaign_id, wave), f"shard#{shard}", consistent_read=True
            )
        except CampaignWaveModel.DoesNotExist:
            return None, False
        return item.cursor, bool(item.done)

    def save_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, cursor: str | None, done: bool
    ) -> None:
        CampaignWaveModel(
            campaign_wave=campaign_wave_key(campaign_id, wave),
            part=f"shard#{shard}",
            cursor=cursor,
            done=done,
        ).save()

    def advance_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, after: str | None, cursor: str | None, done: bool
    ) -> bool:
        model = CampaignWaveModel
        not_done = model.done.does_not_exist() | (model.done == False)  # noqa: E712
        if after is None:
            guard = model.part.does_not_exist() | (model.cursor.does_not_exist() & not_done)
        else:
            guard = (model.cursor == after) & not_done
        try:
            model(
                campaign_wave=campaign_wave_key(campaign_id, wave),
                part=f"shard#{shard}",
                cursor=cursor,
                done=done,
            ).save(condition=guard)
        except PutError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def shards_done(self, campaign_id: str, wave: int) -> Iterator[str]:
        """The shards of a wave whose plan is done (one query of the wave's items)."""
        for item in CampaignWaveModel.query(
            campaign_wave_key(campaign_id, wave),
            CampaignWaveModel.part.startswith("shard#"),
            consistent_read=True,
        ):
            if item.done:
                yield item.part.removeprefix("shard#")


class DynamoRateLimiter(RateLimiter):
    """The token bucket of ``key`` (a campaign id): item ``part="bucket"`` under ``f"{key}#rate"``."""

    def acquire(self, key: str, tokens: int, rate_per_second: float, now: float) -> float:
        capacity = max(float(rate_per_second), float(tokens), 1.0)
        for _ in range(BUCKET_ATTEMPTS):
            try:
                item = CampaignWaveModel.get(rate_key(key), BUCKET_PART, consistent_read=True)
            except CampaignWaveModel.DoesNotExist:
                item = None
            if item is None:
                held, version = capacity, 0
            else:
                held = float(item.tokens or 0.0)
                held = min(capacity, held + max(0.0, now - float(item.refilled_at or now)) * rate_per_second)
                version = int(item.version or 0)
            if held + 1e-9 < tokens:  # (float dust never makes a caller wait; waits are whole microseconds)
                return math.ceil((tokens - held) / rate_per_second * 1e6) / 1e6
            fresh = CampaignWaveModel(
                campaign_wave=rate_key(key),
                part=BUCKET_PART,
                tokens=max(0.0, held - tokens),
                # never back in time: a sender that lost a race may hold an older ``now`` than the winner
                refilled_at=now if item is None else max(now, float(item.refilled_at or now)),
                version=version + 1,
            )
            condition = (
                CampaignWaveModel.part.does_not_exist()
                if item is None
                else CampaignWaveModel.version == version
            )
            try:
                fresh.save(condition=condition)
            except PutError as err:
                if _condition_failed(err):
                    continue  # another sender took tokens meanwhile: read again
                raise
            return 0.0
        return 1.0 / rate_per_second  # contended: wait for one token's time and try again
