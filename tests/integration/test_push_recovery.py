"""Nothing stays pending forever: pushes whose answer never came are settled by the hourly
reconciliation, which asks the (sandbox) operator over the signed status query; an operator's 4xx
dead-letters at once with its reason, listed for the OEM; dead records are retried in bulk; what cannot
be repaired is drift, with its alarmed metric. The clock is moved, never slept on."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.adapters.operator.http import HttpOperatorGateway
from chalicelib.adapters.operator.secrets import SecretsManagerKeySource
from chalicelib.cards.domain.inventory import CardState
from chalicelib.core.aws import client
from chalicelib.core.observability import get_logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.operators import Operator
from chalicelib.local.sandbox_operator import SandboxOperator
from chalicelib.operators.dispatch import Dispatcher, DispatchOutcome
from chalicelib.operators.domain.messages import PushStatusState
from chalicelib.operators.domain.outbox import CallbackNote, OutboxStatus
from chalicelib.operators.recovery import LOST_NOTE, REPUSHED_NOTE, DriftReason, PushRecovery
from tests.integration.test_lifecycle import World, card_now, import_cards, make_world, person, receive_all

UNICOM = Operator.CHINA_UNICOM
STALE = timedelta(minutes=30)
DRIFT = timedelta(hours=4)


def _keys() -> SecretsManagerKeySource:
    return SecretsManagerKeySource(client("secretsmanager"), get_settings().operator_secret_pattern)


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


@pytest.fixture
def sandbox(aws: None) -> Iterator[SandboxOperator]:
    """The sandbox operator on a free port, deciding at once; its callbacks never reach the platform
    (``drop_callbacks``), as when they are lost on the way."""
    with SandboxOperator(
        _keys(), "http://127.0.0.1:9/v1/operator/callbacks", decision_delay_seconds=0.01
    ) as s:
        s.faults.drop_callbacks = True
        yield s


class Recovery:
    """The world's store and clock, the HTTP gateway to the sandbox, the reconciliation over them."""

    def __init__(self, world: World, sandbox: SandboxOperator) -> None:
        self.world = world
        self.sandbox = sandbox
        self.gateway = HttpOperatorGateway(dict.fromkeys(Operator, sandbox.url), _keys())
        self.dispatcher = Dispatcher(
            world.store, self.gateway, world.queue, dead_letters=world.dead_letters, clock=world.clock
        )
        self.told: list[str] = []
        self.recovery = PushRecovery(
            world.store,
            self.gateway,
            world.queue,
            world.lifecycle.apply_callback,
            self.told.append,
            stale_after=STALE,
            drift_after=DRIFT,
            clock=world.clock,
        )

    def submit(self, seed: int) -> tuple[str, str]:
        (card,) = import_cards(UNICOM, 1, seed=seed)
        outcome = self.world.lifecycle.submit_registration(card.iccid, person(seed), "owner:u1")
        assert outcome.record_id is not None
        return card.iccid, outcome.record_id

    def push(self, record_id: str) -> DispatchOutcome:
        outcome = self.dispatcher.dispatch(record_id)
        assert self.sandbox.wait_idle()
        return outcome


@pytest.fixture
def rec(world: World, sandbox: SandboxOperator) -> Recovery:
    return Recovery(world, sandbox)


def _status(world: World, record_id: str) -> OutboxStatus:
    record = world.store.get(record_id)
    assert record is not None
    return record.status


def test_a_callback_that_never_comes_is_settled_by_the_status_query_and_the_card_ends_registered(
    rec: Recovery, world: World
) -> None:
    # Given a registration pushed and decided by the operator, whose callback is lost
    iccid, record_id = rec.submit(1)
    assert rec.push(record_id) is DispatchOutcome.SENT
    assert [c.outcome.value for c in rec.sandbox.callbacks_for(record_id)] == ["accepted"]
    assert card_now(iccid).state is CardState.PENDING
    # When the reconciliation runs before the push is stale: nothing is asked
    world.clock.advance(10 * 60)
    assert rec.recovery.run().checked == 0
    # And when it runs past the stale age
    world.clock.advance(25 * 60)
    report = rec.recovery.run()
    # Then the operator's decision is applied as its callback would be, and the person is told
    assert (report.checked, report.applied, report.drift_count) == (1, 1, 0)
    assert card_now(iccid).state is CardState.REGISTERED
    assert _status(world, record_id) is OutboxStatus.ACCEPTED
    assert rec.told == [record_id]
    # And the callback arriving late after all changes nothing twice
    late = world.lifecycle.apply_callback(rec.sandbox.callbacks_for(record_id)[0])
    assert late.note in (CallbackNote.DUPLICATE, CallbackNote.ALREADY_DECIDED)
    # And a second run finds nothing left to ask
    assert rec.recovery.run().checked == 0


def test_a_refusal_whose_callback_was_lost_frees_the_card_with_its_reason(
    rec: Recovery, world: World
) -> None:
    # Given an ID on the operator's blacklist: the push is refused, the callback lost
    holder_seed = 2
    iccid, record_id = rec.submit(holder_seed)
    record = world.store.get(record_id)
    assert record is not None
    assert record.message.holder is not None
    rec.sandbox.add_to_blacklist(record.message.holder.id_number)
    assert rec.push(record_id) is DispatchOutcome.SENT
    # When the reconciliation asks
    world.clock.advance(31 * 60)
    assert rec.recovery.run().applied == 1
    # Then the card is back to unregistered and the record rejected with the operator's reason
    assert card_now(iccid).state is CardState.UNREGISTERED
    settled = world.store.get(record_id)
    assert settled is not None
    assert (settled.status, settled.reason is not None) == (OutboxStatus.REJECTED, True)


def test_a_push_the_operator_never_received_is_pushed_again_and_then_registered(
    rec: Recovery, world: World
) -> None:
    # Given a push the operator acknowledged and then lost
    rec.sandbox.faults.forget_pushes = True
    iccid, record_id = rec.submit(3)
    assert rec.push(record_id) is DispatchOutcome.SENT
    assert rec.gateway.query_status(UNICOM, record_id).state is PushStatusState.UNKNOWN
    # When the reconciliation asks past the stale age
    world.clock.advance(31 * 60)
    sent_before = len(world.queue.sent)
    report = rec.recovery.run()
    # Then the record is pending again, with a fresh budget, the reason, and its message queued
    assert (report.repushed, report.drift_count) == (1, 0)
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_error) == (OutboxStatus.PENDING, 0, REPUSHED_NOTE)
    assert [r for r, _ in world.queue.sent[sent_before:]] == [record_id]
    # When the operator keeps it this time (its callback lost again) and the next run asks
    rec.sandbox.faults.forget_pushes = False
    assert rec.push(record_id) is DispatchOutcome.SENT
    world.clock.advance(31 * 60)
    assert rec.recovery.run().applied == 1
    # Then the card is registered
    assert card_now(iccid).state is CardState.REGISTERED


def test_a_push_lost_again_after_its_re_push_is_dead_with_its_reason_and_drift(
    rec: Recovery, world: World
) -> None:
    rec.sandbox.faults.forget_pushes = True
    iccid, record_id = rec.submit(4)
    assert rec.push(record_id) is DispatchOutcome.SENT
    world.clock.advance(31 * 60)
    assert rec.recovery.run().repushed == 1
    assert rec.push(record_id) is DispatchOutcome.SENT
    world.clock.advance(31 * 60)
    report = rec.recovery.run()
    assert (report.dead, report.by_reason) == (1, {DriftReason.LOST.value: 1})
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.last_error) == (OutboxStatus.DEAD, LOST_NOTE)
    assert card_now(iccid).state is CardState.PENDING


def test_an_operator_4xx_dead_letters_at_once_with_its_reason_listed_for_the_oem(
    rec: Recovery, world: World, auth: Any
) -> None:
    from chalice.test import Client

    from app import app
    from chalicelib.api import lifecycle

    # Given an operator answering "unknown card" (400) to the push
    rec.sandbox.faults.refuse_pushes = "unknown_card"
    _, record_id = rec.submit(5)
    # When it is dispatched
    outcome = rec.push(record_id)
    # Then it is dead at once, after one attempt, with the operator's reason
    assert outcome is DispatchOutcome.DEAD
    record = world.store.get(record_id)
    assert record is not None
    assert record.attempts == 1
    assert record.last_error is not None
    assert "unknown_card" in record.last_error
    assert len(receive_all(world.dead_letters)) == 1
    # And the OEM sees it with its reason in the dead list
    if "/v1/admin/outbox" not in app.routes:
        app.register_blueprint(lifecycle.bp)
    with Client(app) as http_client:
        resp = http_client.http.get("/v1/admin/outbox?status=dead", headers=auth("admin"))
    assert resp.status_code == 200
    items = json.loads(resp.body)["items"]
    listed = [i for i in items if i["record_id"] == record_id]
    assert len(listed) == 1
    assert "unknown_card" in listed[0]["last_error"]


def test_bulk_retry_requeues_every_dead_record(rec: Recovery, world: World) -> None:
    from click.testing import CliRunner

    from chalicelib.cli.cards import outbox

    rec.sandbox.faults.refuse_pushes = "malformed"
    records = [rec.submit(10 + i)[1] for i in range(3)]
    for record_id in records:
        assert rec.push(record_id) is DispatchOutcome.DEAD
    receive_all(world.queue)  # what the submits queued is consumed
    # When the cause is fixed and every dead record is retried at once
    result = CliRunner().invoke(outbox, ["retry", "--dead"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    # Then each is pending again with a fresh budget and queued
    assert (doc["retried"], sorted(doc["record_ids"]), doc["more"]) == (3, sorted(records), False)
    for record_id in records:
        record = world.store.get(record_id)
        assert record is not None
        assert (record.status, record.attempts) == (OutboxStatus.PENDING, 0)
    queued = sorted(json.loads(m["Body"])["record_id"] for m in receive_all(world.queue))
    assert queued == sorted(records)
    # And nothing dead is left to retry
    again = json.loads(CliRunner().invoke(outbox, ["retry", "--dead"], catch_exceptions=False).output)
    assert again["retried"] == 0
    # And a record id together with --dead is a usage error
    both = CliRunner().invoke(outbox, ["retry", records[0], "--dead"])
    assert both.exit_code == 2


def _drift_metrics(out: str) -> list[float]:
    found = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        names = [m["Name"] for d in doc.get("_aws", {}).get("CloudWatchMetrics", []) for m in d["Metrics"]]
        if "ReconciliationDrift" in names:
            value = doc["ReconciliationDrift"]
            found += [float(v) for v in value] if isinstance(value, list) else [float(value)]
    return found


def test_what_cannot_be_repaired_is_drift_with_its_alarmed_metric(
    rec: Recovery, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    get_logger()
    # Given a push received and never decided by the operator, and another whose operator is down
    rec.sandbox.decision_delay_seconds = 3600
    _, undecided = rec.submit(20)
    assert rec.dispatcher.dispatch(undecided) is DispatchOutcome.SENT
    assert rec.gateway.query_status(UNICOM, undecided).state is PushStatusState.RECEIVED
    # When the reconciliation runs past the stale age but before the drift age: in flight, no drift
    world.clock.advance(31 * 60)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        first = rec.recovery.run()
    assert (first.in_flight, first.drift_count) == (1, 0)
    # And past the drift age, with the operator down for the status query
    world.clock.advance(4 * 3600)
    with contextlib.redirect_stdout(printed):
        undecided_report = rec.recovery.run()
        rec.sandbox.faults.down = True
        down_report = rec.recovery.run()
    # Then each is drift with its reason, and the metric says how many (0 for the first run)
    assert undecided_report.by_reason == {DriftReason.UNDECIDED.value: 1}
    assert down_report.by_reason == {DriftReason.UNREACHABLE.value: 1}
    assert down_report.drifts[0].record_id == undecided
    assert _drift_metrics(printed.getvalue()) == [0.0, 1.0, 1.0]
    # And the record is untouched: still sent, its card pending
    assert _status(world, undecided) is OutboxStatus.SENT


def test_the_reconciliation_is_scheduled_hourly_in_aws_and_in_the_local_worker() -> None:
    from app import app
    from chalicelib.local.worker import SCHEDULES

    assert [s.every_seconds for s in SCHEDULES if s.name == "reconcile-pushes"] == [3600.0]
    from chalice.app import ScheduledEventConfig

    handlers = {h.name: h for h in app.event_sources}
    schedule = handlers["reconcile_pushes"]
    assert isinstance(schedule, ScheduledEventConfig)
    expression = schedule.schedule_expression
    assert not isinstance(expression, str)
    assert expression.to_string() == "rate(1 hour)"
