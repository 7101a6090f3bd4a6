"""Request signing between the platform and the operators (数据推送接口的签名与防重放).

Every request in either direction is signed with HMAC over a canonical string::

    METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

``PATH`` is the request target as sent (with its query string, if any), ``TIMESTAMP`` milliseconds
since the epoch, ``NONCE`` 16-64 characters of ``[0-9A-Za-z_-]``. Two methods: ``HMAC-SM3`` (国密
SM3, GB/T 32905, the default operators ask for) and ``HMAC-SHA256``. Both come from ``cryptography``
(OpenSSL), which computes HMAC-SM3 directly.

Verification order: timestamp window, then signature, then nonce. The nonce is remembered only once
the signature is good, so nobody can burn nonces with unsigned requests. A request is accepted while
its timestamp lies within ±``window_seconds`` of the receiver's clock, so a nonce must be remembered
for twice the window from first sight (:class:`NonceCache` does that in memory; the platform passes its
own ``seen_nonce`` backed by storage).

This module knows nothing of HTTP header names or bodies' contents: ``wire`` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac as std_hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

#: Default acceptance window of a request's timestamp, either side of the receiver's clock.
DEFAULT_WINDOW_SECONDS = 300


_NONCE = re.compile(r"[0-9A-Za-z_-]{16,64}")


_TIMESTAMP = re.compile(r"[0-9]{13}")


class SignMethod(StrEnum):
    HMAC_SM3 = "HMAC-SM3"
    HMAC_SHA256 = "HMAC-SHA256"


class SignatureError(Exception):
    """A request that does not authenticate. ``code`` is stable and goes back to the sender.

    Codes: ``missing_auth`` (a header absent or malformed), ``unknown_operator``, ``unknown_app``,
    ``unknown_key``, ``sign_method_mismatch``, ``stale_timestamp``, ``bad_signature`` and
    ``replayed_nonce`` (the one code for an authentic request: it was already received).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def new_nonce() -> str:
    return secrets.token_hex(16)


def timestamp_ms(now: datetime) -> str:
    """``now`` (aware) as the 13-digit milliseconds since the epoch used on the wire."""
    return str(int(now.timestamp() * 1000))


def canonical_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, timestamp, nonce, digest)).encode()


def mac(sign_method: SignMethod, key: bytes, data: bytes) -> bytes:
    if sign_method is SignMethod.HMAC_SHA256:
        return std_hmac.new(key, data, hashlib.sha256).digest()
    sm3 = crypto_hmac.HMAC(key, hashes.SM3())
    sm3.update(data)
    return sm3.finalize()


def sign(
    sign_method: SignMethod, key: bytes, *, method: str, path: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """The base64 signature of one request."""
    digest = mac(sign_method, key, canonical_string(method, path, timestamp, nonce, body))
    return base64.b64encode(digest).decode()


def verify(
    sign_method: SignMethod,
    key: bytes,
    *,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    signature: str,
    now: datetime,
    seen_nonce: Callable[[str], bool],
    nonce_scope: str = "",
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
) -> None:
    """Raise :class:`SignatureError` unless the request is fresh, authentic and new.

    ``seen_nonce(value)`` records ``value`` and answers whether it had been recorded before; it is
    called with ``nonce_scope + ":" + nonce`` (the scope is the operator, so two operators' nonces
    never collide) and only after the signature checked out.
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("missing_auth", "timestamp must be 13 digits (milliseconds since the epoch)")
    if not _NONCE.fullmatch(nonce):
        raise SignatureError("missing_auth", "nonce must be 16-64 characters of [0-9A-Za-z_-]")
    skew_ms = abs(int(now.timestamp() * 1000) - int(timestamp))
    if skew_ms > window_seconds * 1000:
        raise SignatureError(
            "stale_timestamp",
            f"timestamp is {skew_ms // 1000} s from the receiver's clock (±{window_seconds})",
        )
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("bad_signature", "signature is not base64") from None
    expected = mac(sign_method, key, canonical_string(method, path, timestamp, nonce, body))
    if not std_hmac.compare_digest(given, expected):
        raise SignatureError("bad_signature", "signature does not match the request")
    if seen_nonce(f"{nonce_scope}:{nonce}"):
        raise SignatureError("replayed_nonce", "this nonce was already used")


class NonceCache:
    """Nonces seen within ``ttl_seconds`` (twice the window), in memory; thread-safe.

    Enough for one process (the sandbox operator); entries leave in arrival order once expired, and
    the oldest go first if ``max_entries`` is reached (a request that old is outside the window anyway
    unless the rate exceeds ``max_entries`` per ``ttl_seconds``).
    """

    def __init__(
        self,
        ttl_seconds: float = 2 * DEFAULT_WINDOW_SECONDS,
        *,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, nonce: str) -> bool:
        """Record ``nonce``; True when it was already there (a replay)."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, since = next(iter(self._seen.items()))
                if now - since <= self._ttl and len(self._seen) < self._max:
                    break
                del self._seen[oldest]
            if nonce in self._seen:
                return True
            self._seen[nonce] = now
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
