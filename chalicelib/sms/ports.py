"""Ports of SMS verification codes: sending a text to a phone, and keeping codes and send counts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from chalicelib.sms.domain import SendBuckets, SendQuota, SmsPolicy, StoredCode
from chalicelib.sms.limits import Counter


class SmsSender(ABC):
    """Delivers one text message to a mainland mobile number."""

    @abstractmethod
    def send(self, phone: str, text: str) -> str:
        """Send ``text`` to ``phone`` (11 digits, validated); return the provider's message id.

        Raises ``SmsUnavailable`` (``sms.send_failed``) when the provider refuses or fails.
        """


class SmsCodeStore(ABC):
    """Current codes per purpose and phone hash, and sends per phone hash; every change conditional."""

    @abstractmethod
    def reserve_send(self, buckets: SendBuckets, now: datetime, policy: SmsPolicy) -> SendQuota:
        """Count one send in ``buckets.quota_key`` and, if given, in the phone's total
        ``buckets.total_key`` (under ``total_limit``), with the checks of ``domain.check_send`` and
        ``domain.check_total``.

        Raises ``sms.too_soon`` or ``sms.daily_limit`` and counts nothing when the send is refused; of
        two concurrent sends within the resend interval, exactly one is counted.
        """

    @abstractmethod
    def release_send(self, buckets: SendBuckets, sent_at: datetime, policy: SmsPolicy) -> None:
        """Give back the send reserved at ``sent_at`` (the budget refused it or the provider failed):
        one less in the bucket and the total, and the resend interval no longer runs from it."""

    @abstractmethod
    def put_code(self, code: StoredCode) -> None:
        """Store ``code`` as the current one of its purpose and phone, replacing any earlier code."""

    @abstractmethod
    def get_code(self, key: str) -> StoredCode | None: ...

    @abstractmethod
    def add_wrong_try(self, code: StoredCode, max_tries: int) -> int | None:
        """Count a wrong try against ``code`` (as read); the tries now, or None if it changed meanwhile."""

    @abstractmethod
    def consume(self, code: StoredCode, now: datetime, max_tries: int) -> bool:
        """Mark ``code`` (as read) used if it is still current, unused, unburnt and unexpired.

        False when another request got there first or the code changed meanwhile.
        """


class SmsLimitStore(ABC):
    """Window counters of code asks per client, and the shards of the platform's hourly SMS budget."""

    @abstractmethod
    def tallies(self, keys: list[str]) -> dict[str, int]:
        """The current count of each counter (0 when it does not exist)."""

    @abstractmethod
    def take(self, counters: list[Counter]) -> Counter | None:
        """Count one in every counter, all or none: None when counted, else a counter that is full."""

    @abstractmethod
    def release(self, keys: list[str]) -> None:
        """Count one less in each counter (never below 0): what was taken for a send or a try that
        turned out not to count."""

    @abstractmethod
    def take_budget(self, keys_and_caps: list[tuple[str, int]], expires_at: datetime) -> str | None:
        """Count one in the first shard (in the order given) under its cap: its key, None when all are
        full."""

    @abstractmethod
    def mark(self, key: str, until: datetime) -> None:
        """Set a mark (its tally at least 1) that lasts until ``until``; ``tallies`` reads it."""
