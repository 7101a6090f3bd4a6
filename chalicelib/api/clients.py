"""Who is calling, for the limits on asks (SMS codes, captchas): the client's IP and its device.

The IP is API Gateway's ``requestContext.identity.sourceIp`` (the local gateway sets the loopback
peer); the device is the ``X-Device-Id`` header a client keeps (the H5 page: a random id in
localStorage). Neither is trusted for anything but counting; both are kept only as keyed hashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from chalice.app import Request

from chalicelib.api.access_log import source_ip
from chalicelib.core import deps

if TYPE_CHECKING:
    from chalicelib.sms.limits import SendOrigin

DEVICE_HEADER = "x-device-id"
#: A captcha answer may come in the body (``captcha_id``, ``captcha_answer``) or, for routes without
#: one, in these headers.
CAPTCHA_ID_HEADER = "x-captcha-id"
CAPTCHA_ANSWER_HEADER = "x-captcha-answer"
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def client_ip(request: Request) -> str:
    """The caller's source IP as API Gateway saw it (``access_log.source_ip``), "unknown" when the gateway
    gave none."""
    return str(ip) if (ip := source_ip(request)) else "unknown"


def device_id(request: Request) -> str | None:
    """The ``X-Device-Id`` header when it is 8–64 characters of ``[A-Za-z0-9_-]``, else None."""
    value = _header(request, DEVICE_HEADER)
    if value is None or not _DEVICE_ID.fullmatch(value):
        return None
    return value


def _header(request: Request, name: str) -> str | None:
    headers: Any = request.headers
    value = headers.get(name) if headers is not None else None
    return str(value) if value is not None else None


def send_origin(
    request: Request,
    caller: str | None = None,
    captcha_id: str | None = None,
    captcha_answer: str | None = None,
) -> SendOrigin:
    """Who asks for a code in ``request``: IP and device as keyed hashes, the caller, a captcha answer."""
    from chalicelib.sms.limits import SendOrigin  # the limits' rules: not at a cold start

    hasher = deps.keyed_hasher()
    device = device_id(request)
    captcha_id = captcha_id or _header(request, CAPTCHA_ID_HEADER)
    captcha_answer = captcha_answer or _header(request, CAPTCHA_ANSWER_HEADER)
    return SendOrigin(
        ip_hash=hasher.digest(f"client-ip:{client_ip(request)}"),
        device_hash=hasher.digest(f"device:{device}") if device else None,
        caller=caller,
        captcha_id=captcha_id,
        captcha_answer=captcha_answer,
    )


@contextmanager
def asking_for_codes(
    request: Request,
    caller: str | None = None,
    captcha_id: str | None = None,
    captcha_answer: str | None = None,
) -> Iterator[None]:
    """The block sends codes on behalf of the client of ``request``: its limits and captcha are
    checked first (``sms.too_many_from_client``, ``captcha.required``, ``captcha.wrong``), before
    anything tells whether an account or a registration exists."""
    from chalicelib.sms.codes import asking_as  # the SMS service: not at a cold start

    origin = deps.sms_code_service().admit(send_origin(request, caller, captcha_id, captcha_answer))
    with asking_as(origin):
        yield
