"""SMS verification codes (短信验证码): the rules of sending and checking them, pure.

SPEC §3: a code has 6 digits and is valid for 5 minutes; a code allows at most 5 wrong tries, after
which it is burnt and a new one must be sent. A correct code is consumed (single use). A code serves one
purpose only: a login code does not verify the owner's phone in a registration, nor confirm a
de-registration.

Nobody's sends or wrong tries can lock another person's flow out:

- a *signed-in* purpose (``SIGNED_IN_PURPOSES``: the owner's phone, a de-registration, a delegation's
  confirmation, a fleet's responsible person) keeps one current code per (phone, purpose, the caller's
  subject) and is checked for that caller only (``code_key``): another signed-in person naming the same
  phone neither replaces the owner's code nor spends its tries. Its sends count per (phone, purpose,
  caller) and, unless the caller is the phone's own holder (``subject_for`` the phone), in the phone's
  signed-in total of ``sms_sends_per_phone_signed_in_day`` (30) a day, so one phone cannot be sent
  unlimited texts by many signed-in strangers;
- an *anonymous* purpose (login, the portal account's codes) keeps one code per (phone, purpose) and
  counts per (phone, purpose) and in the phone's anonymous total of ``sms_sends_per_phone_day`` (20);
- a *known device* (one the phone signed in from in the last ``LOGIN_DEVICE_DAYS``,
  ``chalicelib.sms.limits``) has its own login code and its own login bucket per (phone, device),
  outside the anonymous ones: a stranger's login sends and wrong tries never stop the holder signing in
  again from their own device.

Each bucket has the resend interval (60 s) and a daily limit (10 per China day,
``sms_sends_per_phone_purpose_day``). A send refused by the platform's budget or failed by the provider
is given back to the phone's counts (``SmsCodeStore.release_send``): retried, it goes at once. Every
send is also bounded per client (``chalicelib.sms.limits``).

Phone numbers are personal data (第十九条, PIPL): codes and counters are keyed by a keyed hash of the
number, and a code is stored only as a keyed hash of itself with a per-code salt.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.clock import china_day, end_of_china_day
from chalicelib.kernel.errors import DomainError, InvalidField, TooManyRequests


class SmsPurpose(StrEnum):
    """What a code proves; a code of one purpose is refused for another."""

    LOGIN = "login"  # 登录
    OWNER_PHONE = "owner_phone"  # 车主/使用人手机号验证 (registration step 2)
    DEREGISTRATION = "deregistration"  # 实名注销
    DELEGATION_CONFIRM = "delegation_confirm"  # 委托登记: the owner confirms a trustee registers for them
    ACCOUNT_SIGNUP = "account_signup"  # 企业门户账号注册
    ACCOUNT_LOGIN = "account_login"  # 企业门户账号登录 (the second step after the password)
    PASSWORD_RESET = "password_reset"  # 企业门户账号找回密码
    FLEET_RESPONSIBLE = "fleet_responsible"  # 单位登记: 车辆负责人/使用人手机号验证


#: Purposes a signed-in caller asks for, counted per (phone, purpose, caller): see the module docstring.
SIGNED_IN_PURPOSES = frozenset(
    {
        SmsPurpose.OWNER_PHONE,
        SmsPurpose.DEREGISTRATION,
        SmsPurpose.DELEGATION_CONFIRM,
        SmsPurpose.FLEET_RESPONSIBLE,
    }
)


@dataclass(frozen=True)
class SmsPolicy:
    """The limits of SPEC §3 (settings may tighten or loosen them per stage)."""

    code_length: int = 6
    validity: timedelta = timedelta(minutes=5)
    resend_interval: timedelta = timedelta(seconds=60)
    max_wrong_tries: int = 5
    #: Per bucket: (phone, purpose) or (phone, purpose, caller).
    sends_per_day: int = 10
    #: Anonymous purposes together, per phone.
    sends_per_phone_day: int = 20
    #: Signed-in purposes together, per phone, from callers other than the phone's own holder.
    sends_per_phone_signed_in_day: int = 30

    def __post_init__(self) -> None:
        if not 4 <= self.code_length <= 8:
            raise ValueError("code_length must be 4–8 digits")
        if self.validity <= timedelta(0) or self.resend_interval < timedelta(0):
            raise ValueError("validity must be positive and resend_interval not negative")
        counts = (self.sends_per_day, self.sends_per_phone_day, self.sends_per_phone_signed_in_day)
        if self.max_wrong_tries < 1 or min(counts) < 1:
            raise ValueError("max_wrong_tries and the daily sends must be at least 1")


#: The sender signature every message starts with (短信签名).
SIGNATURE = "【车联网卡实名登记】"


_USES: dict[SmsPurpose, str] = {
    SmsPurpose.LOGIN: "用于登录",
    SmsPurpose.OWNER_PHONE: "用于验证车主/使用人手机号",
    SmsPurpose.DEREGISTRATION: "用于车联网卡实名注销，如非本人操作请忽略",
    SmsPurpose.DELEGATION_CONFIRM: (
        "用于确认您委托他人办理车联网卡实名登记。如您未委托他人，请勿将验证码告诉任何人"
    ),
    SmsPurpose.ACCOUNT_SIGNUP: "用于注册账号",
    SmsPurpose.ACCOUNT_LOGIN: "用于账号登录，如非本人操作请修改密码",
    SmsPurpose.PASSWORD_RESET: "用于重置账号密码，如非本人操作请忽略",
    SmsPurpose.FLEET_RESPONSIBLE: "用于验证单位车辆负责人手机号，如非本人操作请忽略",
}


def code_message(purpose: SmsPurpose, code: str, validity: timedelta) -> str:
    """The text of the SMS, e.g. ``【车联网卡实名登记】验证码 123456，用于登录，5 分钟内有效。请勿泄露。``"""
    minutes = max(1, math.ceil(validity.total_seconds() / 60))
    return f"{SIGNATURE}验证码 {code}，{_USES[purpose]}，{minutes} 分钟内有效。请勿泄露。"


def new_code(randbelow: Callable[[int], int], length: int) -> str:
    """``length`` decimal digits, leading zeros kept; ``randbelow`` is ``secrets.randbelow`` in service."""
    return f"{randbelow(10**length):0{length}d}"


def phone_lookup_value(mobile: str) -> str:
    """What the keyed hash of a phone is computed over: the normalised 11-digit mainland number."""
    return f"mobile:{mobile}"


def code_key(
    purpose: SmsPurpose, phone_hash: str, caller: str | None = None, device: str | None = None
) -> str:
    """The current code's key: per (phone, purpose, caller) for a signed-in purpose asked by a caller,
    per (phone, device) for a login from a known device, else per (phone, purpose)."""
    if purpose in SIGNED_IN_PURPOSES and caller:
        return f"{purpose.value}#{phone_hash}#{caller}"
    if purpose is SmsPurpose.LOGIN and device:
        return f"{purpose.value}#{phone_hash}#dev#{device}"
    return f"{purpose.value}#{phone_hash}"


@dataclass(frozen=True)
class SendBuckets:
    """Where one send counts: its own bucket (resend interval, daily limit) and, if any, a phone total."""

    quota_key: str
    total_key: str | None = None
    total_limit: int = 0


def send_buckets(
    purpose: SmsPurpose,
    phone_hash: str,
    policy: SmsPolicy,
    caller: str | None = None,
    device: str | None = None,
) -> SendBuckets:
    """The buckets of a send (see the module docstring): a signed-in caller's own bucket and the
    phone's signed-in total (not for the phone's own holder); a known device's own login bucket; else
    the (phone, purpose) bucket and the phone's anonymous total."""
    if purpose in SIGNED_IN_PURPOSES and caller:
        own = f"{phone_hash}#{purpose.value}#{caller}"
        if caller == subject_for(phone_hash):
            return SendBuckets(own)
        return SendBuckets(own, f"{phone_hash}#signed-in", policy.sends_per_phone_signed_in_day)
    if purpose is SmsPurpose.LOGIN and device:
        return SendBuckets(f"{phone_hash}#{purpose.value}#dev#{device}")
    return SendBuckets(f"{phone_hash}#{purpose.value}", f"{phone_hash}#all", policy.sends_per_phone_day)


def code_digest_input(key: str, salt: str, code: str) -> str:
    """What the keyed hash of a code is computed over: its key, its own salt and the digits."""
    return f"sms-code:{key}:{salt}:{code}"


def subject_for(phone_hash: str) -> str:
    """The stable pseudonymous subject of the person who proved they hold a phone.

    Derived from the keyed hash of the number, so it names the same person at every login and cannot be
    turned back into the number without the KMS hashing key.
    """
    return "u" + hashlib.sha256(f"owner-subject:{phone_hash}".encode()).hexdigest()[:32]


class SendQuota(BaseModel):
    """Sends to one phone: the China day counted, how many that day, and the last one."""

    model_config = ConfigDict(frozen=True)

    day: date
    sent: int = Field(ge=0)
    last_sent_at: AwareDatetime


class StoredCode(BaseModel):
    """The current code of one purpose and phone (and caller or device), as stored: never the code nor
    the number."""

    model_config = ConfigDict(frozen=True)

    key: str
    purpose: SmsPurpose
    phone_hash: str
    #: Keyed hash of ``code_digest_input(key, salt, code)``; None once the code is used.
    code_hash: str | None
    salt: str
    sent_at: AwareDatetime
    expires_at: AwareDatetime
    tries: int = Field(ge=0)
    used_at: AwareDatetime | None = None


@dataclass(frozen=True)
class MatchedCode:
    """A code the person typed right, not used yet: the stored code as read at ``at``.

    Its use is written later, with the writes of the step it proves when the store can join them
    (one transaction: a failure of any of them leaves the code usable), on condition that it is still
    the current code (its salt), unused, unburnt and unexpired at ``at``: of two uses of one code only
    one lands.
    """

    code: StoredCode
    at: datetime
    max_tries: int


class SentCode(BaseModel):
    """What a client learns when a code is sent: nothing about the phone or the code."""

    model_config = ConfigDict(frozen=True)

    expires_in: int = Field(description="Seconds the code stays valid")
    resend_after: int = Field(description="Seconds before another code may be asked for")


class SmsUnavailable(DomainError):
    """The SMS provider refused or failed: nothing the caller did wrong (HTTP 503)."""

    status = 503


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def too_soon(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        "sms.too_soon",
        f"获取验证码过于频繁，请 {retry_after} 秒后再试",
        f"A code was sent moments ago; ask again in {retry_after} s",
        field="phone",
        details={"retry_after": retry_after},
    )


def daily_limit(limit: int, retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        "sms.daily_limit",
        f"该手机号今日获取验证码已达 {limit} 次上限，请明天再试",
        f"This phone has had its {limit} codes for today; try again tomorrow",
        field="phone",
        details={"limit": limit, "retry_after": retry_after},
    )


def code_wrong(tries_left: int) -> InvalidField:
    if tries_left > 0:
        zh = f"验证码错误，还可尝试 {tries_left} 次"
        en = f"The code is wrong; {tries_left} tries left"
    else:
        zh = "验证码错误次数过多，该验证码已失效，请重新获取"
        en = "The code is wrong and no tries are left; ask for a new code"
    return InvalidField("sms.code_wrong", zh, en, field="code", details={"tries_left": tries_left})


def code_expired() -> InvalidField:
    return InvalidField(
        "sms.code_expired",
        "验证码已过期，请重新获取",
        "The code has expired; ask for a new one",
        field="code",
    )


def too_many_tries() -> TooManyRequests:
    return TooManyRequests(
        "sms.too_many_tries",
        "验证码错误次数过多，该验证码已失效，请重新获取",
        "Too many wrong tries: this code no longer works; ask for a new one",
        field="code",
    )


def no_code() -> InvalidField:
    return InvalidField(
        "sms.no_code",
        "验证码无效或已使用，请先获取验证码",
        "There is no code to check (none sent, or already used); ask for a code first",
        field="code",
    )


#: Seconds the person is asked to wait after the SMS provider failed (503 ``Retry-After``).
SEND_FAILED_RETRY_AFTER = 10


def send_failed() -> SmsUnavailable:
    return SmsUnavailable(
        "sms.send_failed",
        "短信发送失败，请稍后再试",
        "The SMS could not be sent; try again later",
        details={"retry_after_seconds": SEND_FAILED_RETRY_AFTER},
    )


def check_total(total: SendQuota | None, now: datetime, limit: int) -> None:
    """Refuse a send once the phone's total it counts in has ``limit`` sends this China day."""
    if total is not None and total.day == china_day(now) and total.sent >= limit:
        raise daily_limit(limit, _seconds(end_of_china_day(now) - now))


def check_send(quota: SendQuota | None, now: datetime, policy: SmsPolicy) -> None:
    """Refuse a send that breaks the daily limit or comes within the resend interval of the last."""
    if quota is None:
        return
    if quota.day == china_day(now) and quota.sent >= policy.sends_per_day:
        raise daily_limit(policy.sends_per_day, _seconds(end_of_china_day(now) - now))
    wait = quota.last_sent_at + policy.resend_interval - now
    if wait > timedelta(0):
        raise too_soon(_seconds(wait))


def after_send(quota: SendQuota | None, now: datetime) -> SendQuota:
    """The quota once one more code is sent at ``now`` (a new China day starts counting at 1)."""
    today = china_day(now)
    sent = quota.sent + 1 if quota is not None and quota.day == today else 1
    return SendQuota(day=today, sent=sent, last_sent_at=now)


def check_code(stored: StoredCode | None, now: datetime, policy: SmsPolicy) -> StoredCode:
    """The stored code if it may still be tried: not used, not burnt, not expired."""
    if stored is None or stored.used_at is not None or stored.code_hash is None:
        raise no_code()
    if stored.tries >= policy.max_wrong_tries:
        raise too_many_tries()
    if stored.expires_at <= now:
        raise code_expired()
    return stored


def new_stored_code(
    key: str,
    purpose: SmsPurpose,
    phone_hash: str,
    code_hash: str,
    salt: str,
    now: datetime,
    policy: SmsPolicy,
) -> StoredCode:
    return StoredCode(
        key=key,
        purpose=purpose,
        phone_hash=phone_hash,
        code_hash=code_hash,
        salt=salt,
        sent_at=now,
        expires_at=now + policy.validity,
        tries=0,
    )


def sent_code(policy: SmsPolicy) -> SentCode:
    return SentCode(
        expires_in=int(policy.validity.total_seconds()),
        resend_after=int(policy.resend_interval.total_seconds()),
    )
