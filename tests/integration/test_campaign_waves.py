"""A backfill wave on the embedded AWS (moto) with the real adapters and queues: cards imported and marked
in service, a campaign's wave run by hand, its plan and send messages drained through the local worker's
consumers, each target messaged once (a second run of the whole wave sends nothing), the skipped and
called ones recorded, and a registration afterwards attributed to the wave. Also the ledger's and the
token bucket's conditional writes on DynamoDB, and the sends queue's deferrals."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamo.campaign_sends import DynamoRateLimiter, DynamoSendLedger
from chalicelib.campaigns.domain import CallReason, OptOut, SendStatus, SkipReason, WaveStatus
from chalicelib.campaigns.in_service import parse_in_service
from chalicelib.campaigns.messages import plan_shard_message, send_batch_message
from chalicelib.campaigns.sender import WaveSender
from chalicelib.campaigns.service import CampaignDraft
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.resources import (
    CAMPAIGN_SENDS_MAX_RECEIVES,
    CAMPAIGN_SENDS_QUEUE_ID,
    CAMPAIGN_WAVES_QUEUE_ID,
    declare,
)
from chalicelib.core.settings import get_settings
from chalicelib.events.campaigns import handle_send_messages
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator
from chalicelib.local.worker import CONSUMERS, poll_consumers
from chalicelib.operators.domain.messages import CallbackOutcome
from tests.fakes.clock import FakeClock
from tests.fakes.sms import FakeSmsSender
from tests.integration.test_lifecycle import answer, drain, import_cards, make_world, person

TEMPLATE = "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}"


def campaign_consumers() -> list[Any]:
    return [c for c in CONSUMERS if c.queue_name.startswith("campaign-")]


def drain_campaign_queues() -> int:
    handled = 0
    while n := poll_consumers(campaign_consumers()):
        handled += n
    return handled


def queue_url(queue_id: str) -> str:
    name = declare(get_settings()).queue(queue_id).name
    return str(client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


@pytest.fixture
def sender(aws: None, monkeypatch: pytest.MonkeyPatch) -> tuple[WaveSender, FakeSmsSender, FakeClock]:
    """The stage's sender on the real adapters, with a recording SMS channel and a clock set to 11:00
    China yesterday (outside quiet hours whenever the suite runs)."""
    yesterday = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=1)
    clock = FakeClock(yesterday)
    sms = FakeSmsSender()
    built = WaveSender(
        targets=deps.backfill_targets(),
        campaigns=deps.campaign_store(),
        ledger=deps.send_ledger(),
        rate=deps.rate_limiter(),
        opt_outs=deps.opt_outs(),
        calls=deps.call_list(),
        sms=sms,
        open_phone=deps.sealer().open,
        clock=clock,
        sleep=lambda seconds: clock.advance(seconds=seconds),
        link="https://h5.example.cn/r",
    )
    monkeypatch.setattr(deps, "wave_sender", lambda: built)
    return built, sms, clock


def test_a_wave_on_the_real_queues_messages_each_target_once_and_attributes_a_registration(
    sender: tuple[WaveSender, FakeSmsSender, FakeClock],
) -> None:
    _, sms, _ = sender
    world = make_world()
    # Given twelve cards in service, eleven with a contact phone, one of whose phones opted out
    cards = import_cards(Operator.CHINA_UNICOM, 12, seed=1701)
    phones = {card.iccid: f"1390000{i:04d}" for i, card in enumerate(cards[:11])}
    rows = "".join(f"{c.iccid},,2025-05-01,{phones.get(c.iccid, '')}\n" for c in cards)
    text = "iccid,vin,in_service_since,contact_phone\n" + rows
    report = deps.in_service_import().run(parse_in_service(text, "csv", max_rows=100), actor="ops")
    assert report.model_dump()["cards_marked"] == 12
    opted = cards[1]
    deps.opt_outs().opt_out(
        OptOut(
            phone_hash=deps.sms_code_service().phone_hash(phones[opted.iccid]),
            at=datetime.now(UTC),
            via="link",
        )
    )
    # And a campaign with the call channel
    campaign = deps.campaigns().create(
        CampaignDraft(
            name="补登记 2027",
            deadline=(datetime.now(UTC) + timedelta(days=200)).date().isoformat(),
            waves=[60],
            template=TEMPLATE,
            channels=["sms", "call"],
            rate_per_second=50,
        ),
        by="admin",
    )
    cid = campaign.campaign_id
    # When its wave is run by hand and the worker drains the campaign queues
    deps.campaigns().run_wave(cid, 1)
    assert drain_campaign_queues() >= len(BACKFILL_SHARD_NAMES)
    # Then every target with a phone that did not opt out got one message
    texts = Counter(phone for phone, _ in sms.sent)
    assert set(texts) == {p for i, p in phones.items() if i != opted.iccid}
    assert set(texts.values()) == {1}
    # And the wave is planned and its counters add up
    stored = deps.campaign_store().get(cid)
    assert stored is not None
    assert stored.wave(1).status is WaveStatus.PLANNED
    progress = deps.send_ledger().progress(cid, 1)
    assert (progress.targeted, progress.sent, progress.failed) == (12, 10, 0)
    assert progress.skipped == {SkipReason.OPTED_OUT.value: 1, SkipReason.NO_PHONE.value: 1}
    # And the card without a phone is on the call list
    entries, _ = deps.call_list().page(cid, wave=1, open_only=True, cursor=None, limit=10)
    assert [(e.iccid, e.reason) for e in entries] == [(cards[11].iccid, CallReason.NO_PHONE)]
    # When the whole wave's plan runs again (every shard from scratch) and is drained
    ledger = deps.send_ledger()
    for shard in BACKFILL_SHARD_NAMES:
        ledger.save_plan_cursor(cid, 1, shard, None, False)
    waves_url = queue_url(CAMPAIGN_WAVES_QUEUE_ID)
    for shard in BACKFILL_SHARD_NAMES:
        client("sqs").send_message(
            QueueUrl=waves_url, MessageBody=json.dumps(plan_shard_message(cid, 1, shard))
        )
    drain_campaign_queues()
    # Then nothing is sent twice
    assert len(sms.sent) == 10
    # When a messaged card is registered and its operator accepts it
    card = cards[0]
    outcome = world.lifecycle.submit_registration(card.iccid, person(1702), "owner:u1")
    assert outcome.record_id is not None
    drain(world)
    deps._apply_callback(answer(outcome.record_id, card, CallbackOutcome.ACCEPTED))
    # Then the registration counts for the wave, once
    (record,) = [r for r in ledger.records_of(card.iccid) if r.campaign_id == cid]
    assert record.registered_at is not None
    assert deps.send_ledger().progress(cid, 1).registered == 1


def test_the_ledger_writes_are_conditional_and_the_bucket_paces_every_sender(aws: None) -> None:
    ledger = DynamoSendLedger()
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    claimed = ledger.claim("cp_x", 1, "89860000000000000001", at)
    assert claimed is not None
    assert ledger.claim("cp_x", 1, "89860000000000000001", at) is None  # once per card and wave
    assert ledger.claim("cp_x", 2, "89860000000000000001", at) is not None  # another wave: its own
    sent = ledger.finish(claimed, SendStatus.SENT, at, message_id="m1", attempts=2)
    with pytest.raises(Conflict):
        ledger.finish(claimed, SendStatus.FAILED, at)  # only a claimed record moves
    assert not ledger.skip("cp_x", 1, "89860000000000000001", SkipReason.REGISTERED, at)
    assert ledger.skip("cp_x", 1, "89860000000000000002", SkipReason.REGISTERED, at)
    assert ledger.mark_registered(sent, at + timedelta(days=1))
    assert not ledger.mark_registered(sent, at + timedelta(days=2))
    records = {(r.campaign_id, r.wave): r for r in ledger.records_of("89860000000000000001")}
    assert records[("cp_x", 1)].status is SendStatus.SENT
    assert records[("cp_x", 1)].attempts == 2
    assert records[("cp_x", 2)].status is SendStatus.CLAIMED
    ledger.count("cp_x", 1, targeted=3, sent=1, skipped_registered=1)
    ledger.count("cp_x", 1, sent=1)
    progress = ledger.progress("cp_x", 1)
    assert (progress.targeted, progress.sent, progress.skipped) == (3, 2, {"registered": 1})
    with pytest.raises(ValueError, match="unknown counter"):
        ledger.count("cp_x", 1, bogus=1)
    assert ledger.plan_cursor("cp_x", 1, "03") == (None, False)
    ledger.save_plan_cursor("cp_x", 1, "03", "abc", False)
    assert ledger.plan_cursor("cp_x", 1, "03") == ("abc", False)
    # The bucket: 10 a second shared by two senders; a second's worth, then the wait for the rest
    one, two = DynamoRateLimiter(), DynamoRateLimiter()
    assert one.acquire("cp_x", 6, 10.0, 1000.0) == 0.0
    assert two.acquire("cp_x", 4, 10.0, 1000.0) == 0.0
    assert one.acquire("cp_x", 5, 10.0, 1000.0) == pytest.approx(0.5)
    assert two.acquire("cp_x", 5, 10.0, 1000.5) == 0.0
    granted = sum(5 for t in range(20) if one.acquire("cp_x", 5, 10.0, 1001.0 + t * 0.25) == 0.0)
    assert 45 <= granted <= 55  # ten a second over five seconds (plus the bucket's one second)


def test_a_deferred_send_batch_is_hidden_until_later_and_one_received_often_is_queued_afresh(
    sender: tuple[WaveSender, FakeSmsSender, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.campaigns import sender as sender_module

    built, sms, _ = sender
    monkeypatch.setattr(sender_module, "in_quiet_hours", lambda at, quiet: True)
    campaign = deps.campaigns().create(
        CampaignDraft(
            name="补登记 quiet",
            deadline=(datetime.now(UTC) + timedelta(days=200)).date().isoformat(),
            waves=[60],
            template=TEMPLATE,
            rate_per_second=50,
        ),
        by="admin",
    )
    body = json.dumps(send_batch_message(campaign.campaign_id, 1, []))
    url = queue_url(CAMPAIGN_SENDS_QUEUE_ID)
    sqs = client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody=body)
    (message,) = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": body}
    # A first deferral hides the message (reported failed: SQS hands it back after the quiet hours)
    assert handle_send_messages([{**record, "attributes": {"ApproximateReceiveCount": "1"}}]) == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]}]
    }
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    # One received nearly as often as the dead-letter limit is queued afresh and counted handled
    many = str(CAMPAIGN_SENDS_MAX_RECEIVES - 2)
    assert handle_send_messages([{**record, "attributes": {"ApproximateReceiveCount": many}}]) == {
        "batchItemFailures": []
    }
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert sms.sent == []
    assert built is deps.wave_sender()
