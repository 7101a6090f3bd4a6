"""Portal accounts (账号) as the service holds them, the rules of login names and passwords, the lockout
back-off, and the refusals; pure rules, no I/O.

An account is created unverified by sign-up (or as a dealer account by the OEM's admin); real-name
authentication makes it a natural-person (自然人) or legal-person (法人) account. The login name is
chosen once and never changes. Personal fields (phone, e-mail, the real-name person) are kept sealed or as
keyed hashes by the store; an ``Account`` carries only their hashes and masked forms.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from chalicelib.kernel.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidField,
    NotFound,
    Unauthenticated,
)


class AccountKind(StrEnum):
    """What an account is, by what real-name authentication established (or the OEM created)."""

    UNVERIFIED = "unverified"  # signed up, real-name not done
    NATURAL = "natural"  # 自然人实名认证 done
    LEGAL = "legal"  # 法人实名认证 done: the enterprise's legal-person account
    DEALER = "dealer"  # created by the OEM's admin for a dealer code


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class RealNameKind(StrEnum):
    NATURAL = "natural"
    LEGAL = "legal"


@dataclass(frozen=True)
class RealNameRecord:
    """What real-name authentication established about the person behind an account.

    ``person_hash`` is the keyed hash of the person's ID (``kernel.personal.id_lookup_value`` of type and
    number) — for a legal-person account, the legal representative's ID; it lets a person sign in by
    ID number. ``display_name_masked`` is the person's name masked (``张*``).
    """

    kind: RealNameKind
    flow_id: str
    verified_at: datetime
    person_hash: str
    display_name_masked: str
    uscc: str | None = None  # legal only
    company_name: str | None = None  # legal only


@dataclass(frozen=True)
class Account:
    """One portal account. ``phone_hash`` is the keyed hash of the bound phone (its clear value is sealed
    in the store); ``phone_masked``/``email_masked`` are what responses show."""

    account_id: str
    login_name: str
    kind: AccountKind
    phone_hash: str
    created_at: datetime
    status: AccountStatus = AccountStatus.ACTIVE
    enterprise_uscc: str | None = None  # legal only
    dealer_code: str | None = None  # dealer only
    real_name: RealNameRecord | None = None
    phone_masked: str = ""
    email_masked: str = ""
    #: Bumped by every change: updates are conditional on the version read.
    version: int = 1

    @property
    def active(self) -> bool:
        return self.status is AccountStatus.ACTIVE


ACCOUNT_ID = re.compile(r"^acct_[0-9a-f]{32}$")


def new_account_id() -> str:
    """``acct_<32 hex>``: the subject of the account's tokens."""
    return "acct_" + uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------------
# Login names and passwords

LOGIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{3,31}$")
PASSWORD_MIN = 9
PASSWORD_MAX = 16
#: Symbols a password may mix in: printable ASCII that is neither a letter, a digit nor a space.
_SYMBOL = re.compile(r"[!-/:-@\[-`{-~]")


def login_name_key(login_name: str) -> str:
    """The key a login name is unique under: case-insensitive."""
    return login_name.strip().casefold()


def login_name_error(login_name: str) -> InvalidField | None:
    if not LOGIN_NAME.match(login_name):
        return InvalidField(
            "account.login_name_invalid",
            "登录名须为4-32位，以字母开头，只含字母、数字和 _ . -",
            "The login name takes 4-32 letters, digits, '_', '.' or '-', starting with a letter",
            field="login_name",
        )
    return None


def password_errors(
    password: str, login_name: str | None, *, field_name: str = "password"
) -> list[InvalidField]:
    """Why ``password`` may not be used (empty when it may): length, spaces, the three kinds of
    character, and the login name inside it. Each rule has its own code."""

    def bad(code: str, zh: str, en: str) -> InvalidField:
        return InvalidField(code, zh, en, field=field_name)

    errors: list[InvalidField] = []
    if any(ch.isspace() for ch in password) or any(unicodedata.category(ch) == "Zs" for ch in password):
        errors.append(
            bad("account.password_spaces", "密码不能包含空格", "The password may not contain spaces")
        )
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        errors.append(
            bad(
                "account.password_length",
                f"密码须为{PASSWORD_MIN}-{PASSWORD_MAX}位",
                f"The password takes {PASSWORD_MIN} to {PASSWORD_MAX} characters",
            )
        )
    if any(not (ch.isascii() and ch.isprintable()) for ch in password if not ch.isspace()):
        errors.append(
            bad(
                "account.password_characters",
                "密码只能使用字母、数字和英文符号",
                "The password may use only letters, digits and ASCII symbols",
            )
        )
    has_letter = any(ch.isascii() and ch.isalpha() for ch in password)
    has_digit = any(ch.isascii() and ch.isdigit() for ch in password)
    has_symbol = bool(_SYMBOL.search(password))
    if not (has_letter and has_digit and has_symbol):
        errors.append(
            bad(
                "account.password_weak",
                "密码须同时包含字母、数字和符号",
                "The password must mix letters, digits and symbols",
            )
        )
    if login_name and len(login_name) >= 3 and login_name.casefold() in password.casefold():
        errors.append(
            bad(
                "account.password_contains_login_name",
                "密码不能包含登录名",
                "The password may not contain the login name",
            )
        )
    return errors


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def normalise_email(email: str) -> str | None:
    """The e-mail as kept (trimmed, the domain lower-cased), or None when it is no address."""
    text = email.strip()
    if len(text) > 254 or not _EMAIL.match(text) or ".." in text:
        return None
    local, _, domain = text.rpartition("@")
    if local.startswith(".") or local.endswith(".") or not re.search(r"\.[A-Za-z]{2,}$", domain):
        return None
    return f"{local}@{domain.lower()}"


def email_invalid() -> InvalidField:
    return InvalidField(
        "account.email_invalid", "请填写正确的电子邮箱", "The e-mail address is not valid", field="email"
    )


def mask_email(email: str) -> str:
    """``zhang.san@example.com`` → ``z***@example.com``."""
    local, _, domain = email.rpartition("@")
    return (local[:1] + "***@" + domain) if local and domain else "***"


def password_mismatch(field_name: str = "password_confirm") -> InvalidField:
    return InvalidField(
        "account.password_mismatch", "两次输入的密码不一致", "The two passwords differ", field=field_name
    )


# ---------------------------------------------------------------------------------------------------
# Lockout with back-off


@dataclass(frozen=True)
class LockoutPolicy:
    #: Failures (wrong password or wrong SMS code) that lock the account.
    threshold: int = 5
    #: The first lock; each further lock doubles it, up to ``cap``.
    first_lock: timedelta = timedelta(minutes=15)
    cap: timedelta = timedelta(hours=24)

    def lock_for(self, locks_before: int) -> timedelta:
        """How long the lock after ``locks_before`` earlier locks lasts."""
        seconds = self.first_lock.total_seconds() * (2 ** min(locks_before, 20))
        return min(timedelta(seconds=seconds), self.cap)


@dataclass(frozen=True)
class LoginGuard:
    """The failure count and lock of one key (an account, or an identifier that names none)."""

    key: str
    failures: int = 0
    locks: int = 0
    locked_until: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def retry_after(self, now: datetime) -> int:
        if self.locked_until is None:
            return 0
        return max(1, int((self.locked_until - now).total_seconds() + 0.999))

    def after_failure(self, now: datetime, policy: LockoutPolicy) -> LoginGuard:
        """The guard after one more failure: the ``threshold``-th failure locks (and resets the count)."""
        failures = self.failures + 1
        if failures >= policy.threshold:
            until = now + policy.lock_for(self.locks)
            return LoginGuard(self.key, 0, self.locks + 1, until, now, self.version + 1)
        return LoginGuard(self.key, failures, self.locks, self.locked_until, now, self.version + 1)

    def after_success(self, now: datetime) -> LoginGuard:
        """A success clears the count and the back-off."""
        return LoginGuard(self.key, 0, 0, None, now, self.version + 1)


# ---------------------------------------------------------------------------------------------------
# Login challenges (the second step: an SMS code to the bound phone)


@dataclass(frozen=True)
class LoginChallenge:
    """A password accepted, waiting for the SMS code sent to the account's phone."""

    challenge_id: str
    account_id: str
    created_at: datetime
    expires_at: datetime
    attempts: int = 0
    used: bool = False
    version: int = 0


CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_ATTEMPTS = 5


# ---------------------------------------------------------------------------------------------------
# Refusals


class AccountLocked(DomainError):
    """Too many failures: the account is locked for ``details.retry_after_seconds`` (HTTP 423)."""

    status: ClassVar[int] = 423


def credentials_invalid() -> Unauthenticated:
    """Wrong password or no such account: one answer, so nobody learns which."""
    return Unauthenticated(
        "account.credentials_invalid",
        "账号或密码错误",
        "The identifier or the password is wrong",
    )


def account_locked(retry_after_seconds: int) -> AccountLocked:
    minutes = max(1, (retry_after_seconds + 59) // 60)
    wait = f"{minutes}分钟" if minutes < 60 else f"{(minutes + 59) // 60}小时"
    return AccountLocked(
        "account.locked",
        f"输错次数过多，账号已锁定，请{wait}后再试",
        "Too many failed attempts: the account is locked for a while",
        details={"retry_after_seconds": retry_after_seconds},
    )


def challenge_invalid() -> Unauthenticated:
    return Unauthenticated(
        "account.challenge_invalid",
        "验证已失效，请重新登录",
        "The login challenge is unknown, used or expired: sign in again",
        field="challenge_id",
    )


def login_name_taken() -> Conflict:
    return Conflict(
        "account.login_name_taken",
        "该登录名已被使用，请换一个",
        "The login name is taken",
        field="login_name",
    )


def login_name_immutable() -> InvalidField:
    return InvalidField(
        "account.login_name_immutable",
        "登录名注册后不能修改",
        "The login name cannot be changed after sign-up",
        field="login_name",
    )


def phone_account_limit(limit: int) -> Conflict:
    return Conflict(
        "account.phone_limit",
        f"该手机号已注册{limit}个账号，不能再注册",
        f"This phone already holds {limit} accounts",
        field="phone",
        details={"limit": limit},
    )


def account_disabled() -> Unauthenticated:
    return Unauthenticated("account.disabled", "账号已停用，请联系客服", "The account is disabled")


def session_not_live() -> Unauthenticated:
    return Unauthenticated(
        "account.session_revoked",
        "您已退出登录，请重新登录",
        "The session was signed out",
        field="Authorization",
    )


def not_an_account() -> Forbidden:
    return Forbidden("account.required", "请使用企业账号登录", "Sign in with a portal account")


def account_not_found() -> NotFound:
    return NotFound("account.not_found", "账号不存在", "No such account")


def session_not_found() -> NotFound:
    return NotFound("account.session_not_found", "未找到该登录设备", "No such session", field="session_id")


def already_verified() -> Conflict:
    return Conflict(
        "account.real_name_done",
        "该账号已完成实名认证",
        "The account has already completed real-name authentication",
    )


def current_password_wrong() -> InvalidField:
    return InvalidField(
        "account.password_wrong", "当前密码错误", "The current password is wrong", field="current"
    )


def password_reused() -> InvalidField:
    return InvalidField(
        "account.password_same",
        "新密码不能与当前密码相同",
        "The new password equals the current one",
        field="new",
    )


@dataclass(frozen=True)
class SignUp:
    """A sign-up as checked: every field valid (the service re-checks uniqueness and the SMS code)."""

    login_name: str
    password: str
    email: str
    phone: str
    code: str
