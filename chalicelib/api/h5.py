"""The H5 mobile client (the mini-program's stand-in, SPEC §1): static files under ``/h5``.

The client is plain HTML, CSS and JavaScript in ``chalicelib/web/h5`` (no build step, nothing fetched
from elsewhere at run time). It calls the API on the same origin, so it is served by the same app;
a deployment may put the same files behind a CDN instead. Only the files listed here are served: a
request names a file, never a path.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

from chalice.app import Blueprint, Response

from chalicelib.api.http import Call, route
from chalicelib.kernel.errors import NotFound

bp = Blueprint(__name__)

H5_DIR = Path(__file__).resolve().parent.parent / "web" / "h5"

#: The files the client consists of, with their content types.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The camera is used by this page itself (人脸检测); nothing else may ask for it.
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    # Small files that change with each release: revalidate rather than serve a stale client.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=len(ASSETS))
def _read(name: str) -> str:
    return (H5_DIR / name).read_text(encoding="utf-8")


#: The base the page is written with; it is replaced by where the page is really mounted.
_BASE = '<base href="/h5/">'
_MOUNTED = re.compile(r"^(/[A-Za-z0-9._~-]+)*/h5/?$")


def _asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound("h5.not_found", "页面不存在", "No such file in the H5 client", field="name")
    return Response(body=_read(name), status_code=200, headers={"Content-Type": ASSETS[name], **_HEADERS})


def page(request_path: str | None) -> Response:
    """The page, its base set to where it is mounted: ``/h5/`` locally, ``/<stage>/h5/`` behind API
    Gateway (whose event carries the stage in ``requestContext.path``), with or without the slash."""
    response = _asset("index.html")
    if request_path and _MOUNTED.match(request_path):
        base = request_path.rstrip("/") + "/"
        response.body = str(response.body).replace(_BASE, f'<base href="{html.escape(base)}">', 1)
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
