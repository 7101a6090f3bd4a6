"""The operator gateway over HTTPS: signs, POSTs, and classifies the answer for the dispatcher.

Classification (the dispatcher retries the first, dead-letters the second at once):

- ``OperatorUnavailable``: timeout, connection refused/reset, TLS failure, 408/425/429, any 5xx, a 2xx
  whose body cannot be read (the push may have landed: a retry is safe, the push is idempotent), no
  keys for the operator yet;
- ``OperatorRefused(code)``: any other 4xx (the operator's ``code``, e.g. ``bad_signature``,
  ``malformed``, ``wrong_operator``), a redirect (never followed: a push is not replayed elsewhere),
  an operator that has no base URL configured.

Only the standard library's ``urllib`` is used (no new dependency in the Lambda package). Proxies from
the environment are ignored: operators are reached over their dedicated lines, not a generic proxy.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.operators import Operator
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    OperatorCardRecord,
    OperatorRefused,
    OperatorUnavailable,
    PushMessage,
    PushReceipt,
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
    ) -> None:
        """``on_result(operator, operation, status or None, seconds)`` is told of every request (metrics)."""
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
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    # ------------------------------------------------------------------ plumbing

    def _base(self, operator: Operator) -> tuple[str, str]:
        """``(origin, path prefix)`` of the operator's base URL."""
        url = self._base_urls.get(operator)
        if url is None:
            raise OperatorRefused("operator_not_configured", f"no base URL for {operator.value}")
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")

    def _current_keys(self, operator: Operator) -> OperatorKeys:
        try:
            return self._keys.current(operator)
        except OperatorKeysUnavailable as exc:
            raise OperatorUnavailable(f"{operator.value}: {exc}") from None

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
        origin, prefix = self._base(operator)
        keys = self._current_keys(operator)
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

    # ------------------------------------------------------------------ OperatorDirectory

    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        origin, prefix = self._base(operator)
        keys = self._current_keys(operator)
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
