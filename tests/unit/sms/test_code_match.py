"""A code matched for a step and used with the step's writes (``SmsCodeService.match`` and ``use``), over
the in-memory fakes: matching writes nothing but a wrong try, and a matched code is used once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SmsPurpose
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeSmsCodeStore, FakeSmsSender
from tests.unit.stories import refusal

PHONE = "13812345678"
OWNER = "owner-1"
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


class Parts:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.codes = FakeSmsCodeStore()
        self.inbox = FakeSmsSender()
        digits = itertools.count(123456, 1111)
        self.service = SmsCodeService(
            self.codes, self.inbox, FakeHasher(), clock=self.clock, randbelow=lambda n: next(digits) % n
        )

    def sent(self) -> str:
        self.service.send(PHONE, SmsPurpose.OWNER_PHONE, caller=OWNER)
        return self.inbox.last_code()


@pytest.fixture
def parts() -> Parts:
    return Parts()


def test_a_matched_code_is_not_used_until_the_step_uses_it(parts: Parts) -> None:
    code = parts.sent()
    first = parts.service.match(PHONE, SmsPurpose.OWNER_PHONE, code, OWNER)
    # the step's writes failed: nothing used, the same code matches again
    again = parts.service.match(PHONE, SmsPurpose.OWNER_PHONE, code, OWNER)
    assert first.code.salt == again.code.salt
    assert again.code.used_at is None
    assert parts.service.use(again) is True
    assert refusal(parts.service.match, PHONE, SmsPurpose.OWNER_PHONE, code, OWNER).code == "sms.no_code"


def test_a_matched_code_used_by_another_request_first_is_not_used_twice(parts: Parts) -> None:
    code = parts.sent()
    mine = parts.service.match(PHONE, SmsPurpose.OWNER_PHONE, code, OWNER)
    theirs = parts.service.match(PHONE, SmsPurpose.OWNER_PHONE, code, OWNER)
    assert parts.service.use(theirs) is True
    assert parts.service.use(mine) is False


def test_a_wrong_code_counts_its_try_when_matched(parts: Parts) -> None:
    code = parts.sent()
    wrong = "000000" if code != "000000" else "111111"
    err = refusal(parts.service.match, PHONE, SmsPurpose.OWNER_PHONE, wrong, OWNER)
    assert (err.code, err.details["tries_left"]) == ("sms.code_wrong", 4)
    (stored,) = parts.codes.codes.values()
    assert stored.tries == 1


def test_a_code_matched_for_another_caller_is_not_found(parts: Parts) -> None:
    code = parts.sent()
    err = refusal(parts.service.match, PHONE, SmsPurpose.OWNER_PHONE, code, "someone-else")
    assert err.code == "sms.no_code"
    (stored,) = parts.codes.codes.values()
    assert stored.tries == 0
