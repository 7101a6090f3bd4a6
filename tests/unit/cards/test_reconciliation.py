"""Reconciliation with the operator's listing, over the fakes."""

from __future__ import annotations

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.views import DriftKind
from chalicelib.operators.domain.messages import OperatorCardRecord, OperatorCardState
from tests.fakes.operators import FakeOperatorDirectory
from tests.unit.cards.world import MOBILE, UNICOM, World, holder


def listed(world: World, iccid: str, state: OperatorCardState, **kw: object) -> OperatorCardRecord:
    return OperatorCardRecord.model_validate(
        {"operator": MOBILE, "iccid": iccid, "state": state, "updated_at": world.clock(), **kw}
    )


def test_each_kind_of_drift_is_reported() -> None:
    # given the platform's cards and an operator listing that disagrees in every way
    world = World()
    (in_sync, wrong_state, wrong_holder, too_open, missing) = (world.vehicle(n)[0] for n in range(5))
    (other,) = world.vehicle(9, operator=UNICOM)
    for card in (in_sync, wrong_holder, missing):
        world.registered(card.iccid, holder(1))
    directory = FakeOperatorDirectory()
    reg = OperatorCardState.REGISTERED
    directory.holds(
        listed(world, in_sync.iccid, reg, holder_id_hash="hash-1"),
        listed(world, wrong_state.iccid, reg),
        listed(world, wrong_holder.iccid, reg, holder_id_hash="hash-x"),
        listed(world, too_open.iccid, OperatorCardState.DEREGISTERED, functions=[CardFunction.DATA]),
        listed(world, other.iccid, OperatorCardState.DEREGISTERED),
        listed(world, "89860099999999999999", reg),
    )
    # when the platform reconciles
    report = world.lifecycle.reconcile(MOBILE, directory)
    # then every drift kind is counted, and the card in sync is not
    assert report.listed == 6
    assert report.in_sync == 1
    assert report.by_kind == {
        DriftKind.STATE.value: 1,
        DriftKind.HOLDER.value: 1,
        DriftKind.FUNCTIONS_EXCEED.value: 1,
        DriftKind.OTHER_OPERATOR.value: 1,
        DriftKind.UNKNOWN_CARD.value: 1,
        DriftKind.MISSING_AT_OPERATOR.value: 1,
    }


def test_a_card_awaiting_its_answer_is_in_flight_not_drift() -> None:
    world = World()
    (card,) = world.vehicle(1)
    world.lifecycle.submit_registration(card.iccid, holder(1), "owner")
    directory = FakeOperatorDirectory()
    directory.holds(listed(world, card.iccid, OperatorCardState.DEREGISTERED))
    report = world.lifecycle.reconcile(MOBILE, directory)
    assert (report.in_flight, report.drift_count) == (1, 0)


def test_drifts_beyond_the_cap_are_counted_and_the_report_truncated() -> None:
    world = World()
    directory = FakeOperatorDirectory()
    directory.holds(
        *(listed(world, f"8986009999999999{n:04d}", OperatorCardState.REGISTERED) for n in range(5))
    )
    report = world.lifecycle.reconcile(MOBILE, directory, max_drifts=2)
    assert (report.drift_count, len(report.drifts), report.truncated) == (5, 2, True)
