"""Backfill campaigns (补登记, 第二十二条) over a large store, on moto in-process (as ``make run`` and the
tests run it): one wave planned from the sparse ``by-backfill`` index and sent by the real sender through
the real token bucket and the local SMS drop, printed as figures.

The store: ``--cards`` cards (1,000,000 by default), ``--target-percent`` of them targets (in service,
unregistered, with a sealed contact phone and its keyed hash: the in-service feed's import writes the same
attributes); of the others most are registered and in service, some unregistered and not in service (in
stock). The seeding's time, cards per second and the process's memory are printed.

Then:

(a) planning one wave (``WavePlanner`` through the waves queue's entry, ``events.campaigns``): the store
    items read per target (every item a DynamoDB read returned, the index's pages, the campaign and the
    plan cursors included) and the SQS messages sent per target. The plan must read about one item per
    target whatever the store's size: its cost grows with the targets, never with the cards. (moto's own
    index query is linear in the table, so the plan's *time* on moto is moto's, not ours.)
(b) sending: ``--send-targets`` targets queued for a campaign at each ``--rates`` (messages per second),
    drained by ``campaign_sender_concurrency`` senders (threads, as that many Lambdas) with the real
    ``WaveSender`` and the campaign's token bucket on moto: the achieved rate against the configured one
    and the items read per target. (The bucket starts full, one second's worth of tokens: a run of a few
    seconds shows more than the rate.) On moto a send costs a few store calls, the SMS drop's object and
    a KMS decryption of the phone, each some milliseconds: the achieved rate is bounded by moto well
    below 500/s, and the waiting queue's size slows moto's receive (it walks the queue).
(c) one whole wave locally: the wave of (a) (every target) planned and then sent at ``--wave-rate``; its
    wall time.

DynamoDB reads and SQS sends are counted at botocore (every client, pynamodb's included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from common import MOTO_ENV, moto_options, moto_transactions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(MOTO_ENV)

READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
#: Items per BatchWriteItem (DynamoDB's limit).
WRITE_BATCH = 25
#: The day the targets' vehicles went into use.
IN_SERVICE_SINCE = date(2024, 5, 1)
#: A long drain prints its progress every this many messages.
REPORT_EVERY = 1000
TEMPLATE = "【示例汽车】尾号{vin_tail}的车辆车联网卡尚未实名登记，请于{deadline}前登记：{link}"


class Counters:
    """DynamoDB reads (calls, items returned) and SQS messages sent and received, per queue, counted for
    every botocore client of the process (thread-safe: the senders run in threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.items = 0
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.enabled = False

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counters = self

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            result = original(client, operation, params)
            if counters.enabled:
                counters._count(client.meta.service_model.service_name, operation, params, result)
            return result

        BaseClient._make_api_call = counted

    def _count(self, service: str, operation: str, params: dict[str, Any], result: Any) -> None:
        with self.lock:
            if service == "dynamodb":
                self.calls[operation] += 1
                if operation in ("Query", "Scan"):
                    self.items += len(result.get("Items", []))
                elif operation == "GetItem":
                    self.items += int("Item" in result)
                elif operation == "BatchGetItem":
                    self.items += sum(len(v) for v in result.get("Responses", {}).values())
                elif operation == "TransactGetItems":
                    self.items += sum(1 for r in result.get("Responses", []) if r.get("Item"))
            elif service == "sqs":
                queue = str(params.get("QueueUrl", "")).rsplit("/", 1)[-1]
                if operation == "SendMessage":
                    self.sent[queue] += 1
                elif operation == "SendMessageBatch":
                    self.sent[queue] += len(params.get("Entries", []))
                elif operation == "ReceiveMessage":
                    self.received[queue] += len(result.get("Messages", []))

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.sent.clear()
            self.received.clear()
            self.items = 0

    @property
    def reads(self) -> int:
        return sum(self.calls[op] for op in READS)


def rss_mb() -> float:
    """The process's resident memory now (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _setup() -> None:
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    deps.reset()
    create_resources(get_settings())


def _is_target(i: int, every: int) -> bool:
    return i % every == 0


def _seed(cards: int, every: int) -> dict[str, Any]:
    """``cards`` cards, one in ``every`` a target; raw batch writes (the attributes ``CardModel`` and the
    in-service import write). The targets' phones are sealed and hashed as the import does."""
    from chalicelib.cards.domain.inventory import backfill_shard_of
    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.sms.domain import subject_for

    ddb = client("dynamodb")
    table = get_settings().table_name("cards")
    sealer, phone_hash = deps.sealer(), deps.sms_code_service().phone_hash
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    started = time.perf_counter()
    seal_seconds = 0.0
    batch: list[dict[str, Any]] = []
    targets = 0
    progress_every = max(1, cards // 10)
    for i in range(cards):
        item: dict[str, Any] = {
            "iccid": {"S": f"8986{i:015d}"},
            "msisdn": {"S": f"1440{i:09d}"},
            "operator": {"S": "china_mobile"},
            "vin": {"S": f"LSVBENCH{i:09d}"},
            "functions": {"L": [{"S": "emergency"}]},
            "version": {"N": "2"},
            "created_at": {"S": at},
            "updated_at": {"S": at},
        }
        if _is_target(i, every):
            sealing = time.perf_counter()
            phone = f"139{i:08d}"
            hashed = phone_hash(phone)
            item |= {
                "state": {"S": "unregistered"},
                "in_service_since": {"S": IN_SERVICE_SINCE.isoformat()},
                "contact_phone": {"S": sealer.seal(phone)},
                "contact_phone_hash": {"S": hashed},
                "contact_subject": {"S": subject_for(hashed)},
                "backfill_shard": {"S": backfill_shard_of(item["iccid"]["S"])},
            }
            seal_seconds += time.perf_counter() - sealing
            targets += 1
        elif i % every in (1, 2, 3):  # in stock: not in service, not registered
            item["state"] = {"S": "unregistered"}
        else:  # registered and in service: not a target (no shard)
            item |= {
                "state": {"S": "registered"},
                "holder_id": {"S": f"party-{i}"},
                "in_service_since": {"S": IN_SERVICE_SINCE.isoformat()},
            }
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == WRITE_BATCH:
            _write(ddb, table, batch)
            batch = []
        if (i + 1) % progress_every == 0:
            print(
                f"  seeded {i + 1:,} cards ({(i + 1) / (time.perf_counter() - started):,.0f}/s, "
                f"RSS {rss_mb():,.0f} MB)",
                flush=True,
            )
    if batch:
        _write(ddb, table, batch)
    seconds = time.perf_counter() - started
    return {
        "cards": cards,
        "targets": targets,
        "seconds": seconds,
        "cards_per_second": cards / seconds,
        "seconds_sealing_target_phones": seal_seconds,
        "rss_mb": rss_mb(),
    }


def _write(ddb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    request: Any = {table: batch}
    while request:
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None


def _warm() -> None:
    """Every table's client made before anything is measured (pynamodb makes one per model on first use)."""
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core import deps

    for spec in TABLES:
        spec.model._get_connection().connection.client  # noqa: B018
    deps.campaigns()
    deps.wave_planner()
    deps.wave_sender()


def _create_campaign(name: str, rate: int) -> str:
    """An active campaign with one wave (60 days before a deadline 90 days ahead) at ``rate`` messages per
    second, its quiet hours a minute twelve hours from now (the figures never wait for a night)."""
    from chalicelib.campaigns.service import CampaignDraft
    from chalicelib.core import deps

    china_now = datetime.now(UTC) + timedelta(hours=8)
    quiet = china_now + timedelta(hours=12)
    draft = CampaignDraft(
        name=name,
        deadline=(china_now.date() + timedelta(days=90)).isoformat(),
        waves=[60],
        template=TEMPLATE,
        channels=("sms", "call"),
        rate_per_second=rate,
        send_time="10:00",
        quiet_start=quiet.strftime("%H:%M"),
        quiet_end=(quiet + timedelta(minutes=1)).strftime("%H:%M"),
    )
    return deps.campaigns().create(draft, by="bench").campaign_id


def _drain(queue_url: str, handle: Any, *, workers: int, batch: int) -> int:
    """Receive and handle messages from the queue in ``workers`` threads until it stays empty; the
    messages received. ``handle`` gets SQS messages and deletes those it handled (the local worker's
    consumers)."""
    from chalicelib.core.aws import client

    received = [0] * workers
    errors: list[BaseException] = []

    def consume(n: int) -> None:
        sqs = client("sqs")
        empty = 0
        while empty < 3 and not errors:
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=batch,
                AttributeNames=["ApproximateReceiveCount"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not got:
                empty += 1
                time.sleep(0.05)
                continue
            empty = 0
            before = sum(received)
            received[n] += len(got)
            if (before + len(got)) // REPORT_EVERY > before // REPORT_EVERY:
                print(f"  {before + len(got):,} messages received", flush=True)
            try:
                handle(got)
            except BaseException as error:  # a failed consumer stops the figures
                errors.append(error)

    if workers == 1:  # in this thread (a profiler sees it)
        consume(0)
        if errors:
            raise errors[0]
        return received[0]
    threads = [threading.Thread(target=consume, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(received)


def _queue_url(queue_id: str) -> str:
    from chalicelib.core.aws import client
    from chalicelib.core.resources import declare
    from chalicelib.core.settings import get_settings

    name = declare(get_settings()).queue(queue_id).name
    return str(client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def _plan(counters: Counters, campaign_id: str) -> dict[str, Any]:
    """(a) The wave started by hand and every shard planned through the waves queue's consumer."""
    from chalicelib.core import deps
    from chalicelib.core.resources import CAMPAIGN_SENDS_QUEUE_ID, CAMPAIGN_WAVES_QUEUE_ID
    from chalicelib.events.campaigns import received_wave_messages

    waves_url = _queue_url(CAMPAIGN_WAVES_QUEUE_ID)
    sends_name = _queue_url(CAMPAIGN_SENDS_QUEUE_ID).rsplit("/", 1)[-1]
    counters.reset()
    counters.enabled = True
    started = time.perf_counter()
    deps.campaigns().run_wave(campaign_id, 1)
    handled = _drain(waves_url, received_wave_messages, workers=1, batch=1)  # the mapping's batch: 1
    seconds = time.perf_counter() - started
    counters.enabled = False
    progress = deps.campaigns().progress(campaign_id)
    targeted = progress.totals.targeted
    status = deps.campaigns().get(campaign_id).wave(1).status
    return {
        "seconds": seconds,
        "targeted": targeted,
        "wave_status": str(status),
        "wave_messages_handled": handled,
        "reads": counters.reads,
        "scans": counters.calls["Scan"],
        "items_read": counters.items,
        "items_read_per_target": counters.items / max(1, targeted),
        "send_messages": counters.sent[sends_name],
        "send_messages_per_target": counters.sent[sends_name] / max(1, targeted),
        "sqs_messages_per_target": sum(counters.sent.values()) / max(1, targeted),
        "calls": dict(counters.calls),
    }


def _send(counters: Counters, campaign_id: str, rate: int, workers: int) -> dict[str, Any]:
    """Drain the campaign sends queue with ``workers`` senders; the achieved rate and the reads."""
    from chalicelib.core import deps
    from chalicelib.core.resources import CAMPAIGN_SENDS_QUEUE_ID
    from chalicelib.events.campaigns import received_send_messages

    counters.reset()
    counters.enabled = True
    started = time.perf_counter()
    handled = _drain(_queue_url(CAMPAIGN_SENDS_QUEUE_ID), received_send_messages, workers=workers, batch=10)
    seconds = time.perf_counter() - started
    counters.enabled = False
    totals = deps.campaigns().progress(campaign_id).totals
    handled_targets = totals.sent + totals.failed + sum(totals.skipped.values())
    return {
        "rate_configured": rate,
        "senders": workers,
        "seconds": seconds,
        "messages_received": handled,
        "sent": totals.sent,
        "failed": totals.failed,
        "skipped": dict(totals.skipped),
        "rate_achieved": totals.sent / seconds if seconds else 0.0,
        "items_read": counters.items,
        "items_read_per_target": counters.items / max(1, handled_targets),
        "calls": dict(counters.calls),
    }


def _queue_targets(campaign_id: str, count: int) -> int:
    """``count`` targets of the index queued as the planner queues them (ten to a message), without
    planning the whole wave."""
    from chalicelib.campaigns.messages import send_batch_message
    from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings

    per_message = get_settings().campaign_targets_per_message
    targets: list[Any] = []
    for shard in BACKFILL_SHARD_NAMES:
        cursor: str | None = None
        while len(targets) < count:
            page, cursor = deps.backfill_targets().page(shard, cursor, min(500, count - len(targets)))
            targets += page
            if cursor is None:
                break
        if len(targets) >= count:
            break
    bodies = [
        send_batch_message(campaign_id, 1, targets[i : i + per_message])
        for i in range(0, len(targets), per_message)
    ]
    deps.campaign_sends_queue().send_batch(bodies)
    return len(targets)


def _drop(queue_id: str) -> None:
    """Every message of the queue deleted unhandled: the plan messages of a wave started for the sending
    figures (which queue their own targets), or the sends of a wave not sent (``--skip-wave-send``)."""
    from chalicelib.core.aws import client

    sqs, url = client("sqs"), _queue_url(queue_id)

    def delete(messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    _drain(url, delete, workers=1, batch=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=1_000_000, help="cards in the store (default 1,000,000)")
    parser.add_argument("--target-percent", type=float, default=5.0, help="of them targets (default 5%%)")
    parser.add_argument("--send-targets", type=int, default=2000, help="targets sent at each rate (b)")
    parser.add_argument("--rates", default="50,500", help="configured rates of (b), messages per second")
    parser.add_argument("--wave-rate", type=int, default=500, help="the rate of the whole wave (c)")
    parser.add_argument(
        "--skip-wave-send", action="store_true", help="plan the whole wave but send none of it (no (c))"
    )
    moto_options(parser)
    args = parser.parse_args()
    every = max(1, round(100 / args.target_percent))
    rates = [int(r) for r in args.rates.split(",") if r.strip()]

    from moto import mock_aws

    from chalicelib.core.resources import CAMPAIGN_SENDS_QUEUE_ID, CAMPAIGN_WAVES_QUEUE_ID

    counters = Counters()
    counters.install()
    transactions, moto_name = moto_transactions(args.stock_moto)
    with mock_aws(), transactions:
        _setup()
        from chalicelib.core.settings import get_settings

        senders = get_settings().campaign_sender_concurrency
        print(f"seeding {args.cards:,} cards, one in {every} a target ...", flush=True)
        seeded = _seed(args.cards, every)
        _warm()
        # (a) and (c): one whole wave, planned, then sent.
        wave_campaign = _create_campaign("bench: whole wave", args.wave_rate)
        print("planning one wave ...", flush=True)
        planned = _plan(counters, wave_campaign)
        wave_sent: dict[str, Any] | None = None
        if args.skip_wave_send:
            _drop(CAMPAIGN_SENDS_QUEUE_ID)
        else:
            print(f"sending it at {args.wave_rate}/s ...", flush=True)
            wave_sent = _send(counters, wave_campaign, args.wave_rate, senders)
        # (b): a fixed number of targets at each rate.
        by_rate = []
        for rate in rates:
            campaign_id = _create_campaign(f"bench: {rate}/s", rate)
            from chalicelib.core import deps

            deps.campaigns().run_wave(campaign_id, 1)
            _drop(CAMPAIGN_WAVES_QUEUE_ID)
            queued = _queue_targets(campaign_id, args.send_targets)
            print(f"sending {queued:,} targets at {rate}/s ...", flush=True)
            by_rate.append(_send(counters, campaign_id, rate, senders) | {"queued": queued})
    result = {
        "moto": moto_name,
        "seed": seeded,
        "plan": planned,
        "wave_send": wave_sent,
        "wave_seconds": None if wave_sent is None else planned["seconds"] + wave_sent["seconds"],
        "send_by_rate": by_rate,
        "rss_mb_end": rss_mb(),
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    _print(args, result)


def _print(args: argparse.Namespace, result: dict[str, Any]) -> None:
    seed, plan, wave = result["seed"], result["plan"], result["wave_send"]
    print()
    print(f"{seed['cards']:,} cards, {seed['targets']:,} targets ({args.target_percent}%), {result['moto']}")
    print(
        f"seeded in {seed['seconds']:.1f} s ({seed['cards_per_second']:,.0f} cards/s; sealing and hashing "
        f"the targets' phones {seed['seconds_sealing_target_phones']:.1f} s), RSS {seed['rss_mb']:,.0f} MB"
    )
    rows = [
        ("plan: targets queued", f"{plan['targeted']:,} (wave {plan['wave_status']})"),
        ("plan: store items read per target", f"{plan['items_read_per_target']:.3f}"),
        ("plan: store items read per card", f"{plan['items_read'] / seed['cards']:.4f}"),
        ("plan: scans", str(plan["scans"])),
        ("plan: SQS send messages per target", f"{plan['send_messages_per_target']:.3f}"),
        ("plan: SQS messages per target (all)", f"{plan['sqs_messages_per_target']:.3f}"),
        ("plan: seconds (moto's index query)", f"{plan['seconds']:.1f}"),
    ]
    for figures in result["send_by_rate"]:
        rate = figures["rate_configured"]
        rows += [
            (
                f"send {figures['queued']:,} at {rate}/s: achieved",
                f"{figures['rate_achieved']:.1f}/s ({figures['rate_achieved'] / rate:.0%}; "
                f"{figures['senders']} senders, {figures['seconds']:.1f} s)",
            ),
            (f"send at {rate}/s: store items read per target", f"{figures['items_read_per_target']:.3f}"),
        ]
    if wave is None:
        rows.append(("whole wave", "not sent (--skip-wave-send)"))
    else:
        rows += _wave_rows(result, plan, wave)
    rows.append(("RSS at the end", f"{result['rss_mb_end']:,.0f} MB"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def _wave_rows(result: dict[str, Any], plan: dict[str, Any], wave: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            f"whole wave at {wave['rate_configured']}/s: sent",
            f"{wave['sent']:,} ({wave['rate_achieved']:.1f}/s achieved), skipped {wave['skipped']}",
        ),
        ("whole wave: store items read per target (sending)", f"{wave['items_read_per_target']:.3f}"),
        (
            "whole wave: wall time",
            f"{result['wave_seconds']:.1f} s (plan {plan['seconds']:.1f} s + send {wave['seconds']:.1f} s)",
        ),
    ]


if __name__ == "__main__":
    main()
