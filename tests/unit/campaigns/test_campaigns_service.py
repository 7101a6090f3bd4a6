"""The campaigns service on fakes: what a campaign must be, its statuses, its schedules and its waves'
start (idempotent), resume from the saved cursors, progress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.campaigns.domain import Campaign, CampaignStatus, SkipReason, WaveStatus
from chalicelib.campaigns.service import CampaignDraft, Campaigns, progress_view
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES, CardState
from chalicelib.kernel.errors import Conflict, InvalidField, NotFound, ValidationErrors
from tests.fakes.campaign_sends import FakeSendLedger
from tests.fakes.campaign_store import FakeCampaignStore, FakeWaveScheduler, RecordingQueue
from tests.fakes.campaign_targets import FakeBackfillTargets
from tests.fakes.clock import FakeClock

LINK = "https://h5.example.cn/r"
TEMPLATE = "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock(datetime(2026, 3, 1, 2, 0, tzinfo=UTC))
        self.store = FakeCampaignStore()
        self.scheduler = FakeWaveScheduler()
        self.ledger = FakeSendLedger()
        self.queue = RecordingQueue()
        self.targets = FakeBackfillTargets()
        self.ids = iter(f"cp_{i:024x}" for i in range(1, 100))
        self.service = Campaigns(
            self.store,
            self.scheduler,
            self.ledger,
            self.queue,
            self.targets,
            link=LINK,
            max_chars=134,
            max_rate=500,
            clock=self.clock,
            new_id=lambda: next(self.ids),
        )


def draft(**changes: object) -> CampaignDraft:
    base = CampaignDraft(
        name="2026 补登记",
        deadline="2026-06-30",
        waves=[60, 30, 7, 1],
        template=TEMPLATE,
        channels=["sms", "call"],
        rate_per_second=50,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    return World()


def test_a_campaign_is_stored_active_with_one_schedule_per_wave_ahead(world: World) -> None:
    campaign = world.service.create(draft(), by="admin-1")
    assert world.store.get(campaign.campaign_id) == campaign
    assert campaign.status is CampaignStatus.ACTIVE
    assert campaign.created_by == "admin-1"
    assert sorted(world.scheduler.schedules.values()) == sorted(
        (campaign.campaign_id, w.index, w.scheduled_at) for w in campaign.waves
    )


def test_a_schedule_that_cannot_be_made_leaves_no_schedule_and_the_campaign_stopped(world: World) -> None:
    real = world.scheduler.schedule

    def third_fails(campaign_id: str, wave: int, at: datetime) -> str:
        if wave == 3:
            raise RuntimeError("scheduler unavailable")
        return real(campaign_id, wave, at)

    world.scheduler.schedule = third_fails  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.service.create(draft(), by="admin-1")
    assert world.scheduler.schedules == {}
    (stored,) = world.store.campaigns.values()
    assert stored.status is CampaignStatus.STOPPED


def test_waves_already_past_are_missed_and_not_scheduled(world: World) -> None:
    world.clock.now = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)
    campaign = world.service.create(draft(), by="admin-1")
    assert [w.status for w in campaign.waves][:2] == [WaveStatus.MISSED, WaveStatus.MISSED]
    assert sorted(w for _, w, _ in world.scheduler.schedules.values()) == [3, 4]


def test_several_bad_fields_are_refused_together_and_nothing_is_stored(world: World) -> None:
    bad = draft(
        name=" ",
        deadline="2026-02-01",
        waves=[7, 7],
        channels=["call"],
        rate_per_second=501,
        send_time="25:00",
        template="no link",
    )
    with pytest.raises(ValidationErrors) as refused:
        world.service.create(bad, by="admin-1")
    fields = {(e.field, e.code) for e in refused.value.errors}
    assert fields == {
        ("name", "campaign.invalid_name"),
        ("deadline", "campaign.deadline_past"),
        ("waves", "campaign.invalid_waves"),
        ("channels", "campaign.invalid_channels"),
        ("rate_per_second", "campaign.invalid_rate"),
        ("send_time", "campaign.invalid_time"),
        ("template", "campaign.template_no_link"),
    }
    assert world.store.campaigns == {}
    assert world.scheduler.schedules == {}


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"waves": [0, 7]}, "waves", "campaign.invalid_waves"),
        ({"waves": [366]}, "waves", "campaign.invalid_waves"),
        ({"waves": []}, "waves", "campaign.invalid_waves"),
        ({"rate_per_second": 0}, "rate_per_second", "campaign.invalid_rate"),
        ({"channels": ["sms", "fax"]}, "channels", "campaign.invalid_channels"),
        ({"deadline": "30/06/2026"}, "deadline", "campaign.invalid_deadline"),
        ({"quiet_start": "9pm"}, "quiet_hours", "campaign.invalid_time"),
        ({"template": "请登记 {link}"}, "template", "campaign.template_no_vin"),
        ({"attribution_days": 0}, "attribution_days", "campaign.invalid_attribution_days"),
    ],
)
def test_one_bad_field_is_refused_with_its_code(
    world: World, changes: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(InvalidField) as refused:
        world.service.create(draft(**changes), by="admin-1")
    assert (refused.value.field, refused.value.code) == (field, code)
    assert world.store.campaigns == {}


def test_pause_keeps_the_schedules_and_stop_cancels_the_waves_not_started(world: World) -> None:
    campaign = world.service.create(draft(), by="admin-1")
    world.service.pause(campaign.campaign_id)
    assert len(world.scheduler.schedules) == 4
    with pytest.raises(Conflict) as twice:
        world.service.pause(campaign.campaign_id)
    assert twice.value.code == "campaign.not_active"
    stopped = world.service.stop(campaign.campaign_id)
    assert stopped.status is CampaignStatus.STOPPED
    assert {w.status for w in stopped.waves} == {WaveStatus.CANCELLED}
    assert world.scheduler.schedules == {}
    with pytest.raises(Conflict) as again:
        world.service.stop(campaign.campaign_id)
    assert again.value.code == "campaign.finished"
    with pytest.raises(Conflict) as resumed:
        world.service.resume(campaign.campaign_id)
    assert resumed.value.code == "campaign.not_paused"


def test_starting_a_wave_queues_one_plan_per_shard_and_a_second_start_nothing(world: World) -> None:
    campaign = world.service.create(draft(), by="admin-1")
    cid = campaign.campaign_id
    started = world.service.start_wave(cid, 1)
    assert started.wave(1).status is WaveStatus.RUNNING
    assert started.wave(1).started_at == world.clock.now
    assert started.current_wave == 1
    assert [m["shard"] for m in world.queue.sent] == list(BACKFILL_SHARD_NAMES)
    assert {(m["kind"], m["campaign_id"], m["wave"]) for m in world.queue.sent} == {("plan_shard", cid, 1)}
    world.ledger.save_plan_cursor(cid, 1, "00", "after-page-1", False)  # a planner is at work
    world.service.start_wave(cid, 1)  # the schedule's message delivered twice
    assert len(world.queue.sent) == 16


def test_a_start_that_failed_before_queueing_its_plans_queues_them_when_its_message_comes_again(
    world: World,
) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    real_send = world.queue.send_batch

    def queue_down(bodies: Sequence[Mapping[str, Any]]) -> None:
        raise RuntimeError("queue unavailable")

    world.queue.send_batch = queue_down  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.service.start_wave(cid, 1)  # the wave is saved running, its plans never queued
    assert world.service.get(cid).wave(1).status is WaveStatus.RUNNING
    world.queue.send_batch = real_send  # type: ignore[method-assign]
    world.service.start_wave(cid, 1)  # SQS delivers the schedule's message again
    assert [m["shard"] for m in world.queue.sent] == list(BACKFILL_SHARD_NAMES)


def test_a_later_wave_started_becomes_current_and_the_earlier_is_planned_as_far_as_it_went(
    world: World,
) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.service.start_wave(cid, 1)
    both = world.service.run_wave(cid, 2)
    assert both.current_wave == 2
    assert [both.wave(i).status for i in (1, 2)] == [WaveStatus.PLANNED, WaveStatus.RUNNING]
    with pytest.raises(Conflict):  # an earlier wave cannot be started behind it
        world.service.run_wave(cid, 1)
    assert FakeWaveScheduler.name_of(cid, 2) in world.scheduler.cancelled


def test_run_wave_starts_a_missed_wave_but_not_a_running_one_nor_in_a_paused_campaign(
    world: World,
) -> None:
    world.clock.now = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)
    cid = world.service.create(draft(), by="admin-1").campaign_id
    assert world.service.run_wave(cid, 2).wave(2).status is WaveStatus.RUNNING
    with pytest.raises(Conflict) as again:
        world.service.run_wave(cid, 2)
    assert again.value.code == "campaign.wave_started"
    with pytest.raises(NotFound):
        world.service.run_wave(cid, 9)
    world.service.pause(cid)
    with pytest.raises(Conflict) as paused:
        world.service.run_wave(cid, 3)
    assert paused.value.code == "campaign.not_active"


def test_resume_queues_only_the_unfinished_shards_of_the_running_wave(world: World) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.service.start_wave(cid, 1)
    world.queue.sent.clear()
    for shard in BACKFILL_SHARD_NAMES[:10]:
        world.ledger.save_plan_cursor(cid, 1, shard, None, True)
    world.ledger.save_plan_cursor(cid, 1, "10", "cursor-after-page-3", False)
    world.service.pause(cid)
    world.service.resume(cid)
    assert [(m["wave"], m["shard"]) for m in world.queue.sent] == [(1, s) for s in BACKFILL_SHARD_NAMES[10:]]


def test_a_wave_whose_time_comes_while_paused_waits_and_supersedes_the_earlier_on_resume(
    world: World,
) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.service.start_wave(cid, 1)
    world.service.pause(cid)
    world.queue.sent.clear()
    world.service.start_wave(cid, 2)  # wave 2's schedule fires while paused
    assert world.queue.sent == []
    waiting = world.store.get(cid)
    assert waiting is not None
    assert waiting.wave(2).status is WaveStatus.RUNNING
    assert waiting.current_wave == 2
    world.service.resume(cid)
    assert {(m["wave"], m["shard"]) for m in world.queue.sent} == {(2, s) for s in BACKFILL_SHARD_NAMES}


def test_a_stopped_campaign_starts_no_wave(world: World) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.service.stop(cid)
    world.service.start_wave(cid, 1)
    assert world.queue.sent == []


def test_the_last_wave_planned_completes_the_campaign_which_may_still_be_stopped(world: World) -> None:
    world.clock.now = datetime(2026, 6, 28, 2, 0, tzinfo=UTC)  # only wave 4 (1 day before) ahead
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.service.start_wave(cid, 4)
    done = world.service.mark_planned(cid, 4)
    assert done.wave(4).status is WaveStatus.PLANNED
    assert done.status is CampaignStatus.COMPLETED
    # its last wave's messages may still be queued (quiet hours, the rate): stopping skips them
    assert world.service.stop(cid).status is CampaignStatus.STOPPED
    with pytest.raises(Conflict):
        world.service.stop(cid)


def test_a_save_that_loses_a_race_is_retried_on_the_campaign_as_stored(world: World) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    real_save = world.store.save
    raced: list[bool] = []

    def save_after_someone_else(campaign: Campaign) -> Campaign:
        if not raced:
            raced.append(True)
            stored = world.store.get(cid)
            assert stored is not None
            real_save(replace(stored, current_wave=0))  # another writer moves the version
        return real_save(campaign)

    world.store.save = save_after_someone_else  # type: ignore[method-assign]
    assert world.service.pause(cid).status is CampaignStatus.PAUSED


def test_progress_reads_each_wave_from_the_ledger_and_sums_the_totals(world: World) -> None:
    cid = world.service.create(draft(), by="admin-1").campaign_id
    world.ledger.count(cid, 1, targeted=10, sent=7, failed=1, skipped_no_phone=2)
    world.ledger.count(cid, 2, targeted=5, sent=4, skipped_opted_out=1, registered=3)
    view = progress_view(world.service.progress(cid))
    assert view["waves"][0]["sent"] == 7
    assert view["waves"][0]["skipped"] == {SkipReason.NO_PHONE.value: 2}
    assert view["totals"]["targeted"] == 15
    assert view["totals"]["sent"] == 11
    assert view["totals"]["registered"] == 3
    assert view["totals"]["skipped"] == {"no_phone": 2, "opted_out": 1}


def test_the_target_count_counts_each_shard_of_the_index(world: World) -> None:
    for i in range(40):
        world.targets.put(f"8986{i:016d}", vin=f"LSVAU2180N2{i:06d}")
    world.targets.set_state("8986" + "0" * 16, CardState.REGISTERED)
    counts = world.service.target_count()
    assert set(counts) == set(BACKFILL_SHARD_NAMES)
    assert sum(counts.values()) == 39
