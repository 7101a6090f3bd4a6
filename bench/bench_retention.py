"""Scheduled jobs over a large store, on moto in-process (as ``make run`` and the tests run it): the hourly
push reconciliation (``operators.recovery.PushRecovery``) and the daily retention purge
(``retention.service.Retention``, 第十八条) over ``--cards`` cards, printed as figures: the time each run
takes, and the DynamoDB calls and items it reads, per card of the store and per item due.

The store: ``--cards`` registered cards with their settled pushes and retention subjects (in service);
``--due-percent`` of them also carry a stale push (sent two hours ago, its callback lost: the operator
answers the status query with its acceptance) and as many holders whose service ended more than two years
ago with their materials (registration, flow with sealed identity and two stored photos, evidence with
sealed personal facts, party). Both jobs must read what is due through their sparse indexes (the
open-status index, the due index), never the whole table: the reads per card stay at the due fraction
whatever the store's size, and no Scan is made.

DynamoDB calls are counted at botocore (every client, pynamodb's included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import MOTO_ENV, moto_options, moto_transactions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(MOTO_ENV)

READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")


class CallCounter:
    """DynamoDB operations and the items they read, counted for every botocore client of the process."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items = 0
        self.enabled = False

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counter = self

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            result = original(client, operation, params)
            if counter.enabled and client.meta.service_model.service_name == "dynamodb":
                counter.calls[operation] += 1
                if operation in ("Query", "Scan"):
                    counter.items += len(result.get("Items", []))
                elif operation == "GetItem":
                    counter.items += int("Item" in result)
                elif operation == "BatchGetItem":
                    counter.items += sum(len(v) for v in result.get("Responses", {}).values())
            return result

        BaseClient._make_api_call = counted

    def reset(self) -> None:
        self.calls.clear()
        self.items = 0

    @property
    def reads(self) -> int:
        return sum(self.calls[op] for op in READS)


def _setup() -> None:
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    deps.reset()
    create_resources(get_settings())


def _warm() -> None:
    """Every table's client made before anything is timed (pynamodb makes one per model on first use, and
    loading botocore's service description is not what the jobs cost once a function is warm)."""
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core import deps
    from chalicelib.core.aws import client

    for spec in TABLES:
        spec.model._get_connection().connection.client  # noqa: B018
    client("s3")
    client("kms")
    deps.retention()
    deps.lifecycle()


def _message(record_id: str, iccid: str, msisdn: str, at: datetime) -> Any:
    from chalicelib.cards.domain.inventory import CardFunction
    from chalicelib.cards.domain.lifecycle import PushKind
    from chalicelib.kernel.operators import Operator
    from chalicelib.operators.domain.messages import PushCard, PushMessage, PushVehicle

    return PushMessage(
        message_id=record_id,
        kind=PushKind.REGISTER,
        card=PushCard(iccid=iccid, msisdn=msisdn, operator=Operator.CHINA_MOBILE),
        vehicle=PushVehicle(vin="LSVBENCH000000001", engine_no="E1", brand="B", model="M", colour="white"),
        holder=None,
        previous_holder_id_hash=None,
        holder_id_hash="h",
        functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        created_at=at,
    )


def _seed(cards: int, due: int) -> dict[str, Any]:
    """``cards`` registered cards (settled pushes, subjects in service), ``due`` of them with a stale push,
    and ``due`` ended holders with their materials; seconds taken."""
    from chalicelib.adapters.dynamo.models import (
        CardModel,
        FlowModel,
        PartyModel,
        RegistrationModel,
    )
    from chalicelib.adapters.dynamo.models_outbox import CardLifecycleModel, OutboxModel
    from chalicelib.adapters.dynamo.models_retention import RetentionModel
    from chalicelib.adapters.dynamo.outbox import _open_key
    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.retention.domain import due_shard
    from chalicelib.verification.domain.evidence import EvidenceKind

    start = time.perf_counter()
    now = datetime.now(UTC)
    two_hours_ago = now - timedelta(hours=2)
    long_ago = now - timedelta(days=3 * 365)
    stale = set(range(0, cards, max(1, cards // due))) if due else set()
    with (
        CardModel.batch_write() as card_batch,
        OutboxModel.batch_write() as outbox_batch,
        RetentionModel.batch_write() as subjects,
        CardLifecycleModel.batch_write() as lives,
    ):
        for i in range(cards):
            iccid, msisdn = f"8986{i:015d}", f"1440{i:09d}"
            record_id = uuid.uuid4().hex
            pending = i in stale
            card_batch.save(
                CardModel(
                    iccid,
                    msisdn=msisdn,
                    operator="china_mobile",
                    vin=f"LSVBENCH{i:09d}",
                    state="pending" if pending else "registered",
                    functions=["emergency"] if pending else ["emergency", "telematics"],
                    version=2,
                    holder_id=f"party-{i}",
                    created_at=long_ago,
                    updated_at=two_hours_ago,
                )
            )
            message = _message(record_id, iccid, msisdn, two_hours_ago)
            outbox_batch.save(
                OutboxModel(
                    record_id,
                    status="sent" if pending else "accepted",
                    kind="register",
                    iccid=iccid,
                    operator="china_mobile",
                    attempts=1,
                    next_attempt_at=two_hours_ago,
                    created_at=two_hours_ago,
                    updated_at=two_hours_ago,
                    message_json=message.model_dump_json(exclude={"holder"}),
                    open_status=_open_key(_status("sent"), record_id) if pending else None,
                    status_at=two_hours_ago if pending else None,
                    decided_at=None if pending else two_hours_ago,
                )
            )
            if pending:  # the others' bookkeeping is never read by either job
                lives.save(
                    CardLifecycleModel(
                        iccid,
                        card_version=2,
                        message_id=record_id,
                        message_kind="register",
                        awaiting=pending,
                        holder_id_hash=f"hash-{i}",
                        holder_counted=True,
                        active_operator="china_mobile",
                        updated_at=two_hours_ago,
                    )
                )
            subjects.save(RetentionModel(f"party-{i}", registrations={f"reg-{i}"}, version=1))
    seeded_cards = time.perf_counter() - start
    # The holders whose service ended three years ago, with their materials.
    evidence = deps.evidence_log()
    s3, bucket = client("s3"), get_settings().documents_bucket
    ended = now - timedelta(days=3 * 365)
    for j in range(due):
        party, reg, flow = f"ended-{j}", f"ended-reg-{j}", f"fended{j}"
        PartyModel(
            party,
            kind="person",
            id_type="resident_id",
            id_hash=f"ended-hash-{j}",
            data_key=b"k" * 32,
            name_enc=b"n" * 24,
            id_number_enc=b"i" * 40,
            created_at=ended,
        ).save()
        RegistrationModel(
            reg,
            owner=f"owner-{j}",
            kind="registration",
            vin=f"LSVENDED{j:09d}",
            iccids=[f"8987{j:015d}"],
            status="submitted",
            version=3,
            flow_id=flow,
            party_id=party,
            data_key=b"k" * 32,
            sealed={"phone": b"p" * 28},
            onsite_photo=f"documents/{flow}/live_capture.jpg",
            created_at=ended,
            updated_at=ended,
        ).save()
        FlowModel(
            flow,
            owner=f"owner-{j}",
            purpose="registration",
            status="verified",
            version=5,
            person_hash=f"ended-hash-{j}",
            data_key=b"k" * 32,
            identity_enc={"name": b"n" * 24},
            documents={"id_front": f"documents/{flow}/id_front.jpg"},
            created_at=ended,
            updated_at=ended,
            expires_epoch=int((now + timedelta(days=7000)).timestamp()),
        ).save()
        evidence.append(flow, EvidenceKind.OCR_READ, "bench", {"document": "id_front"}, {"name": "张三"})
        evidence.append(flow, EvidenceKind.FACE_COMPARED, "bench", {"score": 0.9})
        for name in ("id_front.jpg", "live_capture.jpg"):
            s3.put_object(Bucket=bucket, Key=f"documents/{flow}/{name}", Body=b"\xff\xd8" + b"0" * 2000)
        RetentionModel(
            party,
            registrations={reg},
            iccids={f"8987{j:015d}"},
            ended_at=ended,
            reason="deregistration_confirmed",
            due_shard=due_shard(party),
            due_at=ended + timedelta(days=2 * 365),
            version=1,
        ).save()
    return {
        "seconds_cards": seeded_cards,
        "seconds_due_materials": time.perf_counter() - start - seeded_cards,
    }


def _status(value: str) -> Any:
    from chalicelib.operators.domain.outbox import OutboxStatus

    return OutboxStatus(value)


class AcceptingStatusQuery:
    """The operator's status query: every message it is asked about was accepted (its callback lost)."""

    def __init__(self) -> None:
        from chalicelib.cards.domain.inventory import CardFunction
        from chalicelib.operators.domain.messages import (
            CallbackOutcome,
            OperatorCallback,
            PushReceipt,
            PushStatus,
            PushStatusState,
        )
        from chalicelib.operators.ports import OperatorGateway

        class _Gateway(OperatorGateway):
            def push(self, message: Any) -> PushReceipt:
                raise AssertionError("the reconciliation pushes nothing here")

            def query_status(self, operator: Any, message_id: str) -> PushStatus:
                from chalicelib.adapters.dynamo.models_outbox import OutboxModel

                iccid = OutboxModel.get(message_id, attributes_to_get=["iccid"]).iccid
                decision = OperatorCallback(
                    callback_id=f"cb-{message_id}",
                    message_id=message_id,
                    operator=operator,
                    iccid=iccid,
                    outcome=CallbackOutcome.ACCEPTED,
                    functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
                    decided_at=datetime.now(UTC),
                )
                return PushStatus(
                    message_id=message_id, operator=operator, state=PushStatusState.DECIDED, decision=decision
                )

        self.gateway = _Gateway()


def _reconcile(counter: CallCounter) -> dict[str, Any]:
    from chalicelib.core import deps
    from chalicelib.operators.recovery import PushRecovery

    recovery = PushRecovery(
        deps.outbox_store(),
        AcceptingStatusQuery().gateway,
        deps.push_queue(),
        deps.lifecycle().apply_callback,
        lambda message_id: None,
        stale_after=timedelta(minutes=30),
        drift_after=timedelta(minutes=240),
    )
    counter.reset()
    counter.enabled = True
    start = time.perf_counter()
    report = recovery.run(limit=100_000)
    seconds = time.perf_counter() - start
    counter.enabled = False
    # The status query's own look-up of the ICCID is the fake operator's, not the job's: not counted.
    gets = counter.calls["GetItem"] - report.checked
    return {
        "seconds": seconds,
        "checked": report.checked,
        "applied": report.applied,
        "calls": dict(counter.calls) | {"GetItem": gets},
        "reads": counter.reads - report.checked,
        "scans": counter.calls["Scan"],
    }


def _purge(counter: CallCounter) -> dict[str, Any]:
    from chalicelib.core import deps

    retention = deps.retention()
    counter.reset()
    counter.enabled = True
    start = time.perf_counter()
    report = retention.purge_due(limit=100_000)
    seconds = time.perf_counter() - start
    counter.enabled = False
    return {
        "seconds": seconds,
        "due": report.due,
        "purged": report.purged,
        "objects": report.counts.objects,
        "calls": dict(counter.calls),
        "reads": counter.reads,
        "items_read": counter.items,
        "scans": counter.calls["Scan"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=100_000, help="cards in the store (default 100,000)")
    parser.add_argument("--due-percent", type=float, default=0.1, help="of them due (default 0.1%%)")
    moto_options(parser)
    args = parser.parse_args()
    due = max(1, int(args.cards * args.due_percent / 100))

    from moto import mock_aws

    counter = CallCounter()
    counter.install()
    transactions, moto_name = moto_transactions(args.stock_moto)
    with mock_aws(), transactions:
        _setup()
        seeded = _seed(args.cards, due)
        _warm()
        reconciled = _reconcile(counter)
        purged = _purge(counter)
    result = {"cards": args.cards, "due": due, "moto": moto_name, "seed": seeded}
    result["reconciliation"] = reconciled | {
        "reads_per_card": reconciled["reads"] / args.cards,
        "reads_per_due_push": reconciled["reads"] / max(1, reconciled["checked"]),
    }
    result["retention_purge"] = purged | {
        "reads_per_card": purged["reads"] / args.cards,
        "reads_per_due_subject": purged["reads"] / max(1, purged["due"]),
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(f"{args.cards:,} cards, {due:,} due ({args.due_percent}%), {moto_name}")
    print(f"seeded in {seeded['seconds_cards']:.1f} s (+{seeded['seconds_due_materials']:.1f} s materials)")
    for name, figures, per in (
        ("reconciliation", result["reconciliation"], "due_push"),
        ("retention purge", result["retention_purge"], "due_subject"),
    ):
        done = figures.get("applied", figures.get("purged"))
        print(
            f"{name}: {figures['seconds']:.2f} s for {done:,} settled; "
            f"{figures['reads']:,} reads ({figures['reads_per_card']:.4f} per card, "
            f"{figures[f'reads_per_{per}']:.2f} per item due), scans: {figures['scans']}; "
            f"calls {figures['calls']}"
        )


if __name__ == "__main__":
    main()
