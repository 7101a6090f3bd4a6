"""Waves on fakes: the planner reads the backfill index shard by shard and queues batches, the sender
messages each target once per wave through the token bucket, skips what is no longer a target, defers
quiet hours and pauses, survives being killed half-way, and attribution counts a registration once."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from chalicelib.campaigns.attribution import after_callback, attribute_registration
from chalicelib.campaigns.domain import (
    CallReason,
    Campaign,
    CampaignStatus,
    Channel,
    OptOut,
    QuietHours,
    SendStatus,
    SkipReason,
    Target,
    Wave,
    WaveStatus,
)
from chalicelib.campaigns.messages import (
    SendBatch,
    plan_shard_message,
    read_send_batch,
    send_batch_message,
)
from chalicelib.campaigns.planner import PlanOutcome, WavePlanner
from chalicelib.campaigns.sender import SendOutcome, WaveSender
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES, CardState
from chalicelib.cards.views import CallbackResult
from chalicelib.core import deps
from chalicelib.events.campaigns import handle_send_messages, handle_wave_messages
from chalicelib.operators.domain.outbox import CallbackNote
from chalicelib.sms.domain import send_failed
from chalicelib.sms.ports import SmsSender
from tests.fakes.campaign_reach import FakeCallList, FakeOptOuts
from tests.fakes.campaign_sends import FakeRateLimiter, FakeSendLedger
from tests.fakes.campaign_store import FakeCampaignStore, RecordingQueue
from tests.fakes.campaign_targets import FakeBackfillTargets
from tests.fakes.clock import FakeClock
from tests.fakes.sms import FakeSmsSender

CID = "cp_" + "0" * 23 + "1"
LINK = "https://h5.example.cn/r"
TEMPLATE = "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}"
#: 2026-03-02 10:00 China: outside quiet hours.
MORNING = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def phone_of(i: int) -> str:
    return f"138{i:08d}"


def campaign(**changes: Any) -> Campaign:
    base = Campaign(
        campaign_id=CID,
        name="2026 补登记",
        deadline=date(2026, 6, 30),
        waves=(
            Wave(1, 60, MORNING, status=WaveStatus.RUNNING, started_at=MORNING),
            Wave(2, 30, MORNING + timedelta(days=30)),
        ),
        template=TEMPLATE,
        channels=(Channel.SMS, Channel.CALL),
        rate_per_second=50,
        quiet_hours=QuietHours(),
        send_time=time(10, 0),
        attribution_days=14,
        status=CampaignStatus.ACTIVE,
        created_by="admin",
        created_at=MORNING - timedelta(days=1),
        updated_at=MORNING - timedelta(days=1),
        current_wave=1,
    )
    return replace(base, **changes)


class World:
    """Every port faked; the sleep moves the clock (the bucket's waits are seconds of the fake clock)."""

    def __init__(
        self, cards: int = 30, *, page_size: int = 7, budget: float = 1000.0, **changes: Any
    ) -> None:
        self.clock = FakeClock(MORNING)
        self.targets = FakeBackfillTargets()
        for i in range(cards):
            self.targets.put(
                f"8986{i:016d}",
                vin=f"LSVAU2180N2{i:06d}",
                phone_hash=f"h{i}",
                phone_sealed=f"sealed:{phone_of(i)}",
            )
        self.store = FakeCampaignStore()
        self.store.create(campaign(**changes))
        self.ledger = FakeSendLedger()
        self.rate = FakeRateLimiter()
        self.opt_outs = FakeOptOuts()
        self.calls = FakeCallList()
        self.sms: SmsSender = FakeSmsSender()
        self.sends = RecordingQueue()
        self.planned: list[tuple[str, int]] = []
        self.ticks = 0.0
        self.planner = WavePlanner(
            targets=self.targets,
            campaigns=self.store,
            ledger=self.ledger,
            sends=self.sends,
            on_planned=lambda cid, wave: self.planned.append((cid, wave)),
            timer=self._tick,
            targets_per_message=10,
            page_size=page_size,
            budget_seconds=budget,
        )
        self.sender = WaveSender(
            targets=self.targets,
            campaigns=self.store,
            ledger=self.ledger,
            rate=self.rate,
            opt_outs=self.opt_outs,
            calls=self.calls,
            sms=self.sms,
            open_phone=lambda sealed: sealed.removeprefix("sealed:"),
            clock=self.clock,
            sleep=lambda seconds: self.clock.advance(seconds=seconds),
            link=LINK,
            retries=3,
            paused_recheck_seconds=300,
        )

    def _tick(self) -> float:
        self.ticks += 1.0
        return self.ticks

    def plan(self, wave: int = 1) -> list[PlanOutcome]:
        return [self.planner.plan_shard(CID, wave, shard) for shard in BACKFILL_SHARD_NAMES]

    def queued(self) -> list[SendBatch]:
        """Everything queued so far as the planner queued it (one shard's targets per message), taken off
        the queue."""
        taken = [read_send_batch(body) for body in self.sends.sent]
        self.sends.sent.clear()
        return taken

    def batches(self) -> list[SendBatch]:
        """Everything queued so far, taken off the queue, in batches of ten (whatever their shard)."""
        taken = self.queued()
        targets = [t for b in taken for t in b.targets]
        wave = taken[0].wave if taken else 1
        return [SendBatch(CID, wave, tuple(targets[i : i + 10])) for i in range(0, len(targets), 10)]

    def drain(self) -> list[SendOutcome]:
        return [self.sender.handle(batch) for batch in self.batches()]

    def set_campaign(self, **changes: Any) -> None:
        self.store.campaigns[CID] = replace(self.store.campaigns[CID], **changes)

    @property
    def texts(self) -> list[tuple[str, str]]:
        assert isinstance(self.sms, FakeSmsSender)
        return self.sms.sent


def test_a_wave_messages_each_target_exactly_once_even_when_every_batch_comes_twice() -> None:
    w = World(cards=30)
    assert set(w.plan()) == {PlanOutcome.DONE}
    batches = w.batches()
    assert sum(len(b.targets) for b in batches) == 30
    assert all(len(b.targets) <= 10 for b in batches)
    for batch in batches + batches:  # every batch delivered twice
        w.sender.handle(batch)
    phones = Counter(phone for phone, _ in w.texts)
    assert len(phones) == 30
    assert set(phones.values()) == {1}
    assert set(w.ledger.statuses(CID, 1).values()) == {SendStatus.SENT}
    progress = w.ledger.progress(CID, 1)
    assert (progress.targeted, progress.sent, progress.failed) == (30, 30, 0)
    assert w.planned == [(CID, 1)]
    text = w.texts[0][1]
    assert LINK in text
    assert "回TD退订" in text
    assert "2026年6月30日" in text


def test_the_plan_reads_one_index_item_per_target_and_sends_a_message_per_ten() -> None:
    w = World(cards=200, page_size=50)
    w.plan()
    assert w.targets.reads == 200
    queued = w.queued()
    assert sum(len(b.targets) for b in queued) == 200
    assert len(queued) <= 200 // 10 + len(BACKFILL_SHARD_NAMES)


def test_a_sender_killed_half_way_and_redelivered_messages_no_card_twice_and_forgets_none() -> None:
    w = World(cards=10, page_size=100)
    w.plan()
    (batch,) = w.batches()

    class Killed(Exception):
        pass

    real = FakeSmsSender()
    calls = {"n": 0}

    class Dying(SmsSender):
        def send(self, phone: str, text: str) -> str:
            calls["n"] += 1
            if calls["n"] == 4:
                raise Killed  # the process dies inside the provider's call
            return real.send(phone, text)

    w.sender._sms = Dying()
    with pytest.raises(Killed):
        w.sender.handle(batch)
    assert len(real.sent) == 3
    w.clock.advance(seconds=400)  # the batch comes back after its visibility timeout
    w.sender.handle(batch)
    phones = Counter(phone for phone, _ in real.sent)
    assert len(phones) == 9
    assert set(phones.values()) == {1}
    statuses = Counter(w.ledger.statuses(CID, 1).values())
    assert statuses == {SendStatus.SENT: 9, SendStatus.UNCONFIRMED: 1}
    (entry,) = list(w.calls.entries[CID].values())
    assert entry.reason is CallReason.UNCONFIRMED
    assert w.ledger.statuses(CID, 1)[entry.iccid] is SendStatus.UNCONFIRMED
    assert phone_of(int(entry.iccid[-4:])) not in phones


def test_a_fresh_claim_of_a_running_sender_is_left_alone() -> None:
    w = World(cards=1)
    w.plan()
    (batch,) = w.batches()
    w.ledger.claim(CID, 1, batch.targets[0].iccid, w.clock())  # another sender is on it right now
    w.sender.handle(batch)
    assert w.texts == []
    assert w.ledger.statuses(CID, 1) == {batch.targets[0].iccid: SendStatus.CLAIMED}
    assert CID not in w.calls.entries


def test_sms_provider_errors_are_retried_then_the_card_goes_to_the_call_list() -> None:
    w = World(cards=2, page_size=100)
    w.plan()
    (batch,) = w.batches()

    class Flaky(SmsSender):
        def __init__(self) -> None:
            self.tries: Counter[str] = Counter()
            self.sent: list[str] = []

        def send(self, phone: str, text: str) -> str:
            self.tries[phone] += 1
            if phone == phone_of(0) or self.tries[phone] < 3:
                raise send_failed()
            self.sent.append(phone)
            return "m1"

    flaky = Flaky()
    w.sender._sms = flaky
    w.sender.handle(batch)
    assert flaky.tries == {phone_of(0): 3, phone_of(1): 3}
    assert flaky.sent == [phone_of(1)]
    records = {r.iccid: r for r in w.ledger.records.values()}
    failed = records[f"8986{0:016d}"]
    assert failed.status is SendStatus.FAILED
    assert failed.attempts == 3
    assert records[f"8986{1:016d}"].status is SendStatus.SENT
    (entry,) = w.calls.entries[CID].values()
    assert entry.reason is CallReason.SEND_FAILED
    assert entry.contact_phone_sealed == f"sealed:{phone_of(0)}"
    progress = w.ledger.progress(CID, 1)
    assert (progress.sent, progress.failed) == (1, 1)


def test_a_card_registered_between_planning_and_sending_is_skipped_registered() -> None:
    w = World(cards=3, page_size=100)
    w.plan()
    w.targets.set_state(f"8986{1:016d}", CardState.REGISTERED)
    w.targets.set_state(f"8986{2:016d}", CardState.PENDING)
    w.drain()
    assert [phone for phone, _ in w.texts] == [phone_of(0)]
    assert w.ledger.progress(CID, 1).skipped == {"registered": 2}


def test_a_card_scrapped_between_planning_and_sending_is_skipped_not_in_service() -> None:
    w = World(cards=2, page_size=100)
    w.plan()
    w.targets.retire(f"8986{1:016d}")  # unregistered and in service by its facts, out of the index
    w.drain()
    assert [phone for phone, _ in w.texts] == [phone_of(0)]
    assert w.ledger.progress(CID, 1).skipped == {"not_in_service": 1}


def test_an_opted_out_phone_is_skipped_and_never_messaged() -> None:
    w = World(cards=3, page_size=100)
    w.opt_outs.opt_out(OptOut(phone_hash="h1", at=MORNING, via="reply"))
    w.plan()
    w.drain()
    assert sorted(phone for phone, _ in w.texts) == [phone_of(0), phone_of(2)]
    assert w.ledger.records[(f"8986{1:016d}", CID, 1)].reason is SkipReason.OPTED_OUT


def test_a_card_with_no_phone_is_skipped_and_called() -> None:
    w = World(cards=0)
    w.targets.put("89860000000000000099", vin="LSVAU2180N2999999", phone_hash=None, phone_sealed=None)
    w.plan()
    w.drain()
    assert w.texts == []
    (entry,) = w.calls.entries[CID].values()
    assert entry.reason is CallReason.NO_PHONE
    assert entry.contact_phone_sealed is None
    assert w.ledger.progress(CID, 1).skipped == {"no_phone": 1}


def test_quiet_hours_put_the_batch_back_until_0800_and_record_nothing() -> None:
    w = World(cards=4, page_size=100)
    w.plan()
    (batch,) = w.batches()
    w.clock.now = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 China
    outcome = w.sender.handle(batch)
    eight = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 08:00 China the next morning
    assert outcome.deferred
    assert outcome.cause == "quiet_hours"
    assert w.clock() + timedelta(seconds=outcome.defer_seconds or 0) >= eight
    assert outcome.defer_seconds == int((eight - w.clock()).total_seconds()) + 1
    assert w.texts == []
    assert w.ledger.records == {}
    assert w.ledger.progress(CID, 1).deferred == 4
    w.clock.now = eight  # the batch comes back at 08:00 and goes
    assert not w.sender.handle(batch).deferred
    assert len(w.texts) == 4


def test_a_campaign_paused_mid_wave_puts_batches_back_and_sends_them_once_resumed() -> None:
    w = World(cards=20, page_size=100)
    w.plan()
    first, *rest = w.batches()
    w.sender.handle(first)
    sent_before = len(w.texts)
    w.set_campaign(status=CampaignStatus.PAUSED)
    outcomes = [w.sender.handle(b) for b in rest]
    assert all(o.defer_seconds == 300 and o.cause == "paused" for o in outcomes)
    assert len(w.texts) == sent_before
    w.set_campaign(status=CampaignStatus.ACTIVE)
    for b in rest:
        assert not w.sender.handle(b).deferred
    phones = Counter(phone for phone, _ in w.texts)
    assert len(phones) == 20
    assert set(phones.values()) == {1}


def test_a_paused_campaign_stops_its_plan_where_it_is_and_a_restart_carries_on_from_the_cursor() -> None:
    w = World(cards=60, page_size=2, budget=1.0)
    shard = next(s for s in BACKFILL_SHARD_NAMES if len(w.targets.indexed(s)) >= 5)
    assert w.planner.plan_shard(CID, 1, shard) is PlanOutcome.CONTINUE  # out of time after a page or two
    cursor, done = w.ledger.plan_cursor(CID, 1, shard)
    assert cursor is not None
    assert not done
    w.set_campaign(status=CampaignStatus.PAUSED)
    assert w.planner.plan_shard(CID, 1, shard) is PlanOutcome.PAUSED
    assert w.ledger.plan_cursor(CID, 1, shard) == (cursor, False)
    w.set_campaign(status=CampaignStatus.ACTIVE)
    while (outcome := w.planner.plan_shard(CID, 1, shard)) is PlanOutcome.CONTINUE:
        pass
    assert outcome is PlanOutcome.DONE
    queued = [t.iccid for b in w.batches() for t in b.targets]
    assert sorted(queued) == [t.iccid for t in w.targets.indexed(shard)]  # none twice, none forgotten
    assert w.planner.plan_shard(CID, 1, shard) is PlanOutcome.ALREADY


def test_a_plan_message_delivered_twice_counts_each_target_once() -> None:
    w = World(cards=40, page_size=3)
    chosen = next(s for s in BACKFILL_SHARD_NAMES if len(w.targets.indexed(s)) >= 4)
    real_page = w.targets.page
    second: list[PlanOutcome] = []

    def page_and_a_second_planner(
        shard: str, cursor: str | None, limit: int
    ) -> tuple[list[Target], str | None]:
        found = real_page(shard, cursor, limit)
        if not second:  # the same plan message, delivered again, runs while the first holds its page
            w.targets.page = real_page  # type: ignore[method-assign]
            second.append(w.planner.plan_shard(CID, 1, chosen))
        return found

    w.targets.page = page_and_a_second_planner  # type: ignore[method-assign]
    assert w.planner.plan_shard(CID, 1, chosen) is PlanOutcome.ALREADY  # the other moved on first
    assert second == [PlanOutcome.DONE]
    assert w.ledger.progress(CID, 1).targeted == len(w.targets.indexed(chosen))


def test_a_planner_killed_before_saving_its_cursor_queues_a_page_twice_and_it_is_sent_once() -> None:
    w = World(cards=40, page_size=3)
    shard = next(s for s in BACKFILL_SHARD_NAMES if len(w.targets.indexed(s)) >= 4)
    real_advance = w.ledger.advance_plan_cursor

    def dies_once(
        campaign_id: str, wave: int, shard: str, after: str | None, cursor: str | None, done: bool
    ) -> bool:
        w.ledger.advance_plan_cursor = real_advance  # type: ignore[method-assign]
        raise RuntimeError("killed")  # the planner dies after queueing its page, before saving the cursor

    w.ledger.advance_plan_cursor = dies_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        w.planner.plan_shard(CID, 1, shard)
    assert w.planner.plan_shard(CID, 1, shard) is PlanOutcome.DONE
    batches = w.batches()
    queued = Counter(t.iccid for b in batches for t in b.targets)
    in_shard = [t.iccid for t in w.targets.indexed(shard)]
    assert all(queued[i] == 2 for i in in_shard[:3])  # the first page was queued twice
    assert sorted(queued) == in_shard  # and nothing forgotten
    for batch in batches:
        w.sender.handle(batch)
    phones = Counter(phone for phone, _ in w.texts)
    assert len(phones) == len(in_shard)
    assert set(phones.values()) == {1}


def test_a_stopped_campaign_skips_every_queued_target() -> None:
    w = World(cards=5, page_size=100)
    w.plan()
    w.set_campaign(status=CampaignStatus.STOPPED)
    w.drain()
    assert w.texts == []
    assert w.ledger.progress(CID, 1).skipped == {"stopped": 5}


def test_overlapping_waves_skip_the_earlier_waves_rest_and_message_no_card_twice_in_a_day() -> None:
    w = World(cards=20, page_size=100)
    w.plan()
    first, *rest = w.batches()
    w.sender.handle(first)  # wave 1 messaged ten cards this morning
    messaged = {t.iccid for t in first.targets}
    w.clock.advance(hours=2)
    waves = (
        replace(w.store.campaigns[CID].waves[0]),
        replace(w.store.campaigns[CID].waves[1], status=WaveStatus.RUNNING, started_at=w.clock()),
    )
    w.set_campaign(current_wave=2, waves=waves)  # wave 2 run by hand the same day
    for b in rest:
        w.sender.handle(b)
    assert set(w.ledger.statuses(CID, 1).values()) == {SendStatus.SENT, SendStatus.SKIPPED}
    assert w.ledger.progress(CID, 1).skipped == {"superseded": 10}
    w.plan(wave=2)
    w.drain()
    phones = Counter(phone for phone, _ in w.texts)
    assert len(phones) == 20
    assert set(phones.values()) == {1}
    assert w.ledger.progress(CID, 2).skipped == {"messaged_today": 10}
    assert {i for i, s in w.ledger.statuses(CID, 2).items() if s is SendStatus.SKIPPED} == messaged


def test_the_token_bucket_holds_the_configured_rate_on_a_fake_clock() -> None:
    w = World(cards=50, page_size=100, rate_per_second=5)
    w.plan()
    times: list[datetime] = []
    real = w.sms
    assert isinstance(real, FakeSmsSender)

    class Timed(SmsSender):
        def send(self, phone: str, text: str) -> str:
            times.append(w.clock())
            return real.send(phone, text)

    w.sender._sms = Timed()
    w.drain()
    assert len(times) == 50
    span = (times[-1] - times[0]).total_seconds()
    assert 9.0 <= span <= 10.0  # 5 a second: the first second's five at once, then five a second
    per_second = Counter(int((t - times[0]).total_seconds()) for t in times)
    assert max(per_second.values()) == 5


def test_the_fake_bucket_grants_a_seconds_worth_and_tells_the_wait() -> None:
    bucket = FakeRateLimiter()
    assert bucket.acquire("c", 10, 10.0, 100.0) == 0.0
    assert bucket.acquire("c", 5, 10.0, 100.0) == pytest.approx(0.5)
    assert bucket.acquire("c", 5, 10.0, 100.5) == 0.0


def test_attribution_marks_a_registration_within_the_window_once() -> None:
    ledger = FakeSendLedger()
    sent_at = MORNING
    record = ledger.claim(CID, 1, "89860000000000000001", sent_at)
    assert record is not None
    ledger.finish(record, SendStatus.SENT, sent_at, message_id="m1", attempts=1)
    windows = {CID: 14}
    assert attribute_registration(ledger, "89860000000000000001", sent_at + timedelta(days=3), windows.get)
    assert not attribute_registration(
        ledger, "89860000000000000001", sent_at + timedelta(days=4), windows.get
    )
    assert ledger.progress(CID, 1).registered == 1
    late = FakeSendLedger()
    r2 = late.claim(CID, 1, "89860000000000000002", sent_at)
    assert r2 is not None
    late.finish(r2, SendStatus.SENT, sent_at)
    assert not attribute_registration(late, "89860000000000000002", sent_at + timedelta(days=15), windows.get)
    assert late.progress(CID, 1).registered == 0


def test_attribution_after_an_operator_callback_is_best_effort() -> None:
    result = CallbackResult(
        callback_id="cb1",
        message_id="m1",
        iccid="89860000000000000001",
        note=CallbackNote.APPLIED,
        state=CardState.REGISTERED,
    )

    def broken() -> FakeSendLedger:
        raise RuntimeError("store down")

    after_callback(result, broken, lambda _: 14, lambda: MORNING)  # logged, never raised
    ledger = FakeSendLedger()
    record = ledger.claim(CID, 1, result.iccid, MORNING)
    assert record is not None
    ledger.finish(record, SendStatus.SENT, MORNING)
    after_callback(result, lambda: ledger, lambda _: 14, lambda: MORNING + timedelta(days=1))
    assert ledger.progress(CID, 1).registered == 1


def record_of(body: dict[str, Any], message_id: str = "m1", receives: int = 1) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"r-{message_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receives)},
    }


def test_a_planner_out_of_time_queues_its_own_message_again_and_a_malformed_one_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World(cards=60, page_size=2, budget=1.0)
    shard = next(s for s in BACKFILL_SHARD_NAMES if len(w.targets.indexed(s)) >= 3)
    waves = RecordingQueue()
    monkeypatch.setattr(deps, "wave_planner", lambda: w.planner)
    monkeypatch.setattr(deps, "campaign_waves_queue", lambda: waves)
    body = plan_shard_message(CID, 1, shard)
    result = handle_wave_messages([record_of(body), {"messageId": "bad", "body": "{not json"}])
    assert result == {"batchItemFailures": []}
    assert waves.sent == [body]  # carried on by the next run, from the saved cursor
    assert w.ledger.plan_cursor(CID, 1, shard)[0] is not None


def test_a_send_batch_deferred_is_hidden_until_then_and_a_failing_one_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World(cards=3, page_size=100)
    w.plan()
    (batch,) = w.batches()
    body = send_batch_message(CID, 1, [])
    body["targets"] = [
        {"iccid": t.iccid, "vin": t.vin, "phone_hash": t.phone_hash, "phone": t.phone} for t in batch.targets
    ]
    sends = RecordingQueue()
    monkeypatch.setattr(deps, "wave_sender", lambda: w.sender)
    monkeypatch.setattr(deps, "campaign_sends_queue", lambda: sends)
    w.set_campaign(status=CampaignStatus.PAUSED)
    assert handle_send_messages([record_of(body)]) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert sends.deferred == [("r-m1", 300)]
    w.set_campaign(status=CampaignStatus.ACTIVE)
    w.sender._sms = None  # type: ignore[assignment]  # the sender breaks: the batch comes back
    assert handle_send_messages([record_of(body)]) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
