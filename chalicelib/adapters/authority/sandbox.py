"""The sandbox identity authority over HTTP (``chalicelib.local.sandbox_authority``).

Each call has a timeout and is retried with backoff after a timeout, a dropped connection or a 5xx;
when the tries are used up the answer is ``UNAVAILABLE`` (never a pass, never an exception). A 4xx is
a request the service refused: also ``UNAVAILABLE``, logged with its status (a programming error).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date
from http.client import HTTPException
from typing import Any, ClassVar

from chalicelib.core.observability import logger
from chalicelib.verification.domain.authority import AuthorityAnswer, AuthorityResult
from chalicelib.verification.ports import IdentityAuthority

_RESULTS = {r.value: r for r in (AuthorityResult.MATCH, AuthorityResult.NO_MATCH, AuthorityResult.NOT_FOUND)}
DEFAULT_VERSION = "cheka-sandbox-authority"


class SandboxIdentityAuthority(IdentityAuthority):
    name: ClassVar[str] = "sandbox"
    supports_portrait: ClassVar[bool] = True
    supports_phone_holder: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 3.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._retries = retries
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._version = DEFAULT_VERSION
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def version(self) -> str:
        return self._version

    def verify_identity(
        self, name: str, id_type: str, id_number: str, valid_until: date | None = None
    ) -> AuthorityAnswer:
        body: dict[str, Any] = {"name": name, "id_type": id_type, "id_number": id_number}
        if valid_until is not None:
            body["valid_until"] = valid_until.isoformat()
        return self._ask("/v1/identity/verify", body)

    def compare_portrait(self, name: str, id_number: str, live_jpeg: bytes) -> AuthorityAnswer:
        body = {"name": name, "id_number": id_number, "live_jpeg": base64.b64encode(live_jpeg).decode()}
        return self._ask("/v1/portrait/compare", body)

    def verify_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> AuthorityAnswer:
        body = {"name": name, "id_type": id_type, "id_number": id_number, "phone": phone}
        return self._ask("/v1/phone/verify", body)

    def _ask(self, path: str, body: dict[str, Any]) -> AuthorityAnswer:
        data = json.dumps(body).encode()
        retry_after: int | None = None
        cause = "unknown"
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(  # noqa: S310 - the configured http(s) base URL
                self._base + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with self._opener.open(request, timeout=self._timeout) as resp:
                    doc = json.loads(resp.read())
            except urllib.error.HTTPError as err:
                cause = f"http_{err.code}"
                header = err.headers.get("Retry-After") if err.headers else None
                retry_after = int(header) if header and header.isdigit() else retry_after
                if err.code < 500:
                    logger.warning("identity authority refused a request", extra={"status": err.code})
                    break
                continue
            except (TimeoutError, OSError, HTTPException, ValueError) as err:
                cause = type(err).__name__
                continue
            self._version = str(doc.get("version") or self._version)
            result = _RESULTS.get(str(doc.get("result")))
            if result is None:
                cause = "bad_answer"
                continue
            similarity = doc.get("similarity")
            return AuthorityAnswer(
                result=result,
                provider=self.name,
                provider_version=self._version,
                reference=doc.get("reference"),
                similarity=float(similarity) if similarity is not None else None,
                provider_code=doc.get("code"),
            )
        logger.warning("identity authority unavailable", extra={"cause": cause})
        return AuthorityAnswer(
            result=AuthorityResult.UNAVAILABLE,
            provider=self.name,
            provider_version=self._version,
            provider_code=cause,
            retry_after=retry_after,
        )

    def register_citizen(
        self,
        name: str,
        id_number: str,
        portrait: bytes | None = None,
        valid_until: date | None = None,
        phone: str | None = None,
    ) -> None:
        """Add a synthetic citizen (the sandbox's admin endpoint, loopback only); ``phone``: the mobile
        number a carrier holds in their name (the phone-holder check answers ``not_found`` without)."""
        body: dict[str, Any] = {"name": name, "id_number": id_number}
        if phone is not None:
            body["phone"] = phone
        if portrait is not None:
            body["portrait"] = base64.b64encode(portrait).decode()
        if valid_until is not None:
            body["valid_until"] = valid_until.isoformat()
        request = urllib.request.Request(  # noqa: S310 - the configured http(s) base URL
            self._base + "/_sandbox/citizens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with self._opener.open(request, timeout=max(self._timeout, 10.0)) as resp:
            resp.read()
