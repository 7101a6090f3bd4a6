"""SMS verification codes (短信验证码): send one to a phone, check what the person typed.

SPEC §3: 6 digits, valid 5 minutes, 5 wrong tries per code; a correct code is consumed. Sends are
limited per phone (``chalicelib.sms.domain``: buckets per purpose, per caller for signed-in flows, per
known device for logins), per client and by the platform's budget (``chalicelib.sms.limits``); a
signed-in caller's code is theirs alone, and a known device's login code is that device's. Codes and
counters are keyed by the keyed hash of the number and a code is stored only as a keyed hash with
its own salt (第十九条, PIPL): a copy of the table reveals neither the numbers nor, without the KMS
hashing key, the codes.
"""

from __future__ import annotations

import hmac
import random
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime, timedelta

from chalicelib.captcha.ports import Captcha
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import DomainError
from chalicelib.kernel.validators import validate
from chalicelib.sms.domain import (
    MatchedCode,
    SentCode,
    SmsPolicy,
    SmsPurpose,
    StoredCode,
    check_code,
    code_digest_input,
    code_key,
    code_message,
    code_wrong,
    new_code,
    new_stored_code,
    no_code,
    phone_lookup_value,
    send_buckets,
    sent_code,
    subject_for,
)
from chalicelib.sms.limits import (
    BUDGET_SHARDS,
    LOGIN_DEVICE_DAYS,
    ClientPolicy,
    Counter,
    SendOrigin,
    budget_caps,
    budget_exhausted,
    budget_key,
    captcha_applies,
    captcha_required,
    captcha_wrong,
    client_counters,
    hour_counters,
    hour_start,
    login_device_key,
    seconds_until,
    too_many_from_client,
    too_many_tries_from_client,
    try_counters,
)
from chalicelib.sms.ports import SmsCodeStore, SmsLimitStore, SmsSender

#: Re-reads when a check races with another check or a new send of the same code.
_RACE_RETRIES = 3
#: Who is asking in the request being served (the API sets it: ``asking_as``); services that send codes
#: on a person's behalf need not carry it.
_origin: ContextVar[SendOrigin | None] = ContextVar("sms_origin", default=None)


@contextmanager
def asking_as(origin: SendOrigin) -> Iterator[None]:
    """Within the block, codes are sent on behalf of ``origin`` (its client limits, captcha, caller)."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


class SmsCodeService:
    """Sends and checks codes; the limits hold across concurrent requests (conditional writes)."""

    def __init__(
        self,
        codes: SmsCodeStore,
        sender: SmsSender,
        hasher: KeyedHasher,
        *,
        clock: Clock = utc_now,
        randbelow: Callable[[int], int] = secrets.randbelow,
        policy: SmsPolicy | None = None,
        limits: SmsLimitStore | None = None,
        captcha: Captcha | None = None,
        client_policy: ClientPolicy | None = None,
        captcha_issues_per_hour: int = 60,
    ) -> None:
        self._codes = codes
        self._limits = limits
        self._captcha = captcha
        self._client_policy = client_policy or ClientPolicy()
        self._captcha_issues_per_hour = captcha_issues_per_hour
        self._sender = sender
        self._hasher = hasher
        self._clock = clock
        self._randbelow = randbelow
        self._policy = policy or SmsPolicy()

    @property
    def policy(self) -> SmsPolicy:
        return self._policy

    def phone_hash(self, phone: str) -> str:
        """The keyed hash a phone is known by (``mobile.format`` 422 when it is no mainland mobile)."""
        return self._phone(phone)[1]

    def _phone(self, phone: str) -> tuple[str, str]:
        mobile = validate("mobile", phone, field="phone").value
        return mobile, self._hasher.digest(phone_lookup_value(mobile))

    def send(
        self,
        phone: str,
        purpose: SmsPurpose,
        origin: SendOrigin | None = None,
        *,
        caller: str | None = None,
    ) -> SentCode:
        """Send a new code for ``purpose``; it replaces the earlier code of its key (``code_key``).

        ``origin`` (default: the one ``asking_as`` set) is who asks; ``caller`` (default: the origin's)
        is whose flow the code is for: a signed-in purpose's code is checked for that caller only.
        Checked in this order, each refusal counting nothing further: the client's limits and captcha
        (``sms.too_many_from_client``, ``captcha.required``, ``captcha.wrong``), the phone's bucket and
        total (``sms.too_soon`` with details.retry_after, ``sms.daily_limit``), the platform's budget
        (``sms.unavailable_budget``), the provider (``sms.send_failed``). The last two give the phone's
        send back. Answers the same whoever holds the phone.
        """
        origin = origin or _origin.get()
        mobile, phone_hash = self._phone(phone)
        policy = self._policy
        now = self._clock()
        caller = caller or (origin.caller if origin else None)
        device = (
            self._known_device(phone_hash, origin) if purpose is SmsPurpose.LOGIN and not caller else None
        )
        self._admit(origin, now, known_device=device is not None)
        buckets = send_buckets(purpose, phone_hash, policy, caller, device)
        try:
            self._codes.reserve_send(buckets, now, policy)
        except DomainError:
            emit(Metric.SMS_SEND_REFUSED, reason="phone")
            raise
        shard: str | None = None
        try:
            shard = self._spend_budget(now)
            code = new_code(self._randbelow, policy.code_length)
            salt = secrets.token_hex(16)
            key = code_key(purpose, phone_hash, caller, device)
            code_hash = self._hasher.digest(code_digest_input(key, salt, code))
            # Stored before it is sent: a code the person receives is always one that can be checked.
            self._codes.put_code(new_stored_code(key, purpose, phone_hash, code_hash, salt, now, policy))
            self._sender.send(mobile, code_message(purpose, code, policy.validity))
        except Exception:
            # Nothing went out (the budget refused, the store or the provider failed): the phone's send
            # and the budget are given back, so a retry goes at once.
            self._codes.release_send(buckets, now, policy)
            if shard is not None and self._limits is not None:
                self._limits.release([shard])
            raise
        emit(Metric.SMS_CODES_SENT, purpose=purpose.value)
        return sent_code(policy)

    def _known_device(self, phone_hash: str, origin: SendOrigin | None) -> str | None:
        """The origin's device hash if it signed in with this phone lately (its own login code)."""
        if self._limits is None or origin is None or not origin.device_hash:
            return None
        key = login_device_key(phone_hash, origin.device_hash)
        return origin.device_hash if self._limits.tallies([key]).get(key, 0) > 0 else None

    def admit(self, origin: SendOrigin) -> SendOrigin:
        """Check and count the client's limits once for an ask (the API does it before anything else
        is looked at); the origin returned is not counted again by ``send``."""
        self._admit(origin, self._clock())
        return replace(origin, admitted=True)

    def _admit(self, origin: SendOrigin | None, now: datetime, *, known_device: bool = False) -> None:
        """The client's limits: its counters, and for an anonymous ask a captcha from ``captcha_after``
        asks this hour. The threshold is a cap on the hourly counters taken without an answer, so asks
        racing past it cannot all skip the captcha."""
        if self._limits is None or origin is None or origin.admitted:
            return
        counters = client_counters(origin, now, self._client_policy, known_device=known_device)
        if not counters:
            return
        threshold = self._client_policy.captcha_after
        hourly = {c.key for c in hour_counters(counters)}
        gated = (
            self._captcha is not None
            and captcha_applies(origin, known_device=known_device)
            and any(c.limit > threshold for c in hour_counters(counters))
        )
        if gated:
            assert self._captcha is not None
            capped = [c.capped(threshold) if c.key in hourly else c for c in counters]
            full = self._limits.take(capped)
            if full is None:
                return  # under the threshold: no answer needed, counted
            if full.limit < next(c.limit for c in counters if c.key == full.key):
                # At the threshold (unless a real limit is reached too: then no answer would help).
                tallies = self._limits.tallies([c.key for c in counters])
                if all(tallies.get(c.key, 0) < c.limit for c in counters):
                    if not origin.captcha_id or not origin.captcha_answer:
                        emit(Metric.SMS_SEND_REFUSED, reason="captcha")
                        raise captcha_required(self.challenge(origin, now))
                    if not self._captcha.verify(origin.captcha_id, origin.captcha_answer):
                        emit(Metric.SMS_SEND_REFUSED, reason="captcha")
                        raise captcha_wrong(self.challenge(origin, now))
        full = self._limits.take(counters)
        if full is not None:
            emit(Metric.SMS_SEND_REFUSED, reason=full.reason)
            raise too_many_from_client(seconds_until(full.window_end, now))

    def challenge(self, origin: SendOrigin | None, now: datetime | None = None) -> dict[str, object]:
        """A new captcha challenge for ``origin`` (as JSON), counted against its IP's hourly issues
        (``sms.too_many_from_client`` past ``captcha_issues_per_ip_hour``)."""
        if self._captcha is None:
            raise RuntimeError("no captcha configured")
        now = now or self._clock()
        if self._limits is not None and origin is not None and origin.ip_hash:
            end = hour_start(now) + timedelta(hours=1)
            counter = Counter(
                f"cap#{origin.ip_hash}#h#{hour_start(now):%Y%m%d%H}", self._captcha_issues_per_hour, end, "ip"
            )
            if self._limits.take([counter]) is not None:
                emit(Metric.SMS_SEND_REFUSED, reason="ip")
                raise too_many_from_client(seconds_until(end, now))
        return self._captcha.issue().model_dump(mode="json")

    def _spend_budget(self, now: datetime) -> str | None:
        """One code out of the platform's hourly budget, from a shard picked at random: its key."""
        if self._limits is None:
            return None
        caps = budget_caps(self._client_policy.budget_per_hour)
        first = random.randrange(BUDGET_SHARDS)  # spreads the writes; nothing secret
        order = [(first + i) % BUDGET_SHARDS for i in range(BUDGET_SHARDS)]
        end = hour_start(now) + timedelta(hours=1)
        shards = [(budget_key(i, now), caps[i]) for i in order if caps[i] > 0]
        shard = self._limits.take_budget(shards, end)
        if shard is None:
            emit(Metric.SMS_BUDGET_EXHAUSTED)
            emit(Metric.SMS_SEND_REFUSED, reason="budget")
            raise budget_exhausted(seconds_until(end, now))
        return shard

    def check(self, phone: str, purpose: SmsPurpose, code: str, caller: str | None = None) -> None:
        """Accept and consume the phone's current ``purpose`` code sent for ``caller``, or refuse.

        A signed-in purpose's code is the caller's own (``code_key``): another person's check never
        finds it, so never spends its tries. ``sms.no_code`` (none, or already used),
        ``sms.too_many_tries`` (burnt), ``sms.code_expired``, ``sms.code_wrong`` (details.tries_left;
        the try is counted).
        """
        phone_hash = self.phone_hash(phone)
        self._verify(code_key(purpose, phone_hash, caller), code)

    def match(self, phone: str, purpose: SmsPurpose, code: str, caller: str | None = None) -> MatchedCode:
        """The phone's current ``purpose`` code sent for ``caller`` if ``code`` is it, not used yet: the
        caller writes its use with the writes of the step it proves (``use``, or one transaction).

        Refused as ``check`` refuses (``sms.no_code``, ``sms.too_many_tries``, ``sms.code_expired``,
        ``sms.code_wrong``); a wrong code's try is counted here, whatever the step does next.
        """
        phone_hash = self.phone_hash(phone)
        return self._match(code_key(purpose, phone_hash, caller), code)

    def use(self, matched: MatchedCode) -> bool:
        """Use a matched code on its own: False when it was used, burnt or replaced meanwhile (the
        caller matches it again: the re-read says which)."""
        return self._codes.consume(matched.code, matched.at, matched.max_tries)

    def login(self, phone: str, code: str, origin: SendOrigin | None = None) -> str:
        """Check a login code; the subject (stable, pseudonymous) of the person holding the phone.

        From a known device, its own code is checked (strangers' tries never reach it). Otherwise the
        phone's login code, a failed try counting against the client (``sms.too_many_tries_from_client``
        past the limits, before the code is looked at). A success marks the origin's device as known
        for the phone for ``LOGIN_DEVICE_DAYS``.
        """
        origin = origin or _origin.get()
        phone_hash = self.phone_hash(phone)
        now = self._clock()
        device = self._known_device(phone_hash, origin)
        key = code_key(SmsPurpose.LOGIN, phone_hash, device=device)
        if device is not None and not _live(self._codes.get_code(key)):
            device = None  # its code was sent before the device was known: the phone's one
            key = code_key(SmsPurpose.LOGIN, phone_hash)
        taken = self._take_try(origin, now, known_device=device is not None)
        self._verify(key, code)  # a failed try stays counted
        self._give_back(taken)
        if self._limits is not None and origin is not None and origin.device_hash:
            until = now + timedelta(days=LOGIN_DEVICE_DAYS)
            self._limits.mark(login_device_key(phone_hash, origin.device_hash), until)
        return subject_for(phone_hash)

    def _take_try(self, origin: SendOrigin | None, now: datetime, *, known_device: bool) -> list[str]:
        """Count a try against the client before it is made (atomic: racing tries cannot overshoot);
        a success gives it back. The keys taken."""
        if self._limits is None or origin is None:
            return []
        counters = try_counters(origin, now, self._client_policy, known_device=known_device)
        full = self._limits.take(counters)
        if full is not None:
            emit(Metric.SMS_SEND_REFUSED, reason=full.reason)
            raise too_many_tries_from_client(seconds_until(full.window_end, now))
        return [c.key for c in counters]

    def _give_back(self, keys: list[str]) -> None:
        if keys and self._limits is not None:
            self._limits.release(keys)

    def _verify(self, key: str, code: str) -> None:
        for _ in range(_RACE_RETRIES):
            if self.use(self._match(key, code)):
                return
            # used, burnt or replaced meanwhile: the re-read says which
        raise no_code()

    def _match(self, key: str, code: str) -> MatchedCode:
        """The code of ``key`` as read, if ``code`` is it (nothing written); a wrong code's try counted."""
        policy = self._policy
        for _ in range(_RACE_RETRIES):
            now = self._clock()
            stored = check_code(self._codes.get_code(key), now, policy)
            given = self._hasher.digest(code_digest_input(key, stored.salt, code.strip()))
            if hmac.compare_digest(given.encode(), (stored.code_hash or "").encode()):
                return MatchedCode(stored, now, policy.max_wrong_tries)
            tries = self._codes.add_wrong_try(stored, policy.max_wrong_tries)
            if tries is not None:
                raise code_wrong(max(0, policy.max_wrong_tries - tries))
            # used, burnt or replaced meanwhile: the re-read says which
        raise no_code()


def _live(stored: StoredCode | None) -> bool:
    """Whether a stored code may still be tried or used (sent, unused, not burnt)."""
    return stored is not None and stored.used_at is None and stored.code_hash is not None
