"""In-memory fakes of the send ledger and the rate limiter: the same conditions as the DynamoDB adapters
(a claim or skip refuses a card the wave has a record of; a finish moves only a ``claimed`` record; an
attribution happens once)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from chalicelib.campaigns.domain import SendRecord, SendStatus, SkipReason, WaveProgress
from chalicelib.campaigns.ports import RateLimiter, SendLedger
from chalicelib.kernel.errors import Conflict

COUNTERS = ("targeted", "sent", "failed", "called", "registered", "deferred")


class FakeSendLedger(SendLedger):
    """Records by (ICCID, campaign, wave), counters by (campaign, wave), cursors by (campaign, wave,
    shard). ``writes`` counts the conditional record writes (claims, skips, finishes)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, int], SendRecord] = {}
        self.counters: dict[tuple[str, int], dict[str, int]] = {}
        self.cursors: dict[tuple[str, int, str], tuple[str | None, bool]] = {}
        self.writes = 0

    def claim(self, campaign_id: str, wave: int, iccid: str, at: datetime) -> SendRecord | None:
        key = (iccid, campaign_id, wave)
        if key in self.records:
            return None
        self.writes += 1
        record = SendRecord(iccid=iccid, campaign_id=campaign_id, wave=wave, status=SendStatus.CLAIMED, at=at)
        self.records[key] = record
        return record

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
        key = (record.iccid, record.campaign_id, record.wave)
        current = self.records.get(key)
        if current is None or current.status is not SendStatus.CLAIMED:
            raise Conflict("campaign.send_recorded", "该发送已记录", "This send is recorded already")
        self.writes += 1
        done = replace(current, status=status, at=at, reason=reason, message_id=message_id, attempts=attempts)
        self.records[key] = done
        return done

    def skip(self, campaign_id: str, wave: int, iccid: str, reason: SkipReason, at: datetime) -> bool:
        key = (iccid, campaign_id, wave)
        if key in self.records:
            return False
        self.writes += 1
        self.records[key] = SendRecord(
            iccid=iccid, campaign_id=campaign_id, wave=wave, status=SendStatus.SKIPPED, at=at, reason=reason
        )
        return True

    def records_of(self, iccid: str) -> list[SendRecord]:
        return [r for (i, _, _), r in sorted(self.records.items()) if i == iccid]

    def mark_registered(self, record: SendRecord, at: datetime) -> bool:
        key = (record.iccid, record.campaign_id, record.wave)
        current = self.records.get(key)
        if current is None or current.status is not SendStatus.SENT or current.registered_at is not None:
            return False
        self.records[key] = replace(current, registered_at=at)
        return True

    def count(self, campaign_id: str, wave: int, **counts: int) -> None:
        counters = self.counters.setdefault((campaign_id, wave), {})
        for name, n in counts.items():
            if name not in COUNTERS and not name.startswith("skipped_"):
                raise ValueError(f"unknown counter {name}")
            counters[name] = counters.get(name, 0) + n

    def progress(self, campaign_id: str, wave: int) -> WaveProgress:
        counters = self.counters.get((campaign_id, wave), {})
        return WaveProgress(
            campaign_id=campaign_id,
            wave=wave,
            skipped={k.removeprefix("skipped_"): v for k, v in counters.items() if k.startswith("skipped_")},
            **{name: counters.get(name, 0) for name in COUNTERS},
        )

    def plan_cursor(self, campaign_id: str, wave: int, shard: str) -> tuple[str | None, bool]:
        return self.cursors.get((campaign_id, wave, shard), (None, False))

    def save_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, cursor: str | None, done: bool
    ) -> None:
        self.cursors[(campaign_id, wave, shard)] = (cursor, done)

    def advance_plan_cursor(
        self, campaign_id: str, wave: int, shard: str, after: str | None, cursor: str | None, done: bool
    ) -> bool:
        if self.cursors.get((campaign_id, wave, shard), (None, False)) != (after, False):
            return False
        self.cursors[(campaign_id, wave, shard)] = (cursor, done)
        return True

    # test helpers
    def statuses(self, campaign_id: str, wave: int) -> dict[str, SendStatus]:
        """ICCID → status of every record of one wave."""
        return {i: r.status for (i, c, w), r in self.records.items() if c == campaign_id and w == wave}


class FakeRateLimiter(RateLimiter):
    """A token bucket per key, refilled at the rate, holding at most one second's worth (at least one
    token), starting full; ``now`` is the caller's clock in seconds."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self.granted = 0

    def acquire(self, key: str, tokens: int, rate_per_second: float, now: float) -> float:
        capacity = max(float(rate_per_second), float(tokens), 1.0)
        held, at = self.buckets.get(key, (capacity, now))
        held = min(capacity, held + max(0.0, now - at) * rate_per_second)
        if held + 1e-9 >= tokens:  # (float dust never makes a caller wait a microsecond)
            self.buckets[key] = (max(0.0, held - tokens), now)
            self.granted += tokens
            return 0.0
        self.buckets[key] = (held, now)
        return math.ceil((tokens - held) / rate_per_second * 1e6) / 1e6
