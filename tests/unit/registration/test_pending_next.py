"""While a registration is with the operator, the owner's view says what happens next: the operator's
answer (then an SMS), or, once the answer is late, the platform asking the operator itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.registration.domain.registrations import RegistrationKind, Step
from chalicelib.registration.views import PendingNext, pending_next
from tests.unit.registration.world import ME, World

REG = RegistrationKind.REGISTRATION


def test_a_pending_registration_says_it_waits_for_the_operator_then_that_the_platform_checks() -> None:
    world = World()
    reg_id = world.ready_to_submit(world.vins[0])
    world.service.submit(reg_id, ME)
    # Just submitted: the operator's answer is awaited
    shown = world.service.get(reg_id, ME, REG)
    assert shown.step is Step.PENDING
    assert shown.result is not None
    assert shown.result.next is PendingNext.WAITING_OPERATOR
    (mine,) = world.service.my_vehicles(ME).vehicles
    assert mine.result is not None
    assert mine.result.next is PendingNext.WAITING_OPERATOR
    # Late: the platform is checking with the operator
    world.clock.advance(minutes=31)
    late = world.service.get(reg_id, ME, REG)
    assert late.result is not None
    assert late.result.next is PendingNext.CHECKING_WITH_OPERATOR
    # Answered: nothing is pending, nothing next
    world.operator_answers(world.cards(world.vins[0])[0].iccid, CallbackOutcome.ACCEPTED)
    done = world.service.get(reg_id, ME, REG)
    assert done.step is Step.REGISTERED
    assert done.result is not None
    assert done.result.next is None


def test_pending_next_turns_at_the_late_age() -> None:
    since = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert pending_next(since, since + timedelta(minutes=29)) is PendingNext.WAITING_OPERATOR
    assert pending_next(since, since + timedelta(minutes=30)) is PendingNext.CHECKING_WITH_OPERATOR
    assert pending_next(None, since) is PendingNext.WAITING_OPERATOR
