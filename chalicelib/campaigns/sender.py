"""A wave's messages sent, one queued batch of targets at a time (补登记, 第二十二条).

Per batch the campaign is read once. A stopped campaign skips every target; a paused one, or quiet hours
(21:00–08:00 China), put the whole batch back for later (nothing recorded: quiet hours defer, never drop);
a batch of an earlier wave than the campaign's current one is skipped ``superseded``. Otherwise each
target is read again as it is now (one batch read) and its phone's opt-out looked up (one batch read): a
card registered (or pending) since the plan, out of service or opted out is skipped; a card with no phone
goes to the call list. A send is claimed first (a conditional write per card and wave), then the SMS is
sent through the campaign's token bucket with a few tries, then the outcome recorded: a batch delivered
twice sends nothing twice, and a claim left by a sender that died mid-send is finished ``unconfirmed``
and called rather than messaged again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.campaigns.domain import (
    CallEntry,
    CallReason,
    Campaign,
    CampaignStatus,
    Channel,
    SendRecord,
    SendStatus,
    SkipReason,
    Target,
    WaveStatus,
)
from chalicelib.campaigns.messages import QueuedTarget, SendBatch
from chalicelib.campaigns.ports import (
    BackfillTargets,
    CallList,
    CampaignStore,
    OptOuts,
    RateLimiter,
    SendLedger,
)
from chalicelib.campaigns.rules import in_quiet_hours, quiet_hours_end, render_message
from chalicelib.cards.domain.inventory import BACKFILL_STATES
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import china_day
from chalicelib.kernel.errors import Conflict, DomainError
from chalicelib.sms.domain import SmsUnavailable
from chalicelib.sms.ports import SmsSender

_TARGET_STATES = frozenset(s.value for s in BACKFILL_STATES)
#: Statuses of a record that mean the card was (or may have been) messaged.
_MESSAGED = frozenset({SendStatus.SENT, SendStatus.CLAIMED, SendStatus.UNCONFIRMED})
#: An earlier wave started this recently may still be sending: its cards are checked for a message
#: the same day before this wave messages them.
_OVERLAP_WINDOW = timedelta(days=2)


@dataclass(frozen=True)
class SendOutcome:
    """What became of one batch: handled (``defer_seconds`` None), or to be put back for that long."""

    defer_seconds: int | None = None
    cause: str | None = None  # "quiet_hours" | "paused"
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def deferred(self) -> bool:
        return self.defer_seconds is not None


class WaveSender:
    def __init__(
        self,
        *,
        targets: BackfillTargets,
        campaigns: CampaignStore,
        ledger: SendLedger,
        rate: RateLimiter,
        opt_outs: OptOuts,
        calls: CallList,
        sms: SmsSender,
        open_phone: Callable[[str], str],
        clock: Callable[[], datetime],
        sleep: Callable[[float], object],
        link: str,
        retries: int = 3,
        retry_backoff_seconds: float = 0.5,
        paused_recheck_seconds: int = 300,
        stale_claim_seconds: float = 120.0,
    ):
        self._targets = targets
        self._campaigns = campaigns
        self._ledger = ledger
        self._rate = rate
        self._opt_outs = opt_outs
        self._calls = calls
        self._sms = sms
        self._open_phone = open_phone
        self._clock = clock
        self._sleep = sleep
        self._link = link
        self._retries = max(1, retries)
        self._backoff = retry_backoff_seconds
        self._paused_recheck = paused_recheck_seconds
        self._stale_claim = timedelta(seconds=stale_claim_seconds)

    def handle(self, batch: SendBatch) -> SendOutcome:
        """Send (or skip, or defer) one queued batch of targets. An exception leaves the batch to be
        delivered again: what was recorded stays recorded."""
        campaign = self._campaigns.get(batch.campaign_id)
        if campaign is None:
            logger.warning(
                "campaign batch of an unknown campaign dropped", extra={"campaign_id": batch.campaign_id}
            )
            return SendOutcome()
        now = self._clock()
        if campaign.status is CampaignStatus.PAUSED:
            return self._defer(batch, self._paused_recheck, "paused")
        counts: Counter[str] = Counter()
        try:
            if campaign.status is CampaignStatus.STOPPED:
                self._skip_all(batch, SkipReason.STOPPED, counts)
            elif campaign.current_wave > batch.wave:
                self._skip_all(batch, SkipReason.SUPERSEDED, counts)
            elif in_quiet_hours(now, campaign.quiet_hours):
                until = quiet_hours_end(now, campaign.quiet_hours)
                return self._defer(batch, max(1, int((until - now).total_seconds()) + 1), "quiet_hours")
            else:
                self._send_all(campaign, batch, counts)
        finally:
            self._record(batch, counts)
        return SendOutcome(counts=tuple(sorted(counts.items())))

    # -- the outcomes -------------------------------------------------------------------------------------
    def _defer(self, batch: SendBatch, seconds: int, cause: str) -> SendOutcome:
        if cause == "quiet_hours":
            self._ledger.count(batch.campaign_id, batch.wave, deferred=len(batch.targets))
        emit(Metric.CAMPAIGN_SENDS_DEFERRED, len(batch.targets), campaign=batch.campaign_id, cause=cause)
        return SendOutcome(defer_seconds=seconds, cause=cause)

    def _record(self, batch: SendBatch, counts: Counter[str]) -> None:
        if not counts:
            return
        self._ledger.count(batch.campaign_id, batch.wave, **counts)
        if counts["sent"]:
            emit(Metric.CAMPAIGN_MESSAGES_SENT, counts["sent"], campaign=batch.campaign_id)
        if counts["failed"]:
            emit(Metric.CAMPAIGN_SEND_FAILURES, counts["failed"], campaign=batch.campaign_id)
        for name, n in counts.items():
            if name.startswith("skipped_") and n:
                emit(
                    Metric.CAMPAIGN_MESSAGES_SKIPPED,
                    n,
                    campaign=batch.campaign_id,
                    reason=name.removeprefix("skipped_"),
                )

    def _skip(self, batch: SendBatch, iccid: str, reason: SkipReason, counts: Counter[str]) -> None:
        if self._ledger.skip(batch.campaign_id, batch.wave, iccid, reason, self._clock()):
            counts[f"skipped_{reason.value}"] += 1

    def _skip_all(self, batch: SendBatch, reason: SkipReason, counts: Counter[str]) -> None:
        for target in batch.targets:
            self._skip(batch, target.iccid, reason, counts)

    def _call(
        self,
        campaign: Campaign,
        batch: SendBatch,
        target: QueuedTarget,
        phone: str | None,
        reason: CallReason,
    ) -> None:
        if Channel.CALL not in campaign.channels:
            return
        self._calls.add(
            CallEntry(
                campaign_id=campaign.campaign_id,
                wave=batch.wave,
                iccid=target.iccid,
                vin=target.vin,
                reason=reason,
                created_at=self._clock(),
                contact_phone_sealed=phone,
            )
        )

    # -- sending -----------------------------------------------------------------------------------------
    def _send_all(self, campaign: Campaign, batch: SendBatch, counts: Counter[str]) -> None:
        now = self._clock()
        current = self._targets.current(t.iccid for t in batch.targets)
        reachable: list[tuple[QueuedTarget, Target]] = []
        for queued in batch.targets:
            card = current.get(queued.iccid)
            # (a card retired since, scrapped or swapped out, is unregistered but out of the index)
            retired = card is not None and card.state in _TARGET_STATES and not card.indexed
            if card is None or card.in_service_since is None or retired:
                self._skip(batch, queued.iccid, SkipReason.NOT_IN_SERVICE, counts)
            elif card.state not in _TARGET_STATES:
                self._skip(batch, queued.iccid, SkipReason.REGISTERED, counts)
            else:
                reachable.append((queued, card))
        hashes = {h for q, c in reachable if (h := c.contact_phone_hash or q.phone_hash)}
        opted = self._opt_outs.opted_out(hashes) if hashes else set()
        to_send: list[tuple[QueuedTarget, str]] = []
        for queued, card in reachable:
            phone_hash = card.contact_phone_hash or queued.phone_hash
            sealed = card.contact_phone_sealed or queued.phone
            if phone_hash is not None and phone_hash in opted:
                self._skip(batch, queued.iccid, SkipReason.OPTED_OUT, counts)
            elif sealed is None:
                self._call(campaign, batch, queued, None, CallReason.NO_PHONE)
                self._skip(batch, queued.iccid, SkipReason.NO_PHONE, counts)
            else:
                to_send.append((queued, sealed))
        if not to_send:
            return
        overlapping = self._overlapping(campaign, batch.wave, now)
        # Tokens are taken for the batch at once, a second's worth at most at a time (one bucket write per
        # batch at a rate of ten or more a second).
        chunk = max(1, min(len(to_send), int(campaign.rate_per_second)))
        tokens = 0
        for index, (queued, sealed) in enumerate(to_send):
            if tokens == 0:
                tokens = min(chunk, len(to_send) - index)
                self._take_tokens(campaign, tokens)
            tokens -= 1
            if overlapping and self._messaged_today(queued.iccid, batch, now):
                self._skip(batch, queued.iccid, SkipReason.MESSAGED_TODAY, counts)
                continue
            record = self._ledger.claim(batch.campaign_id, batch.wave, queued.iccid, self._clock())
            if record is None:
                self._settle_interrupted(campaign, batch, queued, sealed, counts)
                continue
            self._send_one(campaign, batch, queued, sealed, record, counts)

    def _take_tokens(self, campaign: Campaign, tokens: int) -> None:
        """Wait until the campaign's bucket grants ``tokens`` (its rate shared by every sender)."""
        while True:
            wait = self._rate.acquire(
                campaign.campaign_id, tokens, float(campaign.rate_per_second), self._clock().timestamp()
            )
            if wait <= 0:
                return
            self._sleep(wait)

    def _send_one(
        self,
        campaign: Campaign,
        batch: SendBatch,
        queued: QueuedTarget,
        sealed: str,
        record: SendRecord,
        counts: Counter[str],
    ) -> None:
        text = render_message(campaign.template, vin=queued.vin, link=self._link, deadline=campaign.deadline)
        phone = self._open_phone(sealed)
        attempts = 0
        message_id: str | None = None
        while attempts < self._retries:
            attempts += 1
            try:
                message_id = self._sms.send(phone, text)
                break
            except SmsUnavailable:
                if attempts < self._retries:
                    self._sleep(self._backoff * attempts)
            except DomainError as err:  # a number the provider refuses outright: no use trying again
                logger.warning(
                    "campaign sms refused", extra={"campaign_id": campaign.campaign_id, "code": err.code}
                )
                break
        if message_id is not None:
            self._ledger.finish(
                record, SendStatus.SENT, self._clock(), message_id=message_id, attempts=attempts
            )
            counts["sent"] += 1
            return
        self._call(campaign, batch, queued, sealed, CallReason.SEND_FAILED)
        self._ledger.finish(record, SendStatus.FAILED, self._clock(), attempts=attempts)
        counts["failed"] += 1

    def _settle_interrupted(
        self, campaign: Campaign, batch: SendBatch, queued: QueuedTarget, sealed: str, counts: Counter[str]
    ) -> None:
        """The card has a record in this wave already. A claim left by a sender that stopped mid-send
        (older than a send can take) is finished ``unconfirmed`` and called: the SMS may have gone, so it
        is never sent again. Anything else was handled: nothing to do."""
        found = next(
            (
                r
                for r in self._ledger.records_of(queued.iccid)
                if r.campaign_id == batch.campaign_id and r.wave == batch.wave
            ),
            None,
        )
        if found is None or found.status is not SendStatus.CLAIMED:
            return
        if self._clock() - found.at < self._stale_claim:
            return  # another sender holds the claim right now
        self._call(campaign, batch, queued, sealed, CallReason.UNCONFIRMED)
        try:
            self._ledger.finish(found, SendStatus.UNCONFIRMED, self._clock(), attempts=found.attempts)
        except Conflict:
            return  # its sender finished it meanwhile
        counts["failed"] += 1  # not known to be sent: counted with the failures, called like them
        logger.warning(
            "campaign send unconfirmed",
            extra={"campaign_id": batch.campaign_id, "wave": batch.wave, "iccid_tail": queued.iccid[-4:]},
        )

    def _overlapping(self, campaign: Campaign, wave: int, now: datetime) -> bool:
        """Whether an earlier wave of the campaign may have messaged cards recently (waves overlap)."""
        return any(
            w.index < wave
            and w.started_at is not None
            and (w.status is WaveStatus.RUNNING or now - w.started_at < _OVERLAP_WINDOW)
            for w in campaign.waves
        )

    def _messaged_today(self, iccid: str, batch: SendBatch, now: datetime) -> bool:
        today = china_day(now)
        return any(
            r.status in _MESSAGED
            and china_day(r.at) == today
            and (r.campaign_id, r.wave) != (batch.campaign_id, batch.wave)
            for r in self._ledger.records_of(iccid)
        )
