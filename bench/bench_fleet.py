"""Fleet registration benchmarks (单位登记, issue 16), on moto in-process with the fleet review state machine
(``infra/statemachines/fleet_review.asl.json``) executed for real by moto, printed as figures:

1. submit → review task visible: from ``POST /v1/enterprise/fleet/batches/{id}/submit`` to the case listed
   by ``GET /v1/fleet-cases?stage=first`` (its review task's token stored: a reviewer can decide);
2. decision → every card pushed: from the approving ``POST /v1/fleet-cases/{id}/decision`` to every card
   of the batch pending with its outbox record dispatched to the operator, for batches of 3 and 25;
3. batch size scaling: a CSV batch of 10, 100 and 500 vehicles end to end (CSV add → submit → automatic
   checks → approval, by two reviewers above the four-eyes size → every card pushed): the total, the time
   per vehicle, and the time per vehicle of the phases that depend on the vehicles.

What runs for real: the API through ``chalice.test.Client(app)`` (enterprise routes as the enterprise's
legal person, the review routes as reviewers), the state machine in moto, the real task handlers
(``chalicelib.events.fleet_tasks.handle_received``) and the outbox dispatcher (``Dispatcher``) fed by one
consumer thread polling both queues as the local worker does (``chalicelib.local.worker``; one message
batch at a time, so the Map's four concurrent chunks run one after another here), and the automatic
checks' OCR of the licence (RapidOCR, in process). What does not: the responsible person's ID photos,
face check and the licence's first read are **not walked**: the batch's verification flow is given its
photos and its verdicts directly (as ``tests/integration/test_fleet_apply.py`` does), a cost per batch,
not per vehicle, that ``bench_registration`` and ``bench_ocr``/``bench_faces`` time. The operator is an
in-process gateway that accepts every push (``bench_outbox``'s): no wire encoding, no HTTP, no callback
(``bench_push`` times those). The consumer polls every 20 ms when idle (the worker sleeps 1 s), so the
figures are the pipeline's, not the poll interval's.

A reviewer's approval is sent while the consumer runs, as in AWS: the workflow goes on the moment the
decision completes its token, and its next task may write the batch before the decision does (the
decision and ``prepare_cards`` each accept the other's write). Any refused approval fails the bench.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import MOTO_ENV, moto_options, moto_transactions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update(MOTO_ENV)
os.environ.update(
    {
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "CHEKA_SMS_RESEND_SECONDS": "0",
        "CHEKA_FLEET_FOUR_EYES_VEHICLES": os.environ.get("CHEKA_FLEET_FOUR_EYES_VEHICLES", "50"),
    }
)

PREFIX = "/v1/enterprise/fleet/batches"
DEALER = "D316"
IDLE_POLL = 0.02  # the consumer's sleep when both queues are empty
LIST_POLL = 0.02  # between two reads of the review queue while waiting for a case
TIMEOUT = 120.0


class Pipeline:
    """The worker's consumers in one thread: the fleet tasks queue (the real handlers, completing the
    tasks' tokens) and the outbox queue (the dispatcher, pushing to an accepting in-process operator)."""

    def __init__(self) -> None:
        from bench_outbox import AcceptingOperator

        from chalicelib.adapters.dynamo.outbox import OUTBOX_QUEUE, queue_name
        from chalicelib.core import deps
        from chalicelib.core.aws import client
        from chalicelib.core.settings import get_settings
        from chalicelib.events.fleet_tasks import fleet_tasks_queue_name
        from chalicelib.operators.dispatch import Dispatcher

        self.operator = AcceptingOperator()
        self.dispatcher = Dispatcher(
            deps.outbox_store(),
            self.operator.gateway,
            deps.push_queue(),
            dead_letters=deps.dead_letter_queue(),
        )
        sqs = client("sqs")
        self.sqs = sqs
        self.tasks_url = sqs.get_queue_url(QueueName=fleet_tasks_queue_name())["QueueUrl"]
        self.outbox_url = sqs.get_queue_url(QueueName=queue_name(get_settings(), OUTBOX_QUEUE))["QueueUrl"]
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.tasks_handled = 0
        self.thread = threading.Thread(target=self._run, name="fleet-worker", daemon=True)

    def pushed_iccids(self) -> set[str]:
        return {m.card.iccid for m in list(self.operator.received.values())}

    def _run(self) -> None:
        from chalicelib.events.fleet_tasks import handle_received

        while not self.stop.is_set():
            busy = False
            try:
                got = self.sqs.receive_message(QueueUrl=self.tasks_url, MaxNumberOfMessages=10)
                messages = got.get("Messages", [])
                if messages:
                    busy = True
                    result = handle_received(messages)
                    self.tasks_handled += len(messages)
                    self.failures += [f["itemIdentifier"] for f in result["batchItemFailures"]]
                got = self.sqs.receive_message(QueueUrl=self.outbox_url, MaxNumberOfMessages=10)
                messages = got.get("Messages", [])
                if messages:
                    busy = True
                    self.dispatcher.handle_received(messages)
            except Exception as exc:  # the worker logs and goes on; the figures say so
                self.failures.append(repr(exc))
            if not busy:
                time.sleep(IDLE_POLL)


class Bench:
    """The enterprise (its legal person signed in), two reviewers, the inventory's vehicles, the API."""

    def __init__(self, api: Any, pipeline: Pipeline) -> None:
        from chalicelib.core.auth import Role, issue_token
        from chalicelib.core.settings import get_settings
        from chalicelib.local.documents import (
            COMPANY,
            authorization_letter,
            business_licence,
            id_back,
            id_front,
        )
        from tests.integration.test_agents_api import make_legal, sign_in, sign_up

        self.api = api
        self.pipeline = pipeline
        self.company = COMPANY
        legal_id = sign_up(api, "benchLegal", "13800001616")
        make_legal(legal_id, COMPANY["uscc"], COMPANY["name"])
        self.enterprise = self._headers(sign_in(api, "benchLegal")["token"])
        settings = get_settings()
        self.reviewers = [
            self._headers(issue_token(settings, f"bench-reviewer-{i}", [Role.REVIEWER], ttl_seconds=3600))
            for i in (1, 2)
        ]
        self.admin = self._headers(issue_token(settings, "bench-admin", [Role.ADMIN], ttl_seconds=3600))
        letter = authorization_letter(
            owner_name=COMPANY["name"], owner_id_number=COMPANY["uscc"], vin="LSVAB2BR5LN000001", fmt="JPEG"
        )
        self.photos = {
            "business_licence": business_licence(fmt="JPEG"),
            "authorization_letter": letter,
            "custody_agreement": letter,
            "id_front": id_front(fmt="JPEG"),
            "id_back": id_back(fmt="JPEG"),
        }
        self.iccids: dict[str, list[str]] = {}
        self.stock: list[str] = []
        self.phones = 0
        self.batches: list[str] = []

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, headers: dict[str, str], doc: Any = None) -> tuple[int, Any]:
        body = json.dumps(doc, ensure_ascii=False) if doc is not None else None
        resp = getattr(self.api.http, method)(path, headers=headers, body=body)
        raw = resp.body.decode() if isinstance(resp.body, bytes) else resp.body
        return resp.status_code, (json.loads(raw) if raw else None)

    def ok(self, method: str, path: str, headers: dict[str, str], doc: Any = None) -> Any:
        status, body = self.call(method, path, headers, doc)
        if status >= 300:
            raise AssertionError(f"{method.upper()} {path}: {status} {body}")
        return body

    # -- set-up, untimed ----------------------------------------------------------------------------

    def import_vehicles(self, count: int) -> None:
        """``count`` vehicles with one unregistered card each (synthetic rows), sold by one dealer."""
        from chalicelib.local.synthetic import inventory_rows

        rows = list(inventory_rows(count, seed=1616))
        for row in rows:
            row["dealer_code"] = DEALER
            self.iccids.setdefault(row["vin"], []).append(row["iccid"])
        for start in range(0, len(rows), 500):
            self.ok("post", "/v1/admin/inventory/imports", self.admin, rows[start : start + 500])
        self.stock = list(self.iccids)

    def take(self, count: int) -> list[str]:
        vins, self.stock = self.stock[:count], self.stock[count:]
        assert len(vins) == count, "not enough vehicles imported"
        return vins

    def draft(self) -> dict[str, Any]:
        batch: dict[str, Any] = self.ok("post", PREFIX, self.enterprise, {"kind": "registration"})
        self.batches.append(batch["batch_id"])
        return batch

    def add_csv(self, batch: dict[str, Any], vins: list[str]) -> None:
        text = "vin,备注\n" + "".join(f"{vin},车{i}\n" for i, vin in enumerate(vins))
        added = self.ok("post", f"{PREFIX}/{batch['batch_id']}/vehicles/csv", self.enterprise, {"csv": text})
        assert len(added["added"]) == len(vins), added["rows"][:3]

    def choose_dealer(self, batch: dict[str, Any]) -> None:
        """The selling dealer of the batch's vehicles (chosen once they are in the batch)."""
        self.ok("put", f"{PREFIX}/{batch['batch_id']}/dealer", self.enterprise, {"dealer_code": DEALER})

    def finish_draft(self, batch: dict[str, Any]) -> None:
        """Every step but the vehicles, the dealer and the submit: the responsible phone by its code, the
        flow's photos and verdicts set directly (not walked), the consents."""
        from chalicelib.core import deps
        from chalicelib.kernel.personal import IdType, id_lookup_value
        from chalicelib.local.documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME
        from chalicelib.verification.domain.documents import DocumentKind
        from chalicelib.verification.domain.flows import CheckName, CheckVerdict, TypedIdentity

        path = f"{PREFIX}/{batch['batch_id']}"
        self.phones += 1
        phone = f"1390016{self.phones:04d}"
        self.ok("post", f"{path}/responsible-phone/code", self.enterprise, {"phone": phone})
        code = self.last_code()
        self.ok("put", f"{path}/responsible-phone", self.enterprise, {"phone": phone, "code": code})

        verification = deps.verification_service()
        flow = verification.flows.find(batch["flow_id"])
        assert flow is not None
        uploads = deps.upload_service()
        documents = {
            kind: uploads.store(flow.flow_id, DocumentKind(kind), jpeg, 1000, 1000).key
            for kind, jpeg in self.photos.items()
        }
        identity = TypedIdentity(
            id_type="resident_id",
            id_number=PERSON_ID_NUMBER,
            name=PERSON_NAME,
            address=PERSON_ADDRESS,
            uscc=self.company["uscc"],
            company_name=self.company["name"],
        )
        verification.flows.save(
            flow,
            identity=identity,
            person_hash=deps.keyed_hasher().digest(id_lookup_value(IdType.RESIDENT_ID, PERSON_ID_NUMBER)),
            documents={**flow.documents, **documents},
            checks={
                **flow.checks,
                CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
                CheckName.OCR_ID_BACK: CheckVerdict.PASSED,
                CheckName.AUTHORITY: CheckVerdict.PASSED,
                CheckName.OCR_BUSINESS_LICENCE: CheckVerdict.PASSED,
                CheckName.FACE: CheckVerdict.PASSED,
            },
        )
        shown = self.ok("get", path, self.enterprise)
        done = self.ok("post", f"{path}/consents", self.enterprise, {"texts": shown["consent_texts"]})
        assert set(done["missing"]) <= {"vehicles", "dealer"}, done["missing"]

    @staticmethod
    def last_code() -> str:
        """The newest code in the local SMS drop (a batch's notification may have come after it)."""
        import re

        from chalicelib.core import deps

        for message in deps.sms_drop().recent(20):
            found = re.search(r"验证码 (\d{6})", message.text)
            if found:
                return found.group(1)
        raise AssertionError("no code in the SMS drop")

    # -- the timed steps ----------------------------------------------------------------------------

    def submit(self, batch: dict[str, Any]) -> None:
        path = f"{PREFIX}/{batch['batch_id']}/submit"
        submitted = self.ok("post", path, self.enterprise, {"company_name": self.company["name"]})
        assert submitted["status"] == "submitted", submitted

    def wait_listed(self, batch_id: str, stage: str) -> float:
        """Seconds until the case is listed as awaiting a decision at ``stage`` (the review queue read
        every ``LIST_POLL`` s); the end time, ``time.perf_counter()``."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            page = self.ok(
                "get", f"/v1/fleet-cases?status=in_review&stage={stage}&limit=100", self.reviewers[0]
            )
            if any(c["batch_id"] == batch_id for c in page["cases"]):
                return time.perf_counter()
            if self.pipeline.failures:
                raise AssertionError(f"the worker failed: {self.pipeline.failures[:3]}")
            time.sleep(LIST_POLL)
        raise AssertionError(f"case {batch_id} never listed at stage {stage}")

    def wait_decidable(self, batch_id: str, stage: str) -> float:
        """Seconds until the case page says a decision can be taken at ``stage`` (``awaiting_decision``:
        its review task's token stored); the end time, ``time.perf_counter()``."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            status, shown = self.call("get", f"/v1/fleet-cases/{batch_id}", self.reviewers[0])
            if status not in (200, 404):
                raise AssertionError(f"GET /v1/fleet-cases/{batch_id}: {status} {shown}")
            if status == 200 and shown["awaiting_decision"] and shown["case"]["stage"] == stage:
                return time.perf_counter()
            if self.pipeline.failures:
                raise AssertionError(f"the worker failed: {self.pipeline.failures[:3]}")
            time.sleep(LIST_POLL)
        raise AssertionError(f"case {batch_id} never awaited a decision at stage {stage}")

    def decide(self, batch_id: str, reviewer: int) -> dict[str, Any]:
        """The approval, answered 200 or the bench fails."""
        path = f"/v1/fleet-cases/{batch_id}/decision"
        body = {"decision": "approve", "reason_codes": []}
        status, decided = self.call("post", path, self.reviewers[reviewer], body)
        if status >= 300:
            raise AssertionError(f"POST {path}: {status} {decided}")
        return dict(decided)

    def executions(self, batch_ids: list[str]) -> dict[str, int]:
        """How many of the batches' executions are in each status (RUNNING, SUCCEEDED, FAILED...)."""
        from collections import Counter

        from chalicelib.core import deps

        found: Counter[str] = Counter()
        for batch_id in batch_ids:
            arn = self.ok("get", f"{PREFIX}/{batch_id}", self.enterprise)["execution_arn"]
            found[deps.workflow().describe(arn) if arn else "not started"] += 1
        return dict(found)

    def approve(self, batch_id: str) -> None:
        """The first reviewer approves; above the four-eyes size the second one too once the case waits for
        them (that wait is inside the timing)."""
        decided = self.decide(batch_id, 0)
        if decided["stage"] == "second":
            self.wait_decidable(batch_id, "second")
            self.decide(batch_id, 1)

    def wait_pushed(self, vins: list[str]) -> float:
        wanted = {iccid for vin in vins for iccid in self.iccids[vin]}
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if wanted <= self.pipeline.pushed_iccids():
                return time.perf_counter()
            if self.pipeline.failures:
                raise AssertionError(f"the worker failed: {self.pipeline.failures[:3]}")
            time.sleep(0.01)
        missing = len(wanted - self.pipeline.pushed_iccids())
        raise AssertionError(f"{missing} of {len(wanted)} cards never pushed")

    def cards_pending(self, vins: list[str]) -> bool:
        from chalicelib.cards.domain.inventory import CardState
        from chalicelib.core import deps

        iccids = [i for vin in vins for i in self.iccids[vin]]
        cards = deps.inventory_repo().get_cards(iccids)
        return all(cards[i].state is CardState.PENDING for i in iccids)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(small: int, medium: int, sizes: list[int]) -> dict[str, Any]:
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources, stop_executions

    out: dict[str, Any] = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        deps.reset()
        started = time.perf_counter()
        create_resources(get_settings())
        pipeline = Pipeline()
        pipeline.thread.start()
        try:
            with Client(app) as api:
                bench = Bench(api, pipeline)
                bench.import_vehicles(small * 3 + medium * 25 + sum(sizes))
                out["setup_s"] = time.perf_counter() - started

                # 1 and 2: batches of 3 and of 25, each submitted, listed, approved, pushed
                listed: list[float] = []
                visible: list[float] = []
                pushed: dict[int, list[float]] = {3: [], 25: []}
                for size, count in ((3, small), (25, medium)):
                    for _ in range(count):
                        batch = bench.draft()
                        vins = bench.take(size)
                        bench.add_csv(batch, vins)
                        bench.choose_dealer(batch)
                        bench.finish_draft(batch)
                        t0 = time.perf_counter()
                        bench.submit(batch)
                        listed.append(bench.wait_listed(batch["batch_id"], "first") - t0)
                        visible.append(bench.wait_decidable(batch["batch_id"], "first") - t0)
                        t1 = time.perf_counter()
                        bench.approve(batch["batch_id"])
                        pushed[size].append(bench.wait_pushed(vins) - t1)
                        assert bench.cards_pending(vins)
                out["listed_s"] = listed
                out["visible_s"] = visible
                out["pushed_s"] = {str(k): v for k, v in pushed.items()}

                # 3: CSV batches of growing size, end to end
                scaling = []
                for size in sizes:
                    batch = bench.draft()
                    vins = bench.take(size)
                    bench.finish_draft(batch)  # untimed: the per-batch steps (phone, flow, consents)
                    t0 = time.perf_counter()
                    bench.add_csv(batch, vins)
                    bench.choose_dealer(batch)
                    t1 = time.perf_counter()
                    bench.submit(batch)
                    t2 = time.perf_counter()
                    t3 = bench.wait_decidable(batch["batch_id"], "first")
                    bench.approve(batch["batch_id"])
                    t4 = time.perf_counter()
                    t5 = bench.wait_pushed(vins)
                    assert bench.cards_pending(vins)
                    scaling.append(
                        {
                            "vehicles": size,
                            "total_s": t5 - t0,
                            "csv_s": t1 - t0,
                            "submit_s": t2 - t1,
                            "checks_s": t3 - t2,
                            "decisions_s": t4 - t3,
                            "apply_s": t5 - t4,
                        }
                    )
                out["scaling"] = scaling
                out["tasks_handled"] = pipeline.tasks_handled
                time.sleep(2)  # the last notifications
                out["executions"] = bench.executions(bench.batches)
                out["worker_failures"] = pipeline.failures
        finally:
            pipeline.stop.set()
            pipeline.thread.join(timeout=10)
            stop_executions(get_settings())
    deps.reset()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    moto_options(parser)
    parser.add_argument("--small", type=int, default=5, help="batches of 3 vehicles (default 5)")
    parser.add_argument("--medium", type=int, default=3, help="batches of 25 vehicles (default 3)")
    parser.add_argument("--sizes", default="10,100,500", help="CSV batch sizes end to end")
    args = parser.parse_args()
    from chalicelib.local.documents import cjk_font_path

    if cjk_font_path() is None:
        sys.exit("bench_fleet: no CJK font for the synthetic documents (the licence must be readable)")
    context, moto_name = moto_transactions(args.stock_moto)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with context:
        out = run(args.small, args.medium, sizes)
    if args.json:
        print(json.dumps({"moto": moto_name, **out}))
        return

    def ms(v: float) -> str:
        return f"{v * 1000:,.0f} ms"

    print(
        f"moto: {moto_name}; the state machine executed by moto; four-eyes above "
        f"{os.environ['CHEKA_FLEET_FOUR_EYES_VEHICLES']} vehicles"
    )
    print("the responsible person's ID, face and first licence read: verdicts set on the flow, not walked")
    print(f"set-up (resources, accounts, inventory): {out['setup_s']:.1f} s")
    for key, what in (("listed_s", "listed in the queue at stage first"), ("visible_s", "decidable")):
        v = out[key]
        print(
            f"1. submit → case {what} ({len(v)} batches): median {ms(statistics.median(v))}, "
            f"p95 {ms(_pct(v, 0.95))}, min {ms(min(v))}, max {ms(max(v))}"
        )
    for size, values in out["pushed_s"].items():
        if values:
            print(
                f"2. decision → every card pushed, {size} vehicles ({len(values)} batches): median "
                f"{ms(statistics.median(values))}, max {ms(max(values))}; "
                f"{ms(statistics.median(values) / int(size))} per card"
            )
    print("3. CSV batch end to end (CSV add → submit → checks → approval(s) → every card pushed):")
    print(
        "   vehicles | total | per vehicle | CSV add + dealer /veh | submit | checks→decidable "
        "| decision(s) | apply /card"
    )
    for row in out["scaling"]:
        n = row["vehicles"]
        print(
            f"   {n:>8} | {row['total_s']:6.2f} s | {ms(row['total_s'] / n):>8} | {ms(row['csv_s'] / n):>7} "
            f"| {ms(row['submit_s']):>8} | {ms(row['checks_s']):>8} | {ms(row['decisions_s']):>8} "
            f"| {ms(row['apply_s'] / n):>7}"
        )
    print(
        f"tasks handled by the consumer: {out['tasks_handled']}; failures: {out['worker_failures'] or 'none'}"
    )
    print(f"executions by status at the end: {out['executions']}")


if __name__ == "__main__":
    main()
