"""Ports of SMS verification codes: sending a text to a phone, and keeping codes and send counts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from chalicelib.sms.domain import SendQuota, SmsPolicy, StoredCode


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
    def reserve_send(self, phone_hash: str, now: datetime, policy: SmsPolicy) -> SendQuota:
        """Count one send to the phone, atomically with the checks of ``domain.sms.check_send``.

        Raises ``sms.too_soon`` or ``sms.daily_limit`` (and counts nothing) when the send is refused;
        of two concurrent sends within the resend interval, exactly one is counted.
        """

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
