"""In-memory fakes of the SMS ports: a sender that records every text, and a code store that honours
the port's conditions as the DynamoDB adapter's conditional writes do."""

from __future__ import annotations

import re
from datetime import datetime

from chalicelib.captcha.domain import StoredChallenge
from chalicelib.captcha.ports import ChallengeStore
from chalicelib.kernel.clock import china_day
from chalicelib.sms.domain import (
    SendBuckets,
    SendQuota,
    SmsPolicy,
    StoredCode,
    after_send,
    check_send,
    check_total,
    send_failed,
)
from chalicelib.sms.limits import Counter
from chalicelib.sms.ports import SmsCodeStore, SmsLimitStore, SmsSender


class FakeSmsSender(SmsSender):
    """Records ``(phone, text)`` of every message; ``fail()`` makes the next sends refused (503) until
    ``recover()``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._failing = False

    def send(self, phone: str, text: str) -> str:
        if self._failing:
            raise send_failed()
        self.sent.append((phone, text))
        return f"m{len(self.sent)}"

    def fail(self) -> None:
        self._failing = True

    def recover(self) -> None:
        """The provider works again."""
        self._failing = False

    def texts_to(self, phone: str) -> list[str]:
        return [text for to, text in self.sent if to == phone]

    def last_code(self, phone: str | None = None) -> str:
        """The digits of the newest code message (to ``phone`` if given)."""
        texts = self.texts_to(phone) if phone else [text for _, text in self.sent]
        codes = [m.group(1) for m in (re.search(r"验证码 (\d+)", t) for t in texts) if m]
        assert codes, "no code was sent"
        return codes[-1]


class FakeSmsCodeStore(SmsCodeStore):
    """Quotas and current codes in dicts; every change conditional on the code as read (its salt),
    unused, unburnt (and for a consume, unexpired)."""

    def __init__(self) -> None:
        self.quotas: dict[str, SendQuota] = {}
        self.codes: dict[str, StoredCode] = {}

    def reserve_send(self, buckets: SendBuckets, now: datetime, policy: SmsPolicy) -> SendQuota:
        quota_key, total_key = buckets.quota_key, buckets.total_key
        total = self.quotas.get(total_key) if total_key else None
        if total_key:
            check_total(total, now, buckets.total_limit)
        current = self.quotas.get(quota_key)
        check_send(current, now, policy)
        if total_key:
            same_day = total is not None and total.day == china_day(now)
            sent = total.sent + 1 if total is not None and same_day else 1
            self.quotas[total_key] = SendQuota(day=china_day(now), sent=sent, last_sent_at=now)
        self.quotas[quota_key] = after_send(current, now)
        return self.quotas[quota_key]

    def release_send(self, buckets: SendBuckets, sent_at: datetime, policy: SmsPolicy) -> None:
        current = self.quotas.get(buckets.quota_key)
        if current is None or current.last_sent_at != sent_at or current.sent < 1:
            return
        self.quotas[buckets.quota_key] = current.model_copy(
            update={"sent": current.sent - 1, "last_sent_at": sent_at - policy.resend_interval}
        )
        total = self.quotas.get(buckets.total_key) if buckets.total_key else None
        if buckets.total_key and total is not None and total.sent > 0:
            self.quotas[buckets.total_key] = total.model_copy(update={"sent": total.sent - 1})

    def put_code(self, code: StoredCode) -> None:
        self.codes[code.key] = code

    def get_code(self, key: str) -> StoredCode | None:
        return self.codes.get(key)

    def _current(self, code: StoredCode, max_tries: int) -> StoredCode | None:
        now = self.codes.get(code.key)
        if now is None or now.salt != code.salt or now.used_at is not None or now.tries >= max_tries:
            return None
        return now

    def add_wrong_try(self, code: StoredCode, max_tries: int) -> int | None:
        current = self._current(code, max_tries)
        if current is None:
            return None
        self.codes[code.key] = current.model_copy(update={"tries": current.tries + 1})
        return current.tries + 1

    def consume(self, code: StoredCode, now: datetime, max_tries: int) -> bool:
        current = self._current(code, max_tries)
        if current is None or current.expires_at <= now:
            return False
        self.codes[code.key] = current.model_copy(update={"used_at": now, "code_hash": None})
        return True


class FakeSmsLimitStore(SmsLimitStore):
    """Counters in a dict; a take counts in all its counters or in none."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def tallies(self, keys: list[str]) -> dict[str, int]:
        return {key: self.counts.get(key, 0) for key in keys}

    def take(self, counters: list[Counter]) -> Counter | None:
        for counter in counters:
            if self.counts.get(counter.key, 0) >= counter.limit:
                return counter
        for counter in counters:
            self.counts[counter.key] = self.counts.get(counter.key, 0) + 1
        return None

    def release(self, keys: list[str]) -> None:
        for key in keys:
            if self.counts.get(key, 0) > 0:
                self.counts[key] -= 1

    def take_budget(self, keys_and_caps: list[tuple[str, int]], expires_at: datetime) -> str | None:
        for key, cap in keys_and_caps:
            if self.counts.get(key, 0) < cap:
                self.counts[key] = self.counts.get(key, 0) + 1
                return key
        return None

    def mark(self, key: str, until: datetime) -> None:
        self.counts[key] = max(1, self.counts.get(key, 0))


class FakeChallengeStore(ChallengeStore):
    """Challenges in a dict; ``take`` spends one."""

    def __init__(self) -> None:
        self.challenges: dict[str, StoredChallenge] = {}
        self.spent: set[str] = set()

    def put(self, challenge: StoredChallenge) -> None:
        self.challenges[challenge.challenge_id] = challenge

    def take(self, challenge_id: str) -> StoredChallenge | None:
        if challenge_id in self.spent or challenge_id not in self.challenges:
            return None
        self.spent.add(challenge_id)
        return self.challenges[challenge_id]
