"""The pure rules of accounts: login names, passwords (each rule its own code), e-mail, the lockout's
back-off, and the login guard's transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.accounts.domain import (
    LockoutPolicy,
    LoginGuard,
    login_name_error,
    login_name_key,
    mask_email,
    normalise_email,
    password_errors,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def codes(password: str, login_name: str | None = "fleet_admin") -> set[str]:
    return {e.code for e in password_errors(password, login_name)}


@pytest.mark.parametrize("name", ["abcd", "Fleet.Admin-01", "a" * 32, "x_y.z-1"])
def test_login_names_of_4_to_32_letters_digits_and_underscore_dot_dash_starting_with_a_letter_pass(
    name: str,
) -> None:
    assert login_name_error(name) is None


@pytest.mark.parametrize("name", ["abc", "a" * 33, "1abcd", "_abcd", "ab cd", "张三李四", "abc@d", ""])
def test_login_names_too_short_too_long_not_starting_with_a_letter_or_with_other_characters_are_refused(
    name: str,
) -> None:
    error = login_name_error(name)
    assert error is not None
    assert error.code == "account.login_name_invalid"
    assert error.field == "login_name"


def test_login_names_are_unique_case_insensitively() -> None:
    assert login_name_key("Fleet.Admin") == login_name_key("fleet.admin") == login_name_key(" FLEET.ADMIN ")


def test_a_password_of_9_to_16_characters_mixing_letters_digits_and_symbols_passes() -> None:
    assert codes("Secure#2026") == set()
    assert codes("a1!" * 3) == set()  # 9
    assert codes("Abcdefgh1234567!") == set()  # 16


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Ab1!xyz", "account.password_length"),  # 7
        ("Ab1!xyzab", None),  # 9: fine
        ("Ab1!xyzabcdefghij", "account.password_length"),  # 17
        ("abcdefghij", "account.password_weak"),  # letters only
        ("abcdefgh12", "account.password_weak"),  # no symbol
        ("abcdefgh!!", "account.password_weak"),  # no digit
        ("12345678!!", "account.password_weak"),  # no letter
        ("Secure 2026!", "account.password_spaces"),
        ("Secure\t2026!", "account.password_spaces"),
        ("Secure\u30002026!", "account.password_spaces"),  # a full-width space
        ("Secure密码2026!", "account.password_characters"),
        ("fleet_admin#1", "account.password_contains_login_name"),
        ("xFLEET_ADMIN9!", "account.password_contains_login_name"),
    ],
)
def test_each_password_rule_refuses_with_its_own_code(password: str, code: str | None) -> None:
    found = codes(password)
    if code is None:
        assert found == set()
    else:
        assert code in found, found


def test_password_errors_are_field_errors_in_chinese_and_english() -> None:
    (error,) = password_errors("Secure 2026!", None)
    assert error.field == "password"
    assert error.message_zh == "密码不能包含空格"
    assert "spaces" in error.message_en


def test_emails_are_checked_and_kept_with_the_domain_lower_cased_and_shown_masked() -> None:
    assert normalise_email(" Zhang.San@Example.COM ") == "Zhang.San@example.com"
    for bad in ["zhang", "zhang@", "@example.com", "zhang@example", "zh ang@example.com", "a..b@example.com"]:
        assert normalise_email(bad) is None, bad
    assert mask_email("zhang.san@example.com") == "z***@example.com"


def test_the_lock_doubles_with_each_further_lock_up_to_the_cap() -> None:
    policy = LockoutPolicy(threshold=5, first_lock=timedelta(minutes=15), cap=timedelta(hours=24))
    assert [policy.lock_for(n) for n in range(8)] == [
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=4),
        timedelta(hours=8),
        timedelta(hours=16),
        timedelta(hours=24),
    ]
    assert policy.lock_for(60) == timedelta(hours=24)


def test_the_threshold_th_failure_locks_and_a_success_clears_the_count_and_the_back_off() -> None:
    policy = LockoutPolicy()
    guard = LoginGuard("acct#1")
    for _ in range(4):
        guard = guard.after_failure(T0, policy)
        assert not guard.locked_at(T0)
    guard = guard.after_failure(T0, policy)
    assert guard.locked_at(T0)
    assert guard.retry_after(T0) == 15 * 60
    assert guard.locks == 1
    assert guard.failures == 0
    assert not guard.locked_at(T0 + timedelta(minutes=15))
    cleared = guard.after_success(T0 + timedelta(minutes=16))
    assert (cleared.failures, cleared.locks, cleared.locked_until) == (0, 0, None)
