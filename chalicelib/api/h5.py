"""The web clients, served as static files by the API itself (SPEC §1).

Each client is plain HTML, CSS and JavaScript under ``chalicelib/web/<app>/`` (no build step, nothing
fetched from elsewhere at run time); it calls the API on the same origin, so it is served by the same
app (a deployment may put the same files behind a CDN instead):

- ``/h5``: the owner's mobile client (the mini-program's stand-in: 个人用户业务);
- ``/portal``: the enterprise portal (企业门户: accounts, real-name authentication, agents);
- ``/console``: the car maker's console (staff sign-in);
- ``/web/common/{name}``: files shared by the clients (the API client, field errors, the SMS-code
  button, the style tokens). A page loads them as ``../web/common/<name>``, which resolves beside its
  own mount point wherever that is.

Only the files listed here are served: a request names a file, never a path.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chalice.app import Response

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.kernel.errors import NotFound

bp = Blueprint(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
H5_DIR = WEB_DIR / "h5"
COMMON_DIR = WEB_DIR / "common"

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"

#: The camera is used by the pages that run the face check themselves; nothing else may ask for it.
_CAMERA = "camera=(self), microphone=(), geolocation=()"
_NO_CAMERA = "camera=(), microphone=(), geolocation=()"


@dataclass(frozen=True)
class WebApp:
    """One client: its mount point (``/<name>``), its files with their content types, whether its page
    may use the camera, and the error code of a file it does not have."""

    name: str
    files: dict[str, str]
    camera: bool
    not_found: str = "web.not_found"
    title_en: str = ""


#: The files the H5 client consists of, with their content types.
ASSETS: dict[str, str] = {
    "index.html": HTML,
    "app.js": JS,
    "style.css": CSS,
}

#: The enterprise portal's files.
PORTAL_ASSETS: dict[str, str] = {
    "index.html": HTML,
    "portal.js": JS,
    "fleet.js": JS,
    "portal.css": CSS,
}

#: The console's files (the console's pages add theirs here).
CONSOLE_ASSETS: dict[str, str] = {
    "index.html": HTML,
    "console.js": JS,
    "console.css": CSS,
    "labels.js": JS,
    "queues.js": JS,
    "cases.js": JS,
    "campaigns.js": JS,
}

#: The shared files under ``/web/common/``.
COMMON_ASSETS: dict[str, str] = {
    "api.js": JS,
    "ui.js": JS,
    "photos.js": JS,
    "face.js": JS,
    "common.css": CSS,
    "landing.js": JS,
    "landing.css": CSS,
}

APPS: dict[str, WebApp] = {
    "h5": WebApp("h5", ASSETS, camera=True, not_found="h5.not_found", title_en="the H5 client"),
    "portal": WebApp("portal", PORTAL_ASSETS, camera=True, title_en="the enterprise portal"),
    "console": WebApp("console", CONSOLE_ASSETS, camera=False, title_en="the console"),
}

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files that change with each release: revalidate rather than serve a stale client.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=64)
def _read(directory: Path, name: str) -> str:
    return (directory / name).read_text(encoding="utf-8")


def _serve(
    directory: Path, files: dict[str, str], name: str, not_found: str, what: str, camera: bool
) -> Response:
    if name not in files:
        raise NotFound(not_found, "页面不存在", f"No such file in {what}", field="name")
    headers: dict[str, str | list[str]] = {
        "Content-Type": files[name],
        **_HEADERS,
        "Permissions-Policy": _CAMERA if camera else _NO_CAMERA,
    }
    try:
        body = _read(directory, name)
    except FileNotFoundError:  # listed before its file lands (a client's pages being written)
        raise NotFound(not_found, "页面不存在", f"No such file in {what}", field="name") from None
    return Response(body=body, status_code=200, headers=headers)


def asset(app: str, name: str) -> Response:
    """One file of a client (404 for a file it does not list)."""
    web = APPS[app]
    return _serve(WEB_DIR / web.name, web.files, name, web.not_found, web.title_en, web.camera)


def common_asset(name: str) -> Response:
    """One shared file (404 for a file not listed)."""
    return _serve(COMMON_DIR, COMMON_ASSETS, name, "web.not_found", "the shared web files", camera=False)


def _asset(name: str) -> Response:
    return asset("h5", name)


@lru_cache(maxsize=len(APPS))
def _mounted(app: str) -> re.Pattern[str]:
    return re.compile(rf"^(/[A-Za-z0-9._~-]+)*/{re.escape(app)}/?$")


def page(request_path: str | None, app: str = "h5") -> Response:
    """A client's page, its base set to where it is mounted: ``/<app>/`` locally, ``/<stage>/<app>/``
    behind API Gateway (whose event carries the stage in ``requestContext.path``), with or without the
    slash. The page is written with ``<base href="/<app>/">``."""
    response = asset(app, "index.html")
    if request_path and _mounted(app).match(request_path):
        base = request_path.rstrip("/") + "/"
        response.body = str(response.body).replace(
            f'<base href="/{app}/">', f'<base href="{html.escape(base)}">', 1
        )
    return response


@route(
    bp,
    "/h5",
    summary="The H5 mobile client: registration, de-registration and my vehicles (个人用户业务)",
    roles=None,
    tags=("h5",),
    produces="text/html",
)
def h5_index(call: Call) -> Response:
    return page(call.request.context.get("path"))


@route(
    bp,
    "/h5/{name}",
    summary="One file of the H5 mobile client (script, style sheet)",
    roles=None,
    errors=(404,),
    tags=("h5",),
    produces="text/*",
)
def h5_asset(call: Call, name: str) -> Response:
    return _asset(name)


@route(
    bp,
    "/portal",
    summary="The enterprise portal: accounts, real-name authentication, agents, sessions (单位用户业务)",
    roles=None,
    tags=("web",),
    produces="text/html",
)
def portal_index(call: Call) -> Response:
    return page(call.request.context.get("path"), "portal")


@route(
    bp,
    "/portal/{name}",
    summary="One file of the enterprise portal (script, style sheet)",
    roles=None,
    errors=(404,),
    tags=("web",),
    produces="text/*",
)
def portal_asset(call: Call, name: str) -> Response:
    return asset("portal", name)


@route(
    bp,
    "/console",
    summary="The car maker's console: staff sign-in and their pages",
    roles=None,
    tags=("web",),
    produces="text/html",
)
def console_index(call: Call) -> Response:
    return page(call.request.context.get("path"), "console")


@route(
    bp,
    "/console/{name}",
    summary="One file of the console (script, style sheet)",
    roles=None,
    errors=(404,),
    tags=("web",),
    produces="text/*",
)
def console_asset(call: Call, name: str) -> Response:
    return asset("console", name)


@route(
    bp,
    "/web/common/{name}",
    summary="A file shared by the web clients (API client, form helpers, style tokens)",
    roles=None,
    errors=(404,),
    tags=("web",),
    produces="text/*",
)
def common_file(call: Call, name: str) -> Response:
    return common_asset(name)
