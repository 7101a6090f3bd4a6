"""The receipt number (受理编号) a submission is given, over fakes: its form, the same number on every read
and when a registration claimed before is submitted again, another number for another registration,
and a candidate another registration holds passed over."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from chalicelib.kernel.clock import CHINA
from chalicelib.registration.domain.registrations import Registration, RegistrationKind, RegistrationStatus
from chalicelib.registration.records import receipt_candidates
from tests.unit.registration.world import ME, SOMEONE, World

RECEIPT = re.compile(r"^(DJ|GH|ZX)\d{8}-[0-9A-HJKMNP-TV-Z]{6}$")


@pytest.fixture
def world() -> World:
    return World()


def test_a_submission_is_given_a_receipt_number_kept_on_every_read(world: World) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    view = world.service.submit(reg_id, ME)
    receipt = view.receipt_no
    assert receipt is not None
    assert RECEIPT.match(receipt)
    # 登记, on the China day of the submission
    china_day = world.clock().astimezone(CHINA).strftime("%Y%m%d")
    assert receipt == f"DJ{china_day}-{receipt[-6:]}"
    assert world.service.get(reg_id, ME, RegistrationKind.REGISTRATION).receipt_no == receipt
    stored = world.registrations.get(reg_id)
    assert stored is not None
    assert stored.receipt_no == receipt
    assert world.service.views.receipt(receipt.lower()).registration_id == reg_id


def test_an_open_registration_has_no_receipt_yet(world: World) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    view = world.service.get(reg_id, ME, RegistrationKind.REGISTRATION)
    assert view.receipt_no is None
    assert view.holder_masked is None


def test_two_registrations_get_two_numbers(world: World) -> None:
    first = world.service.submit(world.ready_to_submit(world.vins[0]), ME).receipt_no
    second = world.service.submit(world.ready_to_submit(world.vins[1], SOMEONE), SOMEONE).receipt_no
    assert first is not None
    assert second is not None
    assert first != second


def test_a_number_another_registration_holds_is_passed_over(world: World) -> None:
    # given a registration whose first choice of number another registration holds already
    reg_id = world.ready_to_submit(world.vins[0])
    reg = world.registrations.get(reg_id)
    assert reg is not None
    first, second = _first_two(reg_id, world.clock())
    other_id = world.ready_to_submit(world.vins[1], SOMEONE)
    other = world.registrations.get(other_id)
    assert other is not None
    world.registrations.items[other_id] = other.model_copy(
        update={"receipt_no": first, "status": RegistrationStatus.SUBMITTED}
    )
    # when it is submitted, then it is given the next candidate
    assert world.service.submit(reg_id, ME).receipt_no == second


def test_a_registration_claimed_before_keeps_its_number_when_submitted_again(world: World) -> None:
    reg_id = world.ready_to_submit(world.vins[0])
    reg = world.registrations.get(reg_id)
    assert reg is not None
    given = world.service.registrations.issue_receipt(reg, world.clock())
    world.registrations.items[reg_id] = reg.model_copy(update={"receipt_no": given})
    assert world.service.submit(reg_id, ME).receipt_no == given


def _first_two(reg_id: str, at: datetime) -> tuple[str, str]:
    probe = Registration(
        registration_id=reg_id,
        owner=ME,
        kind=RegistrationKind.REGISTRATION,
        vin="L" * 17,
        iccids=[],
        status=RegistrationStatus.OPEN,
        version=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    candidates = receipt_candidates(probe, at)
    return next(candidates), next(candidates)
