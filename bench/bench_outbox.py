"""Outbox benchmarks, on moto in-process (DynamoDB, SQS, KMS), printed as figures:

1. end-to-end push throughput: N registrations committed (card transition + history + lifecycle +
   one-ID count + sealed outbox record, one transaction each, then enqueued), dispatched from SQS to an
   in-process operator that accepts, and their acceptance callbacks applied, pipelined in batches of ten
   as the queue consumer would run: records per second from the first commit to the last acceptance,
   and the time spent in each phase;
2. the latency the outbox adds to a card transition: the transition transaction alone (card + history,
   the inventory repository's), the lifecycle's transaction without the outbox item, and with it
   (sealing included): median milliseconds and ratios, interleaved so machine noise hits all alike.

moto runs as ``make run`` and the tests run it (``chalicelib.local.moto_patches``): transactions
serialised, with an undo log of the items they touch, so a transaction's cost does not grow with the
tables as stock moto's whole-table copies do; ``--stock-moto`` keeps moto's own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import MOTO_ENV, moto_options, moto_transactions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update(MOTO_ENV)

CARDS_PER_PERSON = 5  # below the one-ID limit: every registration passes
BATCH = 10  # registrations committed between two drains of the queue (one SQS receive's worth)


class AcceptingOperator:
    """An in-process operator that accepts every push (idempotent on message_id)."""

    def __init__(self) -> None:
        from chalicelib.operators.domain.messages import PushMessage, PushReceipt
        from chalicelib.operators.ports import OperatorGateway

        outer = self
        self.received: dict[str, PushMessage] = {}

        class _Gateway(OperatorGateway):
            def push(self, message: PushMessage) -> PushReceipt:
                duplicate = message.message_id in outer.received
                outer.received.setdefault(message.message_id, message)
                return PushReceipt(message_id=message.message_id, operator_ref="op", duplicate=duplicate)

        self.gateway = _Gateway()


def _setup() -> tuple[Any, Any, Any]:
    from chalicelib.adapters.dynamo.outbox import OUTBOX_QUEUE, DynamoOutboxStore, SqsPushQueue, queue_name
    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    deps.reset()
    settings = get_settings()
    create_resources(settings)
    client("sqs").create_queue(QueueName=queue_name(settings, OUTBOX_QUEUE))
    store = DynamoOutboxStore(deps.field_cipher())
    queue = SqsPushQueue(client("sqs"), queue_name(settings, OUTBOX_QUEUE))
    return deps.inventory_repo(), store, queue


def _import(repo: Any, count: int, seed: int) -> list[str]:
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.local.synthetic import inventory_rows

    rows = [(i + 2, row) for i, row in enumerate(inventory_rows(count, seed=seed))]
    report = import_inventory(rows, repo, actor="bench")
    assert not report.errors, report.errors[:3]
    return [row["iccid"] for _, row in rows]


def _holders(count: int) -> list[Any]:
    from chalicelib.cards.domain.limits import HolderKind
    from chalicelib.cards.holders import Holder
    from chalicelib.core import deps
    from chalicelib.kernel.personal import IdType, id_lookup_value
    from chalicelib.local.synthetic import make_resident_id
    from chalicelib.operators.domain.messages import PushHolder

    rng = random.Random(5)
    hasher = deps.keyed_hasher()
    people = []
    for _ in range(count):
        number = make_resident_id(rng)
        facts = PushHolder(kind=HolderKind.INDIVIDUAL, name="张三", id_type="resident_id", id_number=number)
        digest = hasher.digest(id_lookup_value(IdType.RESIDENT_ID, number))
        people.append(Holder(party_id=uuid.uuid4().hex, facts=facts, id_hash=digest))
    return people


def throughput(count: int) -> dict[str, Any]:
    from chalicelib.cards.lifecycle import Lifecycle
    from chalicelib.core.aws import client
    from chalicelib.operators.dispatch import Dispatcher
    from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback

    repo, store, queue = _setup()
    iccids = _import(repo, count, seed=2027)
    people = _holders((count + CARDS_PER_PERSON - 1) // CARDS_PER_PERSON)
    operator = AcceptingOperator()
    lifecycle = Lifecycle(repo, store, queue)
    dispatcher = Dispatcher(store, operator.gateway, queue)
    sqs = client("sqs")

    cards = repo.get_cards(iccids)
    spent = {"commit": 0.0, "dispatch": 0.0, "accept": 0.0}
    started = time.perf_counter()
    # Pipelined as in production: the consumer drains the queue while registrations keep coming, and the
    # operator answers as it decides (moto's SQS also scans every message on a receive: a queue that
    # stays short keeps that emulator cost out of the figure).
    for first in range(0, count, BATCH):
        t0 = time.perf_counter()
        batch = []
        for i in range(first, min(first + BATCH, count)):
            outcome = lifecycle.submit_registration(iccids[i], people[i // CARDS_PER_PERSON], "bench")
            assert outcome.record_id is not None
            batch.append((outcome.record_id, iccids[i]))
        t1 = time.perf_counter()
        while messages := sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages", []):
            dispatcher.handle_received(messages)
        t2 = time.perf_counter()
        for record_id, iccid in batch:
            card = cards[iccid]
            lifecycle.apply_callback(
                OperatorCallback(
                    callback_id=uuid.uuid4().hex,
                    message_id=record_id,
                    operator=card.operator,
                    iccid=iccid,
                    outcome=CallbackOutcome.ACCEPTED,
                    functions=operator.received[record_id].functions,
                    decided_at=datetime.now(UTC),
                )
            )
        t3 = time.perf_counter()
        spent["commit"] += t1 - t0
        spent["dispatch"] += t2 - t1
        spent["accept"] += t3 - t2
    total = time.perf_counter() - started
    registered = sum(1 for c in repo.get_cards(iccids).values() if c.state.value == "registered")
    assert len(operator.received) == count, (len(operator.received), count)
    assert registered == count, (registered, count)
    return {
        "records": count,
        "commit_s": spent["commit"],
        "dispatch_s": spent["dispatch"],
        "accept_s": spent["accept"],
        "total_s": total,
        "records_per_s": count / total,
        "commit_per_s": count / spent["commit"],
        "dispatch_per_s": count / spent["dispatch"],
        "accept_per_s": count / spent["accept"],
    }


def latency(samples: int) -> dict[str, Any]:
    from chalicelib.cards.domain.inventory import CardEvent, CardState, functions_for
    from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
    from chalicelib.operators.domain.messages import PushCard, PushMessage, PushVehicle
    from chalicelib.operators.domain.outbox import (
        CardWrite,
        CounterMove,
        OutboxCommit,
        OutboxRecord,
        OutboxStatus,
        requested_functions,
    )

    repo, store, _ = _setup()
    iccids = _import(repo, 3 * samples, seed=2028)
    people = _holders(3 * samples // CARDS_PER_PERSON + 1)
    cards = repo.get_cards(iccids)
    vehicles = repo.get_vehicles({c.vin for c in cards.values()})
    times: dict[str, list[float]] = {"transition": [], "without": [], "with": []}

    def change(iccid: str, holder: Any) -> tuple[CardWrite, CounterMove, CardEvent]:
        card = cards[iccid]
        at = datetime.now(UTC)
        event = CardEvent(
            iccid=iccid,
            seq=card.version + 1,
            at=at,
            event="registration_submitted",
            from_state=card.state,
            to_state=CardState.PENDING,
            actor="bench",
        )
        after = card.model_copy(
            update={
                "state": CardState.PENDING,
                "functions": functions_for(CardState.PENDING),
                "version": card.version + 1,
                "holder_id": holder.party_id,
                "updated_at": at,
            }
        )
        life = CardLifecycle(iccid=iccid, awaiting=True, holder_id_hash=holder.id_hash, holder_counted=True)
        write = CardWrite(before=card, after=after, events=(event,), lifecycle=life)
        return write, CounterMove(holder.id_hash, card.operator, +1, limit=10), event

    def record(iccid: str, holder: Any) -> OutboxRecord:
        card = cards[iccid]
        vehicle = vehicles[card.vin]
        record_id, at = uuid.uuid4().hex, datetime.now(UTC)
        message = PushMessage(
            message_id=record_id,
            kind=PushKind.REGISTER,
            card=PushCard(iccid=iccid, msisdn=card.msisdn, operator=card.operator),
            vehicle=PushVehicle(
                **vehicle.model_dump(include={"vin", "engine_no", "brand", "model", "colour"})
            ),
            holder=holder.facts,
            holder_id_hash=holder.id_hash,
            functions=requested_functions(PushKind.REGISTER),
            created_at=at,
        )
        return OutboxRecord(
            record_id=record_id,
            kind=PushKind.REGISTER,
            iccid=iccid,
            operator=card.operator,
            status=OutboxStatus.PENDING,
            next_attempt_at=at,
            sweep_at=at + timedelta(seconds=30),
            created_at=at,
            updated_at=at,
            message=message,
        )

    for i in range(samples):
        holder = people[(3 * i) // CARDS_PER_PERSON]
        a, b, c = iccids[3 * i : 3 * i + 3]
        _, _, event = change(a, holder)
        start = time.perf_counter()
        repo.transition(cards[a], CardState.PENDING, event, holder.party_id)
        times["transition"].append(time.perf_counter() - start)
        write, counter, _ = change(b, holder)
        start = time.perf_counter()
        store.commit(OutboxCommit(cards=(write,), counters=(counter,)))
        times["without"].append(time.perf_counter() - start)
        write, counter, _ = change(c, holder)
        pushed = record(c, holder)
        start = time.perf_counter()
        store.commit(OutboxCommit(cards=(write,), records=(pushed,), counters=(counter,)))
        times["with"].append(time.perf_counter() - start)
    # The emulator's floor: one plain GetItem through boto3, what every call above costs at least.
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    ddb, table = client("dynamodb"), get_settings().table_name("cards")
    for iccid in iccids[:samples]:
        start = time.perf_counter()
        ddb.get_item(TableName=table, Key={"iccid": {"S": iccid}})
        times.setdefault("get_item", []).append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {
        "samples": samples,
        "transition_ms": med["transition"],
        "without_outbox_ms": med["without"],
        "with_outbox_ms": med["with"],
        "ratio_with_vs_without": med["with"] / med["without"],
        "ratio_with_vs_transition": med["with"] / med["transition"],
        "get_item_ms": med["get_item"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="registrations pushed end to end")
    parser.add_argument("--samples", type=int, default=300, help="transactions timed per variant")
    moto_options(parser)
    args = parser.parse_args()

    from moto import mock_aws

    patch, moto_mode = moto_transactions(args.stock_moto)
    with patch:
        with mock_aws():
            run = throughput(args.count)
        with mock_aws():
            lat = latency(args.samples)
    if args.json:
        print(json.dumps({"throughput": run, "latency": lat, "moto": moto_mode}))
        return
    print(f"outbox end to end ({run['records']:,} registrations, moto in-process, {moto_mode}):")
    rows = (
        ("commit", "submit: transaction + enqueue"),
        ("dispatch", "receive, claim, push, mark sent"),
        ("accept", "callback applied"),
    )
    for phase, what in rows:
        print(f"  {phase:<9} {run[phase + '_s']:7.1f} s  {run[phase + '_per_s']:7.0f} records/s  ({what})")
    print(
        f"  {'total':<9} {run['total_s']:7.1f} s  {run['records_per_s']:7.0f} records/s, commit to acceptance"
    )
    print(f"outbox write latency (median of {lat['samples']}, interleaved):")
    print(f"  transition alone (card + history)          {lat['transition_ms']:6.2f} ms")
    print(f"  lifecycle transaction without outbox item  {lat['without_outbox_ms']:6.2f} ms")
    print(f"  lifecycle transaction with outbox item     {lat['with_outbox_ms']:6.2f} ms")
    print(f"  ratio with / without outbox item           {lat['ratio_with_vs_without']:6.2f}")
    print(f"  ratio with outbox / transition alone       {lat['ratio_with_vs_transition']:6.2f}")
    print(f"  (moto's floor: one plain GetItem           {lat['get_item_ms']:6.2f} ms)")


if __name__ == "__main__":
    main()
