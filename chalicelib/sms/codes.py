"""SMS verification codes (短信验证码): send one to a phone, check what the person typed.

SPEC §3: 6 digits, valid 5 minutes, one send per phone every 60 s and 10 per China day, 5 wrong tries
per code; a correct code is consumed. Codes and counters are keyed by the keyed hash of the number and
a code is stored only as a keyed hash with its own salt (第十九条, PIPL): a copy of the table reveals
neither the numbers nor, without the KMS hashing key, the codes.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.validators import validate
from chalicelib.sms.domain import (
    SentCode,
    SmsPolicy,
    SmsPurpose,
    check_code,
    code_digest_input,
    code_key,
    code_message,
    code_wrong,
    new_code,
    new_stored_code,
    no_code,
    phone_lookup_value,
    sent_code,
    subject_for,
)
from chalicelib.sms.ports import SmsCodeStore, SmsSender

#: Re-reads when a check races with another check or a new send of the same code.
_RACE_RETRIES = 3


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
    ) -> None:
        self._codes = codes
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

    def send(self, phone: str, purpose: SmsPurpose) -> SentCode:
        """Send a new code for ``purpose``; it replaces the phone's earlier code of that purpose.

        Refused with ``sms.too_soon`` (details.retry_after) within the resend interval of the phone's
        last code, and ``sms.daily_limit`` past the day's sends. Answers the same whoever holds the phone.
        """
        mobile, phone_hash = self._phone(phone)
        policy = self._policy
        now = self._clock()
        self._codes.reserve_send(phone_hash, now, policy)
        code = new_code(self._randbelow, policy.code_length)
        salt = secrets.token_hex(16)
        key = code_key(purpose, phone_hash)
        code_hash = self._hasher.digest(code_digest_input(key, salt, code))
        # Stored before it is sent: a code the person receives is always one that can be checked.
        self._codes.put_code(new_stored_code(purpose, phone_hash, code_hash, salt, now, policy))
        self._sender.send(mobile, code_message(purpose, code, policy.validity))
        return sent_code(policy)

    def check(self, phone: str, purpose: SmsPurpose, code: str) -> None:
        """Accept and consume the phone's current ``purpose`` code, or refuse.

        ``sms.no_code`` (none, or already used), ``sms.too_many_tries`` (burnt), ``sms.code_expired``,
        ``sms.code_wrong`` (details.tries_left; the try is counted).
        """
        self._verify(phone, purpose, code)

    def login(self, phone: str, code: str) -> str:
        """Check a login code; the subject (stable, pseudonymous) of the person holding the phone."""
        return subject_for(self._verify(phone, SmsPurpose.LOGIN, code))

    def _verify(self, phone: str, purpose: SmsPurpose, code: str) -> str:
        phone_hash = self.phone_hash(phone)
        key = code_key(purpose, phone_hash)
        policy = self._policy
        for _ in range(_RACE_RETRIES):
            now = self._clock()
            stored = check_code(self._codes.get_code(key), now, policy)
            given = self._hasher.digest(code_digest_input(key, stored.salt, code.strip()))
            if hmac.compare_digest(given.encode(), (stored.code_hash or "").encode()):
                if self._codes.consume(stored, now, policy.max_wrong_tries):
                    return phone_hash
                continue  # used, burnt or replaced meanwhile: the re-read says which
            tries = self._codes.add_wrong_try(stored, policy.max_wrong_tries)
            if tries is not None:
                raise code_wrong(max(0, policy.max_wrong_tries - tries))
        raise no_code()
