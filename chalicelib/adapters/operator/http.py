"""The operator gateway over HTTPS: signs, POSTs, and classifies the answer for the dispatcher.

Classification (the dispatcher retries the first, dead-letters the second at once):

- ``OperatorNotConfigured``: the stage has no base URL or no usable keys for the operator (a secret
  that is missing, empty or not in the keys' format): the push waits in the outbox until they are set;
- ``OperatorUnavailable``: timeout, connection refused/reset, TLS failure, 408/425/429, any 5xx, a 2xx
  whose body cannot be read (the push may have landed: a retry is safe, the push is idempotent);
- ``OperatorRefused(code)``: any other 4xx (the operator's ``code``, e.g. ``bad_signature``,
  ``malformed``, ``wrong_operator``), a redirect (never followed: a push is not replayed elsewhere).

``missing_configuration()`` lists what each operator lacks (for ``/health`` and the alarm), cached for
``configuration_cache_seconds``.

Only the standard library's ``urllib`` is used (no new dependency in the Lambda package). Proxies from
the environment are ignored: operators are reached over their dedicated lines, not a generic proxy.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.operators import Operator
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    OperatorCardRecord,
    OperatorNotConfigured,
    OperatorRefused,
    OperatorUnavailable,
    PushMessage,
    PushReceipt,
    PushStatus,
)
from chalicelib.operators.keys import OperatorKeys, OperatorKeysUnavailable
from chalicelib.operators.ports import OperatorDirectory, OperatorGateway, OperatorKeySource

_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_RETRYABLE_4XX = frozenset({408, 425, 429})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HttpOperatorGateway(OperatorGateway, OperatorDirectory):
    """Pushes to each operator's base URL (``Operator`` → URL, e.g. ``https://gw.example.cn/iot``)."""

    def __init__(
        self,
        base_urls: Mapping[Operator, str],
        keys: OperatorKeySource,
        *,
        timeout_seconds: float = 5.0,
        listing_page_size: int = 500,
        clock: Clock = utc_now,
        ssl_context: ssl.SSLContext | None = None,
        on_result: Callable[[Operator, str, int | None, float], None] | None = None,
        configuration_cache_seconds: float = 30.0,
    ) -> None:
        """``on_result(operator, operation, status or None, seconds)`` is told of every request (metrics).
        An empty URL is no URL (the deployment has not filled it in yet)."""
        base_urls = {op: url for op, url in base_urls.items() if url.strip()}
        for operator, url in base_urls.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"base URL of {operator.value} must be an http(s) URL")
        self._base_urls = {op: url.rstrip("/") for op, url in base_urls.items()}
        self._keys = keys
        self._timeout = timeout_seconds
        self._page_size = listing_page_size
        self._clock = clock
        self._on_result = on_result
        self._configuration_ttl = configuration_cache_seconds
        self._configuration: tuple[float, dict[str, str]] | None = None
        self._configuration_lock = threading.Lock()
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    # ------------------------------------------------------------------ plumbing

    def _configured(self, operator: Operator) -> tuple[str, str, OperatorKeys]:
        """``(origin, path prefix, current keys)`` of the operator; ``OperatorNotConfigured`` saying what
        is missing when the stage lacks its URL or its keys."""
        url = self._base_urls.get(operator)
        try:
            keys: OperatorKeys | None = self._keys.current(operator)
        except OperatorKeysUnavailable:
            keys = None
        if url is None or keys is None:
            missing = ", ".join(
                part for part, absent in (("url", url is None), ("keys", keys is None)) if absent
            )
            raise OperatorNotConfigured(operator, missing)
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/"), keys

    def _keys_usable(self, operator: Operator) -> bool:
        try:
            self._keys.current(operator)
        except OperatorKeysUnavailable:
            return False
        except Exception as exc:  # Secrets Manager unreachable or access denied: not usable either
            logger.warning(
                "operator keys unreadable", extra={"operator": operator.value, "error": type(exc).__name__}
            )
            return False
        return True

    def missing_configuration(self) -> dict[str, str]:
        """Operator value → what the stage lacks to push to it: ``"url"``, ``"keys"`` or ``"url, keys"``
        (an empty dict: every operator is configured). Cached ``configuration_cache_seconds``."""
        now = time.monotonic()
        with self._configuration_lock:
            cached = self._configuration
        if cached is not None and now - cached[0] < self._configuration_ttl:
            return dict(cached[1])
        missing: dict[str, str] = {}
        for operator in Operator:
            absent = [
                part
                for part, lacking in (
                    ("url", operator not in self._base_urls),
                    ("keys", not self._keys_usable(operator)),
                )
                if lacking
            ]
            if absent:
                missing[operator.value] = ", ".join(absent)
        with self._configuration_lock:
            self._configuration = (now, missing)
        return dict(missing)

    def _send(
        self, operator: Operator, origin: str, request: wire.WireRequest, operation: str
    ) -> tuple[int, bytes]:
        http_request = urllib.request.Request(  # noqa: S310 - the URL is configuration, http(s) checked
            origin + request.path,
            data=request.body if request.method != "GET" else None,
            headers=request.headers,
            method=request.method,
        )
        started = time.perf_counter()
        status: int | None = None
        try:
            with self._opener.open(http_request, timeout=self._timeout) as response:
                status = int(response.status)
                return status, response.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as err:  # a status outside 2xx: the body says why
            status = int(err.code)
            with err:
                try:
                    return status, err.read(_MAX_RESPONSE_BYTES)
                except (OSError, http.client.HTTPException):
                    return status, b""
        except (OSError, http.client.HTTPException) as exc:
            # URLError (refused, DNS, TLS), TimeoutError, ConnectionResetError, RemoteDisconnected, …
            reason = getattr(exc, "reason", exc)
            raise OperatorUnavailable(
                f"{operator.value} {operation}: {type(reason).__name__}: {reason}"
            ) from None
        finally:
            if self._on_result is not None:
                self._on_result(operator, operation, status, time.perf_counter() - started)

    @staticmethod
    def _failure(operator: Operator, operation: str, status: int, body: bytes) -> Exception:
        """The exception a non-success answer becomes."""
        code, message = wire.decode_error(body, status)
        if status >= 500 or status in _RETRYABLE_4XX:
            return OperatorUnavailable(f"{operator.value} {operation}: HTTP {status} {code}")
        if 300 <= status < 400:
            return OperatorRefused(f"http_{status}", f"{operator.value} redirected the {operation}")
        return OperatorRefused(code, f"{operator.value} refused the {operation} (HTTP {status}): {message}")

    # ------------------------------------------------------------------ OperatorGateway

    def push(self, message: PushMessage) -> PushReceipt:
        operator = message.card.operator
        origin, prefix, keys = self._configured(operator)
        request = wire.encode_push(message, keys, now=self._clock(), path=prefix + wire.PUSH_PATH)
        status, body = self._send(operator, origin, request, "push")
        if 200 <= status < 300:
            try:
                return wire.decode_receipt(body, message.message_id)
            except wire.WireError as exc:
                raise OperatorUnavailable(
                    f"{operator.value} push: unreadable receipt ({exc.message})"
                ) from None
        raise self._failure(operator, "push", status, body)

    def query_status(self, operator: Operator, message_id: str) -> PushStatus:
        origin, prefix, keys = self._configured(operator)
        request = wire.encode_status_request(keys, message_id, now=self._clock(), prefix=prefix)
        status, body = self._send(operator, origin, request, "status")
        if status == 200:
            try:
                return wire.decode_status(body, message_id, keys)
            except wire.WireError as exc:
                raise OperatorUnavailable(
                    f"{operator.value} status: unreadable answer ({exc.message})"
                ) from None
        raise self._failure(operator, "status", status, body)

    # ------------------------------------------------------------------ OperatorDirectory

    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        origin, prefix, keys = self._configured(operator)
        request = wire.encode_listing_request(keys, cursor, self._page_size, now=self._clock(), prefix=prefix)
        status, body = self._send(operator, origin, request, "listing")
        if status == 200:
            try:
                return wire.decode_listing(body, operator)
            except wire.WireError as exc:
                raise OperatorUnavailable(
                    f"{operator.value} listing: unreadable page ({exc.message})"
                ) from None
        raise self._failure(operator, "listing", status, body)
