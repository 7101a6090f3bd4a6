"""Owner registration step handlers, in-process on moto (DynamoDB, KMS, S3, SQS), printed as figures:

for each step handler of ``RegistrationService`` (start, confirm_vehicle, verify_phone, the possession
of the car by the head-unit code, give_consents, submit, get, my_vehicles), the p50 and p95 latency
over N registrations of synthetic vehicles, and the number of AWS calls each call of the handler makes:
DynamoDB round trips (the portable figure: moto in-process is not DynamoDB's latency), KMS calls
(personal fields are envelope-encrypted with KMS data keys, phone numbers and IDs hashed with a KMS
HMAC key) and any other service.

The face engine and OCR are left out (they have their own benchmarks): between the phone and the
consents, the verification flow is put into "identity set, both ID sides read, face passed" directly
(``VerificationService.set_identity``, then the flow saved with its checks passed); those calls are
not timed. Each registration is a different person with a different phone, one vehicle each.

moto's TransactWriteItems deep-copies every table a transaction touches (``submit`` commits one), so by
default moto runs with DynamoDB's transaction behaviour as ``make run`` and the tests do
(``chalicelib.local.moto_patches``: an undo log of the touched items, constant cost);
``--stock-moto`` keeps moto's own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from common import MOTO_ENV

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

os.environ.update(
    {
        **MOTO_ENV,
        # Every registration gets its own phone; the limits are lifted anyway (tested in test_sms_codes).
        "CHEKA_SMS_RESEND_SECONDS": "0",
        "CHEKA_SMS_SENDS_PER_DAY": "1000000",
    }
)

T = TypeVar("T")

#: Registrations run before the timed ones (imports, pydantic schemas, KMS data keys, moto warm-up).
WARMUP = 3

#: The rows printed, in order: (label, step key). ``send code`` is the SMS route the phone step needs.
ROWS: tuple[tuple[str, str], ...] = (
    ("start", "start"),
    ("confirm_vehicle", "confirm_vehicle"),
    ("(send phone code)", "send_code"),
    ("verify_phone", "verify_phone"),
    ("(send head-unit code)", "send_head_unit_code"),
    ("prove_possession (head unit)", "prove_possession"),
    ("get (open, at consents)", "get_open"),
    ("give_consents", "give_consents"),
    ("submit", "submit"),
    ("get (submitted, pending)", "get_submitted"),
    ("my_vehicles (1 vehicle)", "my_vehicles"),
)


class ApiCalls:
    """Counts botocore API calls by (service, operation) into the bucket of the step being timed."""

    def __init__(self) -> None:
        self.current: Counter[tuple[str, str]] | None = None

    @contextmanager
    def counting(self) -> Iterator[None]:
        from botocore.client import BaseClient

        stock = BaseClient._make_api_call
        calls = self

        def counted(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if calls.current is not None:
                calls.current[(client.meta.service_model.service_name, operation_name)] += 1
            return stock(client, operation_name, api_params)

        BaseClient._make_api_call = counted
        try:
            yield
        finally:
            BaseClient._make_api_call = stock


class Recorder:
    """Latency and API calls of every timed step call."""

    def __init__(self, api: ApiCalls) -> None:
        self.api = api
        self.on = False
        self.times: dict[str, list[float]] = {}
        self.calls: dict[str, list[Counter[tuple[str, str]]]] = {}

    def __call__(self, step: str, action: Callable[[], T]) -> T:
        bucket: Counter[tuple[str, str]] = Counter()
        self.api.current = bucket
        start = time.perf_counter()
        try:
            return action()
        finally:
            elapsed = time.perf_counter() - start
            self.api.current = None
            if self.on:
                self.times.setdefault(step, []).append(elapsed)
                self.calls.setdefault(step, []).append(bucket)


def _setup(vehicles: int, seed: int, cards_per_vehicle: int) -> list[str]:
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources
    from chalicelib.local.synthetic import inventory_rows

    deps.reset()
    create_resources(get_settings())
    rows = list(inventory_rows(vehicles, seed=seed, cards_per_vehicle=cards_per_vehicle))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="bench")
    assert not report.errors, report.errors[:3]
    return list(dict.fromkeys(row["vin"] for row in rows))


def _sent_code() -> str:
    from chalicelib.core import deps

    text = deps.sms_drop().recent(1)[0].text
    return "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]


def _prove_identity(flow_id: str, caller: str, id_number: str) -> None:
    """The flow as after identity, OCR of both ID sides, the authority and a passed face check, without
    the engines."""
    from chalicelib.core import deps
    from chalicelib.verification.domain.documents import DocumentKind
    from chalicelib.verification.domain.flows import CheckName, CheckVerdict, TypedIdentity

    verification = deps.verification_service()
    identity = TypedIdentity(
        id_type="resident_id", id_number=id_number, name="张三", address="北京市朝阳区建国路 1 号"
    )
    flow = verification.set_identity(flow_id, caller, identity)
    documents = {
        kind.value: f"documents/{flow_id}/{kind.value}/{os.urandom(32).hex()}.jpg"
        for kind in (DocumentKind.ID_FRONT, DocumentKind.ID_BACK, DocumentKind.LIVE_CAPTURE)
    }
    checks = {
        CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
        CheckName.OCR_ID_BACK: CheckVerdict.PASSED,
        CheckName.AUTHORITY: CheckVerdict.PASSED,
        CheckName.FACE: CheckVerdict.PASSED,
    }
    verification.flows.save(flow, documents=documents, checks=checks)


def register(timed: Recorder, n: int, vin: str, id_number: str) -> None:
    """One whole registration of ``vin`` by person ``n``, each step handler through ``timed``."""
    from chalicelib.consents.domain import AcceptedConsent
    from chalicelib.consents.texts import consent_documents
    from chalicelib.core import deps
    from chalicelib.registration.domain.registrations import PossessionMethod, RegistrationKind, Step
    from chalicelib.sms.domain import SmsPurpose

    service = deps.registration_service()
    kind = RegistrationKind.REGISTRATION
    caller = f"bench-owner-{n:05d}"
    phone = f"139{n:08d}"

    view, opened = timed("start", lambda: service.start(caller, kind, vin))
    assert opened, view
    assert view.step is Step.CONFIRM_VEHICLE, view
    reg_id = view.registration_id
    view = timed("confirm_vehicle", lambda: service.confirm_vehicle(reg_id, caller))
    assert view.step is Step.VERIFY_PHONE, view
    timed("send_code", lambda: deps.sms_code_service().send(phone, SmsPurpose.OWNER_PHONE, caller=caller))
    code = _sent_code()
    view = timed("verify_phone", lambda: service.verify_phone(reg_id, caller, phone, code))
    assert view.step is Step.POSSESSION, view
    timed("send_head_unit_code", lambda: service.send_head_unit_code(reg_id, caller))
    shown = deps.vehicle_channel().recent(vin, 1)[0].code
    method = PossessionMethod.HEAD_UNIT
    view = timed("prove_possession", lambda: service.prove_possession(reg_id, caller, method, code=shown))
    assert view.step is Step.IDENTITY, view
    assert view.flow_id is not None
    _prove_identity(view.flow_id, caller, id_number)
    view = timed("get_open", lambda: service.get(reg_id, caller, kind))
    assert view.step is Step.CONSENTS, view
    accepted = [AcceptedConsent(kind=d.kind, version=d.version, sha256=d.sha256) for d in consent_documents()]
    client = {"ua": "bench/1.0", "ip": "203.0.113.7"}
    view = timed("give_consents", lambda: service.give_consents(reg_id, caller, accepted, client))
    assert view.step is Step.SUBMIT, view
    view = timed("submit", lambda: service.submit(reg_id, caller))
    assert view.step is Step.PENDING, view
    view = timed("get_submitted", lambda: service.get(reg_id, caller, kind))
    assert view.step is Step.PENDING, view
    mine = timed("my_vehicles", lambda: service.my_vehicles(caller))
    assert [v.step for v in mine.vehicles] == [Step.PENDING], mine


def _floor_get_item(vin: str, runs: int = 50) -> float:
    """moto's floor: one plain GetItem through boto3, the least any round trip costs here (median ms)."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    ddb, table = client("dynamodb"), get_settings().table_name("vehicles")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        ddb.get_item(TableName=table, Key={"vin": {"S": vin}})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def run(count: int, cards_per_vehicle: int, seed: int) -> dict[str, Any]:
    from chalicelib.local.synthetic import make_resident_id

    total = WARMUP + count
    vins = _setup(total, seed, cards_per_vehicle)
    rng = random.Random(seed)
    ids: list[str] = []
    while len(ids) < total:
        number = make_resident_id(rng)
        if number not in ids:
            ids.append(number)

    api = ApiCalls()
    timed = Recorder(api)
    started = time.perf_counter()
    with api.counting():
        for n in range(total):
            timed.on = n >= WARMUP
            register(timed, n, vins[n], ids[n])
    wall = time.perf_counter() - started
    floor = _floor_get_item(vins[0])

    steps: dict[str, Any] = {}
    for _label, key in ROWS:
        times = [t * 1000 for t in timed.times[key]]
        calls = timed.calls[key]
        per_service: Counter[str] = Counter()
        per_op: Counter[str] = Counter()
        ddb_counts = []
        for bucket in calls:
            ddb_counts.append(sum(c for (svc, _), c in bucket.items() if svc == "dynamodb"))
            for (svc, op), c in bucket.items():
                per_service[svc] += c
                per_op[f"{svc}.{op}"] += c
        steps[key] = {
            "p50_ms": statistics.median(times),
            "p95_ms": _p95(times),
            "dynamodb_per_call": per_service["dynamodb"] / len(calls),
            "dynamodb_min": min(ddb_counts),
            "dynamodb_max": max(ddb_counts),
            "kms_per_call": per_service["kms"] / len(calls),
            "other_per_call": {
                svc: n / len(calls)
                for svc, n in sorted(per_service.items())
                if svc not in ("dynamodb", "kms")
            },
            "operations_per_call": {op: n / len(calls) for op, n in sorted(per_op.items())},
        }
    return {
        "registrations": count,
        "cards_per_vehicle": cards_per_vehicle,
        "wall_s": wall,
        "get_item_floor_ms": floor,
        "steps": steps,
    }


def _print(result: dict[str, Any], moto_mode: str) -> None:
    print(
        f"registration step handlers ({result['registrations']} registrations after {WARMUP} warm-up, "
        f"{result['cards_per_vehicle']} card(s) per vehicle, moto in-process, {moto_mode}):"
    )
    print(f"  {'step':<26} {'p50 ms':>7} {'p95 ms':>7} {'DynamoDB/call':>14} {'KMS/call':>9}  other/call")
    for label, key in ROWS:
        s = result["steps"][key]
        ddb = f"{s['dynamodb_per_call']:.1f}"
        if s["dynamodb_min"] != s["dynamodb_max"]:
            ddb = f"{ddb} ({s['dynamodb_min']}–{s['dynamodb_max']})"
        other = ", ".join(f"{svc} {n:.1f}" for svc, n in s["other_per_call"].items()) or "—"
        print(
            f"  {label:<26} {s['p50_ms']:7.1f} {s['p95_ms']:7.1f} {ddb:>14} {s['kms_per_call']:9.1f}  {other}"
        )
    floor, wall = result["get_item_floor_ms"], result["wall_s"]
    print(f"  (moto's floor: one plain GetItem {floor:.2f} ms; whole run {wall:.0f} s)")
    print("  moto in-process is not DynamoDB's latency: the round-trip counts are the portable figure.")
    print("calls per step call, by operation (mean):")
    for label, key in ROWS:
        ops = result["steps"][key]["operations_per_call"]
        print(f"  {label:<26} " + ", ".join(f"{op} {n:.1f}" for op, n in ops.items()))


def main() -> None:
    from common import moto_options, moto_transactions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="registrations timed (after a warm-up)")
    parser.add_argument("--cards-per-vehicle", type=int, default=1, help="IoT cards of each vehicle")
    parser.add_argument("--seed", type=int, default=2031)
    moto_options(parser)
    args = parser.parse_args()

    from moto import mock_aws

    patch, moto_mode = moto_transactions(args.stock_moto)
    with patch, mock_aws():
        result = run(args.count, args.cards_per_vehicle, args.seed)
    if args.json:
        print(json.dumps({**result, "moto": moto_mode}))
        return
    _print(result, moto_mode)


if __name__ == "__main__":
    main()
