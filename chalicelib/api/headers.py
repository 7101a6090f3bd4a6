"""The headers every response carries for the browser: what a page may load and run, that it is never
framed, that the connection stays on HTTPS, and that the API's answers are never cached.

Every HTML page gets a strict Content-Security-Policy: scripts, styles, fonts and the manifest from the
page's own origin only (no inline script or style, no ``eval``: the pages keep theirs in files), images
and media also from ``data:`` and ``blob:`` (the photos scaled in the page, the face check's canvas), and
connections to the origin itself plus what a page truly talks to — the documents bucket, where the H5
client and the portal send photos by presigned POST, and the staff identity provider, whose token
endpoint the console calls. ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` keep every page out
of frames; ``base-uri 'self'`` lets a page set its own ``<base>`` (its mount point behind API Gateway).

Every response gets HSTS, ``nosniff`` and ``Referrer-Policy: no-referrer`` (an H5 address may carry a
dealer's hand-off code). Every JSON or CSV answer gets ``Cache-Control: no-store``: most carry personal
data, and the few public documents that may be cached are listed in ``CACHEABLE``. The clients' static
files keep their own caching (``chalicelib.api.h5``).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from chalice.app import Request, Response

    from chalicelib.core.settings import Settings

HSTS = "max-age=63072000; includeSubDomains"
#: No page may use these unless it says so itself (the pages running the face check allow the camera).
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

#: The directives of every page's policy except ``connect-src``, which depends on the page.
_PAGE_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    "manifest-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
)
#: What an answer that is not a page may do if a browser renders it anyway: nothing.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

#: Every response, whatever made it (infra may give API Gateway's own answers the same; their bodies are
#: errors, so ``Cache-Control: no-store`` and the data policy fit them too).
EVERY_RESPONSE = {
    "Strict-Transport-Security": HSTS,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": PERMISSIONS,
}
#: What API Gateway's own answers (4xx/5xx made by the gateway) would carry: ``EVERY_RESPONSE`` and what
#: every JSON answer carries.
GATEWAY_RESPONSE = {**EVERY_RESPONSE, "Content-Security-Policy": DATA_POLICY, "Cache-Control": "no-store"}

#: Public documents without personal data that a browser or proxy may cache (route paths).
CACHEABLE = frozenset({"/openapi.json", "/v1/consents", "/v1/account-texts", "/v1/help"})

#: The pages that upload photos straight to the documents bucket.
_UPLOADING_PAGES = ("/h5", "/portal")
_CONSOLE = "/console"


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of ``url``, or None when it has none."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


@cache
def _bucket_origin(bucket: str, region: str, endpoint: str | None) -> str | None:
    """The origin a presigned POST to ``bucket`` goes to (botocore decides the addressing style; signing
    a form is local, no call is made)."""
    from chalicelib.core.aws import client

    post = client("s3").generate_presigned_post(Bucket=bucket, Key="csp")
    return _origin(str(post.get("url")))


def _documents_origin() -> str | None:
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    try:
        return _bucket_origin(settings.documents_bucket, settings.region, settings.endpoint_url)
    except Exception:  # no credentials to sign with: the page still opens, uploads then fail visibly
        return None


def _sign_in_config(settings: Settings) -> dict[str, Any]:
    """The endpoints the console signs staff in with (the provider's discovery, fetched once)."""
    from chalicelib.core import oidc

    try:
        return oidc.verifier(settings).sign_in_config()
    except Exception:  # the provider is down: the console says so when it starts sign-in
        return {}


def _identity_provider_origins() -> list[str]:
    """The staff identity provider's origins the console calls (its issuer, its token endpoint)."""
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    if not settings.staff_oidc_issuer:
        return []
    token_endpoint = _sign_in_config(settings).get("token_endpoint")
    origins = (
        _origin(settings.staff_oidc_issuer),
        _origin(token_endpoint if isinstance(token_endpoint, str) else None),
    )
    return [o for o in dict.fromkeys(origins) if o]


def page_policy(route_path: str) -> str:
    """The Content-Security-Policy of the page served at ``route_path``."""
    connect = ["'self'"]
    if route_path.startswith(_UPLOADING_PAGES):
        connect.append(_documents_origin() or "")
    if route_path.startswith(_CONSOLE):
        connect += _identity_provider_origins()
    sources = " ".join(dict.fromkeys(c for c in connect if c))
    return "; ".join((*_PAGE_DIRECTIVES, f"connect-src {sources}"))


def route_path(request: Request) -> str:
    """The path of the route that answered (``/v1/flows/{flow_id}``), else the request's own path."""
    context = request.context if isinstance(request.context, dict) else {}
    declared = context.get("resourcePath")
    if isinstance(declared, str) and declared:
        return declared
    return str(getattr(request, "path", "") or "")


def _content_type(response: Response) -> str:
    for name, value in response.headers.items():
        if name.lower() == "content-type":
            return str(value).lower()
    return "" if isinstance(response.body, str | bytes) else "application/json"


def _set_default(response: Response, name: str, value: str) -> None:
    if not any(existing.lower() == name.lower() for existing in response.headers):
        response.headers[name] = value


def secure(response: Response, request: Request) -> Response:
    """``response`` with the browser-facing headers above (headers a route set itself are kept)."""
    path = route_path(request)
    content_type = _content_type(response)
    for name, value in EVERY_RESPONSE.items():
        _set_default(response, name, value)
    if content_type.startswith("text/html"):
        response.headers["Content-Security-Policy"] = page_policy(path)
        _set_default(response, "Cross-Origin-Opener-Policy", "same-origin")
        return response
    _set_default(response, "Content-Security-Policy", DATA_POLICY)
    answers_data = content_type.startswith(("application/json", "text/csv")) or "json" in content_type
    if answers_data and path not in CACHEABLE:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response
