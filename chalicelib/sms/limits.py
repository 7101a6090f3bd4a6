"""Limits on who may ask for SMS codes, beyond each phone's own (``chalicelib.sms.domain``): pure rules.

SMS pumping (toll fraud) and SMS bombing ask for many codes from few clients, or for many phones at
once. So every ask is counted, before the phone's own limits, per client — by who asks:

- an *anonymous* ask (login, the portal account's codes) per client IP (API Gateway's source IP, kept
  only as a keyed hash) and per device (the ``X-Device-Id`` a client keeps, hashed likewise), in fixed
  windows of a UTC hour and a China day: ``sms_sends_per_ip_hour`` / ``_day`` and
  ``sms_sends_per_device_hour`` / ``_day``; from ``captcha_after_sends`` asks in the hour from one IP or
  device, each further ask needs a captcha answered (``chalicelib.captcha``): ``captcha.required``
  (428, ``details.challenge``), or ``captcha.wrong`` (422, field ``captcha_answer``) with a new
  challenge. The threshold is taken atomically: the hourly counters are first taken with the
  threshold as their cap, so of asks racing at the threshold only those under it go without an answer;
- a *signed-in* ask (the owner's own flow, a fleet's responsible person) per caller (the token's
  subject: ``sms_sends_per_caller_hour`` / ``_day``) and per device, never per IP and without a
  captcha: a carrier's NAT or a dealership's Wi-Fi shared with strangers does not stop signed-in people;
- a login ask from a *known device* (one the phone signed in from in the last ``LOGIN_DEVICE_DAYS``)
  per device only: strangers on the same network cannot spend its allowance.

Past a limit the ask is refused ``sms.too_many_from_client`` (429, ``details.retry_after``: the
window's end). Wrong code tries at login are bounded the same way per client (``sms_wrong_tries_*``:
``sms.too_many_tries_from_client``), so that one client cannot burn code after code of someone else's
phone; a known device's own code is out of strangers' reach altogether.

Every code actually sent counts in the platform's hourly budget (``sms_global_budget_per_hour``), kept in
``BUDGET_SHARDS`` counter items whose caps add up to the budget exactly; past it, sends are refused
``sms.unavailable_budget`` (503, ``details.retry_after_seconds``) and ``SmsBudgetExhausted`` is emitted
(alarmed). A send the provider fails is given back to the budget.

Client counters count asks that passed the captcha (a client hammering a locked phone is still
counted); the budget counts codes sent. A refused ask counts nothing: the client counters are taken
together in one transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.kernel.clock import china_day, end_of_china_day
from chalicelib.kernel.errors import DomainError, InvalidField, TooManyRequests

#: Counter items the platform's hourly budget is spread over (writes to one item are throttled).
BUDGET_SHARDS = 4
#: Days a device a phone signed in from keeps its own login code and allowance (refreshed at each login).
LOGIN_DEVICE_DAYS = 30


class CaptchaRequired(DomainError):
    """A further ask from this client needs a captcha answered first (HTTP 428)."""

    status = 428


class BudgetExhausted(DomainError):
    """The platform's SMS budget for the hour is spent: retry later (HTTP 503)."""

    status = 503


@dataclass(frozen=True)
class SendOrigin:
    """Who asks for a code: the client's IP and device as keyed hashes, the signed-in caller's subject,
    and a captcha answer if the client gives one."""

    ip_hash: str | None = None
    device_hash: str | None = None
    caller: str | None = None
    captcha_id: str | None = None
    captcha_answer: str | None = None
    #: Its client limits were already checked and counted (``SmsCodeService.admit``).
    admitted: bool = False


@dataclass(frozen=True)
class ClientPolicy:
    """The per-client limits and the platform's budget (settings ``sms_sends_per_*``, ``captcha_*``)."""

    per_ip_hour: int = 20
    per_ip_day: int = 100
    per_device_hour: int = 10
    per_device_day: int = 30
    captcha_after: int = 3
    budget_per_hour: int = 5000
    per_caller_hour: int = 10
    per_caller_day: int = 40
    tries_per_ip_hour: int = 30
    tries_per_ip_day: int = 100
    tries_per_device_hour: int = 10
    tries_per_device_day: int = 30

    def __post_init__(self) -> None:
        limits = (
            self.per_ip_hour,
            self.per_ip_day,
            self.per_device_hour,
            self.per_device_day,
            self.per_caller_hour,
            self.per_caller_day,
            self.tries_per_ip_hour,
            self.tries_per_ip_day,
            self.tries_per_device_hour,
            self.tries_per_device_day,
        )
        if min(limits) < 1 or self.budget_per_hour < 1 or self.captcha_after < 0:
            raise ValueError("client limits and the budget must be at least 1, captcha_after not negative")


@dataclass(frozen=True)
class Counter:
    """One window counter to take: its key, its cap, when its window ends."""

    key: str
    limit: int
    window_end: datetime
    reason: str  # "ip", "device" or "caller": the SmsSendRefused reason when it is full

    def capped(self, limit: int) -> Counter:
        """The same counter taken with a lower cap (the captcha threshold)."""
        return Counter(self.key, min(self.limit, limit), self.window_end, self.reason)


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def _windows(now: datetime) -> tuple[datetime, datetime, str, str]:
    hour = hour_start(now)
    return (
        hour + timedelta(hours=1),
        end_of_china_day(now),
        hour.strftime("%Y%m%d%H"),
        china_day(now).isoformat(),
    )


def client_counters(
    origin: SendOrigin, now: datetime, policy: ClientPolicy, *, known_device: bool = False
) -> list[Counter]:
    """The counters one ask takes, for the hour and the China day: a signed-in caller's and its
    device's; a known device's alone; else the IP's and the device's."""
    hour_end, day_end, hour_tag, day_tag = _windows(now)
    counters: list[Counter] = []
    if origin.caller:
        counters += [
            Counter(f"who#{origin.caller}#h#{hour_tag}", policy.per_caller_hour, hour_end, "caller"),
            Counter(f"who#{origin.caller}#d#{day_tag}", policy.per_caller_day, day_end, "caller"),
        ]
    elif origin.ip_hash and not known_device:
        counters += [
            Counter(f"ip#{origin.ip_hash}#h#{hour_tag}", policy.per_ip_hour, hour_end, "ip"),
            Counter(f"ip#{origin.ip_hash}#d#{day_tag}", policy.per_ip_day, day_end, "ip"),
        ]
    if origin.device_hash:
        counters += [
            Counter(f"dev#{origin.device_hash}#h#{hour_tag}", policy.per_device_hour, hour_end, "device"),
            Counter(f"dev#{origin.device_hash}#d#{day_tag}", policy.per_device_day, day_end, "device"),
        ]
    return counters


def captcha_applies(origin: SendOrigin, *, known_device: bool = False) -> bool:
    """Only anonymous asks from a device not known for the phone may be asked for a captcha."""
    return not origin.caller and not known_device


def try_counters(
    origin: SendOrigin, now: datetime, policy: ClientPolicy, *, known_device: bool = False
) -> list[Counter]:
    """The counters one failed login try takes: the device's, and the IP's unless the code tried is
    the known device's own."""
    hour_end, day_end, hour_tag, day_tag = _windows(now)
    counters: list[Counter] = []
    if origin.ip_hash and not known_device:
        counters += [
            Counter(f"try#ip#{origin.ip_hash}#h#{hour_tag}", policy.tries_per_ip_hour, hour_end, "ip"),
            Counter(f"try#ip#{origin.ip_hash}#d#{day_tag}", policy.tries_per_ip_day, day_end, "ip"),
        ]
    if origin.device_hash:
        counters += [
            Counter(
                f"try#dev#{origin.device_hash}#h#{hour_tag}", policy.tries_per_device_hour, hour_end, "device"
            ),
            Counter(
                f"try#dev#{origin.device_hash}#d#{day_tag}", policy.tries_per_device_day, day_end, "device"
            ),
        ]
    return counters


def login_device_key(phone_hash: str, device_hash: str) -> str:
    """The mark that ``device_hash`` signed in with the phone (kept ``LOGIN_DEVICE_DAYS``)."""
    return f"seen#{phone_hash}#{device_hash}"


def hour_counters(counters: list[Counter]) -> list[Counter]:
    """The hourly ones, which the captcha threshold reads."""
    return [c for c in counters if "#h#" in c.key]


def budget_caps(budget: int, shards: int = BUDGET_SHARDS) -> list[int]:
    """Each shard's cap: they add up to ``budget`` exactly (3 over 4 shards: 1, 1, 1, 0)."""
    return [budget // shards + (1 if i < budget % shards else 0) for i in range(shards)]


def budget_key(shard: int, now: datetime) -> str:
    return f"budget#{hour_start(now).strftime('%Y%m%d%H')}#{shard}"


def seconds_until(end: datetime, now: datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds()))


def too_many_tries_from_client(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        "sms.too_many_tries_from_client",
        f"此设备或网络验证码输错次数过多，请 {retry_after} 秒后再试",
        f"Too many wrong codes typed from this device or network; try again in {retry_after} s",
        field="code",
        details={"retry_after": retry_after},
    )


def too_many_from_client(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        "sms.too_many_from_client",
        f"此设备或网络获取验证码过于频繁，请 {retry_after} 秒后再试",
        f"Too many codes asked from this device or network; try again in {retry_after} s",
        details={"retry_after": retry_after},
    )


def budget_exhausted(retry_after: int) -> BudgetExhausted:
    return BudgetExhausted(
        "sms.unavailable_budget",
        "短信服务繁忙，请稍后再试",
        "The SMS service is busy; try again later",
        details={"retry_after_seconds": retry_after},
    )


def captcha_required(challenge: dict[str, object]) -> CaptchaRequired:
    return CaptchaRequired(
        "captcha.required",
        "请输入图片中的字符后再获取验证码",
        "Type the characters in the picture, then ask for the code again",
        field="captcha_answer",
        details={"challenge": challenge},
    )


def captcha_wrong(challenge: dict[str, object]) -> InvalidField:
    return InvalidField(
        "captcha.wrong",
        "图片验证码错误或已过期，请输入新图片中的字符",
        "The picture's characters are wrong or expired; type those of the new picture",
        field="captcha_answer",
        details={"challenge": challenge},
    )
