"""Backfill campaigns (补登记, 第二十二条): define one, list it, pause, resume or stop it, start a wave
(when its schedule fires, or now by hand) and read its progress.

Starting a wave marks it ``running`` and queues one ``plan_shard`` message per shard of the backfill
index on the campaign-waves queue; the planner (``campaigns.planner``) reads each shard page by page and
the sender (``campaigns.sender``) messages each target at most once per wave.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from chalicelib.campaigns.domain import (
    CAMPAIGN_ID_PREFIX,
    Campaign,
    CampaignStatus,
    Channel,
    QuietHours,
    Wave,
    WaveProgress,
    WaveStatus,
)
from chalicelib.campaigns.errors import campaign_not_found, invalid, wave_not_found
from chalicelib.campaigns.ports import (
    BackfillTargets,
    CampaignQueue,
    CampaignStore,
    SendLedger,
    WaveScheduler,
)
from chalicelib.campaigns.rules import plan_waves, validate_template
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
from chalicelib.kernel.clock import CHINA, Clock, china_day, utc_now
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, ValidationErrors

MAX_NAME = 64
MAX_WAVES = 12
MAX_DAYS_BEFORE = 365
DEFAULT_SEND_TIME = time(10, 0)
DEFAULT_ATTRIBUTION_DAYS = 14
MAX_ATTRIBUTION_DAYS = 90
#: Tries of a save that lost a race with another writer of the campaign (the planner marking a wave).
_SAVE_TRIES = 5
_COUNTERS = ("targeted", "sent", "failed", "called", "registered", "deferred")


@dataclass(frozen=True)
class CampaignDraft:
    """A campaign as asked for, before any rule is checked (texts as they came)."""

    name: str
    deadline: str  # YYYY-MM-DD, China
    waves: Sequence[int]
    template: str
    channels: Sequence[str] = ("sms",)
    rate_per_second: int = 50
    send_time: str = "10:00"
    quiet_start: str | None = None
    quiet_end: str | None = None
    attribution_days: int = DEFAULT_ATTRIBUTION_DAYS


@dataclass(frozen=True)
class CampaignProgress:
    campaign_id: str
    waves: tuple[tuple[Wave, WaveProgress], ...]
    totals: WaveProgress


def _not_active(campaign: Campaign) -> Conflict:
    return Conflict(
        "campaign.not_active",
        "补登记活动不在进行中",
        "The campaign is not active",
        details={"campaign_id": campaign.campaign_id, "status": campaign.status.value},
    )


def _not_paused(campaign: Campaign) -> Conflict:
    return Conflict(
        "campaign.not_paused",
        "补登记活动未暂停",
        "The campaign is not paused",
        details={"campaign_id": campaign.campaign_id, "status": campaign.status.value},
    )


def _finished(campaign: Campaign) -> Conflict:
    return Conflict(
        "campaign.finished",
        "补登记活动已结束",
        "The campaign has ended already",
        details={"campaign_id": campaign.campaign_id, "status": campaign.status.value},
    )


def _wave_not_startable(campaign: Campaign, wave: Wave) -> Conflict:
    return Conflict(
        "campaign.wave_started",
        "该轮次已开始或已取消",
        "The wave has started already or was cancelled",
        details={"campaign_id": campaign.campaign_id, "wave": wave.index, "status": wave.status.value},
    )


def _parse_hhmm(text: str | None, field: str, errors: list[InvalidField]) -> time | None:
    try:
        if text is None or not re.fullmatch(r"[0-9]{2}:[0-9]{2}", text):  # ASCII digits only
            raise ValueError(text)
        return time(int(text[:2]), int(text[3:]))
    except ValueError:
        errors.append(
            invalid(field, "invalid_time", "时间格式应为 HH:MM（北京时间）", "A time is HH:MM, China time")
        )
        return None


def _raise(errors: list[InvalidField]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValidationErrors(errors)


def _sum(campaign_id: str, wave: int, parts: Sequence[WaveProgress]) -> WaveProgress:
    skipped: dict[str, int] = {}
    for part in parts:
        for reason, n in part.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    counters = {name: sum(getattr(p, name) for p in parts) for name in _COUNTERS}
    return WaveProgress(campaign_id, wave, skipped=skipped, **counters)


class Campaigns:
    """The campaigns' service: definitions and statuses in ``store``, schedules in ``scheduler``, the
    waves' work on ``waves_queue`` and its counters in ``ledger``."""

    def __init__(
        self,
        store: CampaignStore,
        scheduler: WaveScheduler,
        ledger: SendLedger,
        waves_queue: CampaignQueue,
        targets: BackfillTargets,
        *,
        link: str,
        max_chars: int,
        max_rate: int,
        clock: Clock = utc_now,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._ledger = ledger
        self._queue = waves_queue
        self._targets = targets
        self._link = link
        self._max_chars = max_chars
        self._max_rate = max_rate
        self._clock = clock
        self._new_id = new_id or (lambda: CAMPAIGN_ID_PREFIX + secrets.token_hex(12))

    # -- define -------------------------------------------------------------------------------------

    def check(self, draft: CampaignDraft) -> Campaign:
        """The campaign ``draft`` describes, every rule checked (one ``InvalidField``, or
        ``ValidationErrors`` for several); nothing is stored."""
        errors: list[InvalidField] = []
        now = self._clock()
        name = draft.name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():  # no control characters
            errors.append(
                invalid(
                    "name",
                    "invalid_name",
                    f"活动名称为 1–{MAX_NAME} 个字符",
                    f"The name has 1 to {MAX_NAME} characters",
                )
            )
        deadline: date | None = None
        try:
            deadline = date.fromisoformat(draft.deadline)
        except (TypeError, ValueError):
            errors.append(
                invalid(
                    "deadline",
                    "invalid_deadline",
                    "截止日期格式应为 YYYY-MM-DD",
                    "The deadline is YYYY-MM-DD",
                )
            )
        if deadline is not None and deadline <= china_day(now):
            errors.append(
                invalid(
                    "deadline",
                    "deadline_past",
                    "截止日期须晚于今天（北京时间）",
                    "The deadline must be after today (China time)",
                )
            )
        waves = list(draft.waves)
        if (
            not waves
            or len(waves) > MAX_WAVES
            or len(set(waves)) != len(waves)
            or any(isinstance(d, bool) or not 1 <= d <= MAX_DAYS_BEFORE for d in waves)
        ):
            errors.append(
                invalid(
                    "waves",
                    "invalid_waves",
                    f"轮次为 1–{MAX_WAVES} 个互不相同的天数（截止日前 1–{MAX_DAYS_BEFORE} 天）",
                    f"Waves are 1 to {MAX_WAVES} distinct days before the deadline, "
                    f"each 1 to {MAX_DAYS_BEFORE}",
                )
            )
        known = {c.value for c in Channel}
        if (
            Channel.SMS.value not in draft.channels
            or not set(draft.channels) <= known
            or len(set(draft.channels)) != len(draft.channels)
        ):
            errors.append(
                invalid(
                    "channels",
                    "invalid_channels",
                    "渠道须包含 sms，可另加 call",
                    "Channels must include sms and may add call",
                )
            )
        if isinstance(draft.rate_per_second, bool) or not 1 <= draft.rate_per_second <= self._max_rate:
            errors.append(
                invalid(
                    "rate_per_second",
                    "invalid_rate",
                    f"发送速率为每秒 1–{self._max_rate} 条",
                    f"The rate is 1 to {self._max_rate} messages per second",
                )
            )
        if not 1 <= draft.attribution_days <= MAX_ATTRIBUTION_DAYS:
            errors.append(
                invalid(
                    "attribution_days",
                    "invalid_attribution_days",
                    f"归因窗口为 1–{MAX_ATTRIBUTION_DAYS} 天",
                    f"The attribution window is 1 to {MAX_ATTRIBUTION_DAYS} days",
                )
            )
        send_time = _parse_hhmm(draft.send_time, "send_time", errors)
        quiet = QuietHours()
        if draft.quiet_start is not None or draft.quiet_end is not None:
            start = _parse_hhmm(draft.quiet_start or quiet.start.strftime("%H:%M"), "quiet_hours", errors)
            end = _parse_hhmm(draft.quiet_end or quiet.end.strftime("%H:%M"), "quiet_hours", errors)
            if start is not None and end is not None:
                quiet = QuietHours(start=start, end=end)
        try:
            validate_template(draft.template, link=self._link, max_chars=self._max_chars)
        except InvalidField as error:
            errors.append(error)
        _raise(errors)
        assert deadline is not None
        assert send_time is not None
        return Campaign(
            campaign_id=self._new_id(),
            name=name,
            deadline=deadline,
            waves=plan_waves(deadline, waves, send_time, quiet, now),
            template=draft.template,
            channels=tuple(c for c in Channel if c.value in draft.channels),
            rate_per_second=draft.rate_per_second,
            quiet_hours=quiet,
            send_time=send_time,
            attribution_days=draft.attribution_days,
            status=CampaignStatus.ACTIVE,
            created_by="",
            created_at=now,
            updated_at=now,
        )

    def create(self, draft: CampaignDraft, by: str) -> Campaign:
        """Store the campaign and schedule each of its waves still ahead. When a schedule cannot be made
        the ones made are deleted and the campaign is stopped (no half-scheduled campaign stays active);
        the error is raised."""
        campaign = dataclasses.replace(self.check(draft), created_by=by)
        self._store.create(campaign)
        made: list[int] = []
        try:
            for wave in campaign.waves:
                if wave.status is WaveStatus.SCHEDULED:
                    self._scheduler.schedule(campaign.campaign_id, wave.index, wave.scheduled_at)
                    made.append(wave.index)
        except Exception:
            for index in made:
                self._scheduler.cancel(campaign.campaign_id, index)
            self.stop(campaign.campaign_id)
            raise
        return campaign

    # -- read ---------------------------------------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign:
        campaign = self._store.get(campaign_id)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        return campaign

    def list(self, cursor: str | None = None, limit: int = 50) -> tuple[list[Campaign], str | None]:
        return self._store.list(cursor, limit)

    def progress(self, campaign_id: str) -> CampaignProgress:
        """Each wave's counters (from the ledger) and their totals."""
        campaign = self.get(campaign_id)
        rows = tuple((w, self._ledger.progress(campaign_id, w.index)) for w in campaign.waves)
        return CampaignProgress(campaign_id, rows, _sum(campaign_id, 0, [p for _, p in rows]))

    def target_count(self) -> dict[str, int]:
        """Targets in the backfill index now, by shard (the plan's estimate; one index read per target,
        or a count query where the index offers one)."""
        return {shard: self._targets.count(shard) for shard in BACKFILL_SHARD_NAMES}

    # -- change -------------------------------------------------------------------------------------

    def _change(self, campaign_id: str, change: Callable[[Campaign], Campaign | None]) -> Campaign:
        """Apply ``change`` to the campaign as stored and save it, again if another writer won the race;
        ``change`` returns None to leave the campaign as it is."""
        for attempt in range(_SAVE_TRIES):
            campaign = self.get(campaign_id)
            changed = change(campaign)
            if changed is None:
                return campaign
            try:
                return self._store.save(dataclasses.replace(changed, updated_at=self._clock()))
            except DomainError as error:
                if error.code != "campaign.changed" or attempt == _SAVE_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def pause(self, campaign_id: str) -> Campaign:
        """Nothing more is planned or sent until resumed; the schedules stay (a wave whose time comes
        meanwhile starts, and waits)."""

        def change(campaign: Campaign) -> Campaign:
            if campaign.status is not CampaignStatus.ACTIVE:
                raise _not_active(campaign)
            return dataclasses.replace(campaign, status=CampaignStatus.PAUSED)

        return self._change(campaign_id, change)

    def resume(self, campaign_id: str) -> Campaign:
        """Active again: the current wave's unfinished shards, if it runs, are queued anew (the planner
        continues from their saved cursors; the ledger keeps any card from a second message)."""

        def change(campaign: Campaign) -> Campaign:
            if campaign.status is not CampaignStatus.PAUSED:
                raise _not_paused(campaign)
            return dataclasses.replace(campaign, status=CampaignStatus.ACTIVE)

        campaign = self._change(campaign_id, change)
        for wave in campaign.waves:
            # a running wave a later one superseded is not planned further (its sends are skipped)
            if wave.status is WaveStatus.RUNNING and wave.index >= campaign.current_wave:
                shards = [
                    shard
                    for shard in BACKFILL_SHARD_NAMES
                    if not self._ledger.plan_cursor(campaign_id, wave.index, shard)[1]
                ]
                self._send_plans(campaign_id, wave.index, shards)
        return campaign

    def stop(self, campaign_id: str) -> Campaign:
        """Final: the waves not yet started are cancelled with their schedules; messages already queued
        are skipped (``stopped``) by the sender."""

        def change(campaign: Campaign) -> Campaign:
            # A completed campaign may still have its last wave's sends queued: stopping it skips them.
            if campaign.status is CampaignStatus.STOPPED:
                raise _finished(campaign)
            waves = tuple(
                dataclasses.replace(w, status=WaveStatus.CANCELLED) if w.status is WaveStatus.SCHEDULED else w
                for w in campaign.waves
            )
            return dataclasses.replace(campaign, status=CampaignStatus.STOPPED, waves=waves)

        before = self.get(campaign_id)
        campaign = self._change(campaign_id, change)
        for wave in before.waves:
            if wave.status is WaveStatus.SCHEDULED:
                self._scheduler.cancel(campaign_id, wave.index)
        return campaign

    def run_wave(self, campaign_id: str, wave: int) -> Campaign:
        """Start ``wave`` now, off its schedule (a missed wave too); its schedule is cancelled."""
        campaign = self.get(campaign_id)
        if campaign.status is not CampaignStatus.ACTIVE:
            raise _not_active(campaign)
        target = self._wave(campaign, wave)
        if target.status not in (WaveStatus.SCHEDULED, WaveStatus.MISSED):
            raise _wave_not_startable(campaign, target)
        started = self.start_wave(campaign_id, wave, by_hand=True)
        if target.status is WaveStatus.SCHEDULED:
            self._scheduler.cancel(campaign_id, wave)
        return started

    def start_wave(self, campaign_id: str, wave: int, *, by_hand: bool = False) -> Campaign:
        """The wave's schedule fired (or ``run_wave``): mark it running, make it the current wave and
        queue one plan message per shard. A wave started already, cancelled or of a stopped campaign is
        left as it is (a schedule's message delivered twice starts nothing twice); a paused campaign's
        wave is marked running and planned when the campaign resumes."""
        started: list[bool] = []

        def change(campaign: Campaign) -> Campaign | None:
            started.clear()
            if campaign.status in (CampaignStatus.STOPPED, CampaignStatus.COMPLETED):
                return None
            target = self._wave(campaign, wave)
            startable = (WaveStatus.SCHEDULED, WaveStatus.MISSED) if by_hand else (WaveStatus.SCHEDULED,)
            if target.status not in startable:
                return None
            if wave < campaign.current_wave:  # a later wave runs: this one's messages would be superseded
                if by_hand:
                    raise _wave_not_startable(campaign, target)
                # its schedule fired after a later wave was run by hand: it is missed, not run
                waves = tuple(
                    dataclasses.replace(w, status=WaveStatus.MISSED) if w.index == wave else w
                    for w in campaign.waves
                )
                return dataclasses.replace(campaign, waves=waves)
            started.append(True)
            now = self._clock()
            # An earlier wave still running is superseded: its planning stops and its queued messages are
            # skipped, so it is planned as far as it goes (else it would hold the campaign open for ever).
            waves = tuple(
                dataclasses.replace(w, status=WaveStatus.RUNNING, started_at=now)
                if w.index == wave
                else dataclasses.replace(w, status=WaveStatus.PLANNED, planned_at=now)
                if w.index < wave and w.status is WaveStatus.RUNNING
                else w
                for w in campaign.waves
            )
            return dataclasses.replace(campaign, waves=waves, current_wave=max(campaign.current_wave, wave))

        campaign = self._change(campaign_id, change)
        if campaign.status is not CampaignStatus.ACTIVE:
            return campaign
        if started or self._plans_lost(campaign, wave):
            self._send_plans(campaign_id, wave, BACKFILL_SHARD_NAMES)
        return campaign

    def _plans_lost(self, campaign: Campaign, wave: int) -> bool:
        """Whether the wave runs but none of its shards was ever planned: the start that marked it running
        failed before its plan messages were queued, and the schedule's message came again."""
        target = self._wave(campaign, wave)
        return (
            target.status is WaveStatus.RUNNING
            and campaign.current_wave == wave
            and all(
                self._ledger.plan_cursor(campaign.campaign_id, wave, s) == (None, False)
                for s in BACKFILL_SHARD_NAMES
            )
        )

    def mark_planned(self, campaign_id: str, wave: int) -> Campaign:
        """Every shard of a running wave is planned: the wave becomes ``planned``, and the campaign
        ``completed`` when no wave of it is left to run."""

        def change(campaign: Campaign) -> Campaign | None:
            target = self._wave(campaign, wave)
            if target.status is not WaveStatus.RUNNING:
                return None
            now = self._clock()
            waves = tuple(
                dataclasses.replace(w, status=WaveStatus.PLANNED, planned_at=now) if w.index == wave else w
                for w in campaign.waves
            )
            done = all(w.status not in (WaveStatus.SCHEDULED, WaveStatus.RUNNING) for w in waves)
            status = (
                CampaignStatus.COMPLETED
                if done and campaign.status is CampaignStatus.ACTIVE
                else campaign.status
            )
            return dataclasses.replace(campaign, waves=waves, status=status)

        return self._change(campaign_id, change)

    # -- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _wave(campaign: Campaign, index: int) -> Wave:
        for w in campaign.waves:
            if w.index == index:
                return w
        raise wave_not_found(campaign.campaign_id, index)

    def _send_plans(self, campaign_id: str, wave: int, shards: Sequence[str]) -> None:
        bodies: list[dict[str, Any]] = [
            {"kind": "plan_shard", "campaign_id": campaign_id, "wave": wave, "shard": shard}
            for shard in shards
        ]
        if bodies:
            self._queue.send_batch(bodies)


def start_message(campaign_id: str, wave: int) -> dict[str, Any]:
    """The body a wave's schedule sends to the campaign-waves queue."""
    return {"kind": "start_wave", "campaign_id": campaign_id, "wave": wave}


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    """A campaign as the API and the CLI show it (times ISO 8601 UTC; send time and quiet hours China)."""
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "deadline": campaign.deadline.isoformat(),
        "status": campaign.status.value,
        "channels": [c.value for c in campaign.channels],
        "rate_per_second": campaign.rate_per_second,
        "send_time": _hhmm(campaign.send_time),
        "quiet_hours": {
            "start": _hhmm(campaign.quiet_hours.start),
            "end": _hhmm(campaign.quiet_hours.end),
        },
        "attribution_days": campaign.attribution_days,
        "template": campaign.template,
        "current_wave": campaign.current_wave,
        "waves": [
            {
                "index": w.index,
                "days_before": w.days_before,
                "scheduled_at": w.scheduled_at.isoformat(),
                "status": w.status.value,
                "deferred": w.deferred,
                "started_at": w.started_at.isoformat() if w.started_at else None,
                "planned_at": w.planned_at.isoformat() if w.planned_at else None,
            }
            for w in campaign.waves
        ],
        "created_at": campaign.created_at.isoformat(),
        "created_by": campaign.created_by,
    }


def _counters(p: WaveProgress) -> dict[str, Any]:
    return {
        "targeted": p.targeted,
        "sent": p.sent,
        "skipped": dict(sorted(p.skipped.items())),
        "failed": p.failed,
        "called": p.called,
        "registered": p.registered,
        "deferred": p.deferred,
    }


def progress_view(progress: CampaignProgress) -> dict[str, Any]:
    return {
        "campaign_id": progress.campaign_id,
        "waves": [{"wave": w.index, "status": w.status.value, **_counters(p)} for w, p in progress.waves],
        "totals": _counters(progress.totals),
    }


def china_time(at: datetime) -> str:
    """``at`` as China wall time, for people (``2026-06-29 10:00``)."""
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
