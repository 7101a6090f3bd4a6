"""SMS code rules (SPEC §3), pure: the code and its text, the send limits, the checks of a code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.kernel.clock import china_day
from chalicelib.sms.domain import (
    SIGNATURE,
    SendQuota,
    SmsPolicy,
    SmsPurpose,
    SmsUnavailable,
    StoredCode,
    after_send,
    check_code,
    check_send,
    code_expired,
    code_message,
    code_wrong,
    new_code,
    no_code,
    send_failed,
    subject_for,
    too_many_tries,
)
from tests.unit.stories import refusal

POLICY = SmsPolicy()
# 10:00 in China (UTC+8).
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
PHONE = "13812345678"


def quota(sent: int, last: datetime, day: datetime | None = None) -> SendQuota:
    return SendQuota(day=china_day(day or last), sent=sent, last_sent_at=last)


def stored(**changes: object) -> StoredCode:
    base = StoredCode(
        key="login#h",
        purpose=SmsPurpose.LOGIN,
        phone_hash="h",
        code_hash="x",
        salt="s",
        sent_at=T0,
        expires_at=T0 + POLICY.validity,
        tries=0,
    )
    return base.model_copy(update=changes)


# --------------------------------------------------------------------------- the code and its text


def test_a_code_has_six_digits_and_keeps_leading_zeros() -> None:
    asked: list[int] = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return 42

    assert new_code(randbelow, 6) == "000042"
    assert asked == [1_000_000]  # every 6-digit code is possible


def test_the_message_names_the_sender_code_validity_and_warns() -> None:
    text = code_message(SmsPurpose.LOGIN, "123456", POLICY.validity)
    assert text == "【车联网卡实名登记】验证码 123456，用于登录，5 分钟内有效。请勿泄露。"
    deregistration = code_message(SmsPurpose.DEREGISTRATION, "123456", POLICY.validity)
    assert deregistration.startswith(SIGNATURE)
    assert "实名注销" in deregistration
    assert "如非本人操作请忽略" in deregistration
    assert len({code_message(p, "1", POLICY.validity) for p in SmsPurpose}) == len(SmsPurpose)


def test_the_subject_is_a_stable_pseudonym_of_the_phone_hash() -> None:
    a, b = subject_for("hash-a"), subject_for("hash-b")
    assert re.fullmatch(r"u[0-9a-f]{32}", a)
    assert a == subject_for("hash-a")
    assert a != b


@pytest.mark.parametrize(
    "changes",
    [{"code_length": 3}, {"validity": timedelta(0)}, {"max_wrong_tries": 0}, {"sends_per_day": 0}],
)
def test_a_policy_refuses_nonsense_limits(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        SmsPolicy(**changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sending


def test_the_first_send_of_a_phone_is_allowed() -> None:
    check_send(None, T0, POLICY)
    assert after_send(None, T0) == SendQuota(day=T0.date(), sent=1, last_sent_at=T0)


def test_a_resend_within_60_seconds_is_too_soon_with_the_seconds_to_wait() -> None:
    # Given a code sent 15.5 s ago
    err = refusal(check_send, quota(1, T0), T0 + timedelta(seconds=15.5), POLICY)
    # Then the wait is rounded up, so a client that waits it is never refused again
    assert (err.code, err.status, err.details) == ("sms.too_soon", 429, {"retry_after": 45})
    assert err.field == "phone"
    check_send(quota(1, T0), T0 + timedelta(seconds=60), POLICY)


def test_the_eleventh_send_of_a_china_day_is_refused_until_midnight_china_time() -> None:
    # Given 10 codes sent today (China day 2025-03-03), the last an hour ago
    today = quota(10, T0 - timedelta(hours=1))
    err = refusal(check_send, today, T0, POLICY)
    assert (err.code, err.status) == ("sms.daily_limit", 429)
    # 10:00 China time → 14 hours to the next China day
    assert err.details == {"limit": 10, "retry_after": 14 * 3600}
    # The China day ends at 16:00 UTC: the count starts again
    next_day = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)
    check_send(today, next_day, POLICY)
    assert after_send(today, next_day).sent == 1
    assert after_send(quota(3, T0), T0 + timedelta(minutes=5)).sent == 4


def test_the_daily_limit_is_reported_before_the_resend_interval() -> None:
    err = refusal(check_send, quota(10, T0), T0 + timedelta(seconds=5), POLICY)
    assert err.code == "sms.daily_limit"


# --------------------------------------------------------------------------- checking


def test_a_missing_or_used_code_is_no_code() -> None:
    assert refusal(check_code, None, T0, POLICY).code == "sms.no_code"
    used = stored(used_at=T0, code_hash=None)
    assert refusal(check_code, used, T0, POLICY).code == "sms.no_code"


def test_a_burnt_code_is_refused_even_before_it_expires() -> None:
    err = refusal(check_code, stored(tries=5), T0 + timedelta(seconds=1), POLICY)
    assert (err.code, err.status) == ("sms.too_many_tries", 429)


def test_a_code_expires_after_five_minutes() -> None:
    assert check_code(stored(), T0 + timedelta(minutes=4, seconds=59), POLICY).tries == 0
    err = refusal(check_code, stored(), T0 + timedelta(minutes=5), POLICY)
    assert (err.code, err.status) == ("sms.code_expired", 422)


def test_refusals_have_stable_codes_statuses_and_both_languages() -> None:
    wrong = code_wrong(3)
    assert (wrong.code, wrong.status, wrong.details, wrong.field) == (
        "sms.code_wrong",
        422,
        {"tries_left": 3},
        "code",
    )
    assert "3" in wrong.message_zh
    assert code_wrong(0).details == {"tries_left": 0}
    for err in (wrong, code_expired(), too_many_tries(), no_code(), send_failed()):
        assert err.message_zh
        assert err.message_en
        assert err.code.startswith("sms.")
    assert send_failed().status == 503
    assert isinstance(send_failed(), SmsUnavailable)
