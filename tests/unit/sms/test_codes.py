"""SMS codes and phone login (SPEC §3) over the in-memory fakes: what is sent, the send limits, wrong
tries, one purpose per code, the login subject."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SmsPurpose, subject_for
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeSmsCodeStore, FakeSmsSender
from tests.unit.stories import refusal

PHONE = "13812345678"
OTHER_PHONE = "13900001111"
# 10:00 in China (UTC+8).
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


@pytest.fixture
def parts() -> Parts:
    return Parts()


def wrong_for(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# --------------------------------------------------------------------------- sending


def test_a_sent_code_reaches_the_normalised_number_and_is_kept_only_hashed(parts: Parts) -> None:
    # when a code is asked for a number typed with its country code and dashes
    sent = parts.service.send("+86 138-1234-5678", SmsPurpose.LOGIN)
    # then it goes to the 11-digit number, and the store keeps neither the code nor the number
    assert (sent.expires_in, sent.resend_after) == (300, 60)
    assert parts.inbox.sent[0][0] == PHONE
    code = parts.inbox.last_code()
    (item,) = parts.codes.codes.values()
    assert code not in item.model_dump_json()
    assert PHONE not in item.model_dump_json()


def test_an_invalid_number_is_refused_before_anything_is_counted_or_sent(parts: Parts) -> None:
    err = refusal(parts.service.send, "12345", SmsPurpose.LOGIN)
    assert (err.code, err.field) == ("mobile.format", "phone")
    assert not parts.codes.quotas
    assert not parts.inbox.sent


def test_a_second_send_of_one_purpose_within_60_seconds_is_refused_and_sends_nothing(parts: Parts) -> None:
    # given a code sent
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    # when another of the same purpose is asked 20 s later
    parts.clock.advance(seconds=20)
    err = refusal(parts.service.send, PHONE, SmsPurpose.LOGIN)
    # then it is too soon, with the seconds to wait, and only one message went out
    assert (err.code, err.details) == ("sms.too_soon", {"retry_after": 40})
    assert len(parts.inbox.sent) == 1
    # and another purpose has its own interval: it goes at once
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE)
    assert len(parts.inbox.sent) == 2
    # and after the interval the phone gets a login code again
    parts.clock.advance(seconds=40)
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    assert len(parts.inbox.sent) == 3


def test_the_eleventh_send_of_a_china_day_is_refused_and_another_phone_is_not_limited(parts: Parts) -> None:
    # given ten codes sent to one phone today
    for _ in range(10):
        parts.service.send(PHONE, SmsPurpose.LOGIN)
        parts.clock.advance(seconds=61)
    # when an eleventh is asked
    err = refusal(parts.service.send, PHONE, SmsPurpose.LOGIN)
    # then the day's limit refuses it; another phone still gets its code
    assert (err.code, err.status) == ("sms.daily_limit", 429)
    assert len(parts.inbox.texts_to(PHONE)) == 10
    parts.service.send(OTHER_PHONE, SmsPurpose.LOGIN)
    assert len(parts.inbox.texts_to(OTHER_PHONE)) == 1


def test_a_refused_provider_is_a_503_after_the_code_was_stored(parts: Parts) -> None:
    parts.inbox.fail()
    err = refusal(parts.service.send, PHONE, SmsPurpose.LOGIN)
    assert (err.code, err.status) == ("sms.send_failed", 503)
    assert len(parts.codes.codes) == 1


# --------------------------------------------------------------------------- checking


def test_a_wrong_code_counts_down_then_the_right_one_is_consumed_once(parts: Parts) -> None:
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE)
    code = parts.inbox.last_code()
    err = refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, wrong_for(code))
    assert (err.code, err.details) == ("sms.code_wrong", {"tries_left": 4})
    parts.service.check(PHONE, SmsPurpose.OWNER_PHONE, code)
    assert refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, code).code == "sms.no_code"


def test_five_wrong_tries_burn_the_code_even_for_the_right_digits(parts: Parts) -> None:
    # given a code tried wrongly five times
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    code = parts.inbox.last_code()
    left = [refusal(parts.service.check, PHONE, SmsPurpose.LOGIN, wrong_for(code)).details for _ in range(5)]
    assert [d["tries_left"] for d in left] == [4, 3, 2, 1, 0]
    # when the right code is typed
    err = refusal(parts.service.login, PHONE, code)
    # then the code is burnt: a new one must be asked for
    assert (err.code, err.status) == ("sms.too_many_tries", 429)
    parts.clock.advance(seconds=61)
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    parts.service.login(PHONE, parts.inbox.last_code())


def test_a_code_expires_after_five_minutes(parts: Parts) -> None:
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE)
    parts.clock.advance(minutes=5)
    err = refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, parts.inbox.last_code())
    assert err.code == "sms.code_expired"


def test_a_code_of_one_purpose_is_refused_for_another(parts: Parts) -> None:
    # given a login code
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    code = parts.inbox.last_code()
    # then it neither verifies the owner's phone nor confirms a de-registration
    for purpose in (SmsPurpose.OWNER_PHONE, SmsPurpose.DEREGISTRATION):
        assert refusal(parts.service.check, PHONE, purpose, code).code == "sms.no_code"
    # and it still logs in
    parts.service.login(PHONE, code)


def test_a_new_code_replaces_the_earlier_one_of_its_purpose(parts: Parts) -> None:
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE)
    first = parts.inbox.last_code()
    parts.clock.advance(seconds=61)
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE)
    second = parts.inbox.last_code()
    assert first != second
    assert refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, first).code == "sms.code_wrong"
    parts.service.check(PHONE, SmsPurpose.OWNER_PHONE, second)


# --------------------------------------------------------------------------- login


def test_login_gives_the_same_subject_for_the_same_phone_only(parts: Parts) -> None:
    subjects = []
    for phone in (PHONE, PHONE, OTHER_PHONE):
        parts.clock.advance(seconds=61)
        parts.service.send(phone, SmsPurpose.LOGIN)
        subjects.append(parts.service.login(phone, parts.inbox.last_code()))
    assert subjects[0] == subjects[1] != subjects[2]


def test_the_login_subject_is_the_pseudonym_of_the_phone_hash(parts: Parts) -> None:
    parts.service.send(PHONE, SmsPurpose.LOGIN)
    subject = parts.service.login(PHONE, parts.inbox.last_code())
    assert subject == subject_for(parts.service.phone_hash(PHONE))
    assert PHONE not in subject
