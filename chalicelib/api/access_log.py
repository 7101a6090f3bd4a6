"""The app's access log: one JSON line per API request, written by the HTTP middleware
(``chalicelib.api.middleware``) after the answer is made.

A line holds the method, the route's *template* (``/v1/vehicles/{vin}``, never the path a caller sent:
paths carry VINs and ICCIDs), the status, the time the app took and the client's source IP — API
Gateway's ``requestContext.identity.sourceIp``, as Chalice gives it in ``Request.context`` — always
**truncated**: an IP address is personal information under PIPL (个人信息保护法), so the log keeps only its
network, never the address itself. IPv4 keeps its first three octets (the last is zeroed:
``203.0.113.77`` → ``203.0.113.0``), IPv6 its first 48 bits (``2001:db8:abcd:12::7`` →
``2001:db8:abcd::``); an IPv4 address mapped into IPv6 is truncated as IPv4. A source that is not an IP
address is logged as ``invalid``, none as ``unknown``: the raw text is never logged. The line's
correlation id is the one the middleware put on every log line of the request.

API Gateway's own access log (``infra.gateway``) has no IP at all, since the gateway can neither hash
nor truncate one; this line is where the platform tells which network a request came from.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from chalicelib.core.observability import logger, report_logging_failure

if TYPE_CHECKING:
    from chalice.app import Request, Response

#: The access line's message (its fields are extras of the JSON line).
MESSAGE = "request"
#: Bits of an address the log keeps (module docstring).
IPV4_PREFIX = 24
IPV6_PREFIX = 48


def truncated_ip(source: object) -> str:
    """``source`` cut to its network, in the address's own notation (module docstring): the last octet
    of an IPv4 address zeroed, an IPv6 address kept to /48; ``unknown`` without one, ``invalid`` when it
    is not an IP address."""
    if not isinstance(source, str) or not source.strip():
        return "unknown"
    try:
        address = ipaddress.ip_address(source.strip())
    except ValueError:
        return "invalid"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def source_ip(request: Request) -> object:
    """The raw ``identity.sourceIp`` of ``request``'s context (None when the gateway gave none): never
    logged as it is (``truncated_ip``), only counted as a keyed hash (``clients.client_ip``)."""
    return _source_ip(_context(request))


def _context(request: Request) -> dict[str, Any]:
    """``request``'s API Gateway context, empty when it has none."""
    context: Any = request.context
    return context if isinstance(context, dict) else {}


def _source_ip(context: dict[str, Any]) -> object:
    """``context``'s raw ``identity.sourceIp`` (None without one)."""
    identity = context.get("identity")
    return identity.get("sourceIp") if isinstance(identity, dict) else None


def log_access(request: Request, response: Response, elapsed_ms: float) -> None:
    """Write the access line of ``request`` answered by ``response``; logging that fails never fails the
    request (the failure is reported instead)."""
    try:
        context = _context(request)
        logger.info(
            MESSAGE,
            extra={
                "method": request.method,
                "route": str(context.get("resourcePath") or "unknown"),
                "status": response.status_code,
                "latency_ms": round(elapsed_ms, 1),
                "client_ip": truncated_ip(_source_ip(context)),
            },
        )
    except Exception as exc:
        report_logging_failure("access not logged", exc)
