"""In-memory fakes of the SMS ports: a sender that records every text, and a code store that honours
the port's conditions as the DynamoDB adapter's conditional writes do."""

from __future__ import annotations

import re
from datetime import datetime

from chalicelib.sms.domain import SendQuota, SmsPolicy, StoredCode, after_send, check_send, send_failed
from chalicelib.sms.ports import SmsCodeStore, SmsSender


class FakeSmsSender(SmsSender):
    """Records ``(phone, text)`` of every message; ``fail()`` makes the next sends refused (503)."""

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

    def reserve_send(self, phone_hash: str, now: datetime, policy: SmsPolicy) -> SendQuota:
        current = self.quotas.get(phone_hash)
        check_send(current, now, policy)
        self.quotas[phone_hash] = after_send(current, now)
        return self.quotas[phone_hash]

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
