"""The headers every answer carries for the browser (``chalicelib.api.headers``), and pages that keep to
their own Content-Security-Policy: no inline script, style or handler, nothing loaded from elsewhere.

The app runs in-process on an empty embedded AWS (nothing here reads a table)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from chalicelib.api.headers import page_policy

WEB = Path(__file__).resolve().parents[2] / "chalicelib" / "web"
PAGES = ("/", "/h5", "/portal", "/console")
SAFE_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@pytest.fixture(scope="module")
def web() -> Iterator[Any]:
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib.core import deps

    with mock_aws():
        deps.reset()
        with Client(app) as client:
            yield client
    deps.reset()


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


class Inline(HTMLParser):
    """What of a page would run or style inline, and what it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.loads: list[str] = []
        self._in_script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name == "style":
                self.problems.append(f"<{tag} style=…>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            if named.get("src"):
                self.loads.append(str(named["src"]))
                self._in_script = None
            else:
                self._in_script = named.get("type") or "text/javascript"
        if tag == "link" and named.get("rel") == "stylesheet":
            self.loads.append(str(named.get("href")))

    def handle_data(self, data: str) -> None:
        if self._in_script is not None and data.strip() and self._in_script != "application/json":
            self.problems.append(f"inline <script type={self._in_script}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_a_strict_policy_and_the_browser_headers(web: Any, path: str) -> None:
    response = web.http.get(path)
    assert response.status_code == 200
    for name, value in SAFE_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    found = directives(policy)
    assert found["default-src"] == ["'none'"]
    assert found["script-src"] == ["'self'"]
    assert found["style-src"] == ["'self'"]
    assert found["frame-ancestors"] == ["'none'"]
    assert found["object-src"] == ["'none'"]
    assert found["connect-src"][0] == "'self'"
    assert "*" not in " ".join(found["connect-src"])
    assert "no-store" not in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize("path", PAGES)
def test_no_page_runs_or_styles_anything_inline_and_every_file_it_loads_is_served(
    web: Any, path: str
) -> None:
    response = web.http.get(path)
    page = Inline()
    page.feed(response.body.decode("utf-8"))
    assert page.problems == []
    assert page.loads, "a page loads its script from a file"
    base = re.search(r'<base href="([^"]+)"', response.body.decode("utf-8"))
    root = urljoin(path if path.endswith("/") else path + "/", base.group(1) if base else "")
    for src in page.loads:
        assert not re.match(r"^(https?:)?//", src), f"{src} is loaded from elsewhere"
        loaded = web.http.get(urljoin(root, src))
        assert loaded.status_code == 200, src
        assert loaded.headers["X-Content-Type-Options"] == "nosniff"
        assert loaded.headers["Cache-Control"] == "no-cache"  # static files keep their own caching


def test_only_the_pages_that_take_a_face_may_use_the_camera(web: Any) -> None:
    camera = {path: web.http.get(path).headers["Permissions-Policy"] for path in PAGES}
    assert "camera=(self)" in camera["/h5"]
    assert "camera=(self)" in camera["/portal"]
    assert "camera=()" in camera["/console"]
    assert "camera=()" in camera["/"]


def test_the_pages_that_upload_may_post_to_the_documents_bucket_and_no_other_origin(web: Any) -> None:
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    url = client("s3").generate_presigned_post(Bucket=get_settings().documents_bucket, Key="k")["url"]
    origin = re.match(r"^https?://[^/]+", url)
    assert origin is not None
    for path in ("/h5", "/portal"):
        connect = directives(web.http.get(path).headers["Content-Security-Policy"])["connect-src"]
        assert connect == ["'self'", origin.group(0)]
    assert directives(web.http.get("/").headers["Content-Security-Policy"])["connect-src"] == ["'self'"]


def test_the_console_may_call_the_staff_identity_providers_token_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.api import headers
    from chalicelib.core.settings import get_settings

    monkeypatch.setenv("CHEKA_STAFF_OIDC_ISSUER", "https://idp.example.cn/pool")
    get_settings.cache_clear()
    config = {"token_endpoint": "https://login.example.cn/oauth2/token"}
    monkeypatch.setattr(headers, "_sign_in_config", lambda settings: config)
    try:
        connect = directives(page_policy("/console"))["connect-src"]
    finally:
        monkeypatch.delenv("CHEKA_STAFF_OIDC_ISSUER")
        get_settings.cache_clear()
    assert connect == ["'self'", "https://idp.example.cn", "https://login.example.cn"]


def test_api_answers_are_never_stored_and_public_documents_may_be(web: Any, auth: Any) -> None:
    signed = web.http.get("/v1/me", headers=auth("owner"))
    refused = web.http.get("/v1/me")
    unknown = web.http.post(
        "/v1/flows", headers={**auth("admin"), "Content-Type": "application/json"}, body="{}"
    )
    for response in (signed, refused, unknown):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        for name, value in SAFE_HEADERS.items():
            assert response.headers[name] == value
    assert (signed.status_code, refused.status_code, unknown.status_code) == (200, 401, 403)
    for path in ("/openapi.json", "/v1/help", "/v1/account-texts"):
        document = web.http.get(path)
        assert document.status_code == 200
        assert "no-store" not in document.headers.get("Cache-Control", "")
        assert document.headers["X-Content-Type-Options"] == "nosniff"


def test_the_clients_scripts_never_evaluate_text_nor_write_inline_styles_or_handlers() -> None:
    evaluates = re.compile(r"\beval\s*\(|new\s+Function\s*\(|set(Timeout|Interval)\s*\(\s*['\"`]")
    inline = re.compile(r"""<[a-z][^>]*\s(style|on[a-z]+)\s*=""", re.IGNORECASE)
    found = [
        f"{path.relative_to(WEB)}:{n}"
        for path in sorted(WEB.rglob("*.js"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if evaluates.search(line) or inline.search(line) or 'setAttribute("style"' in line
    ]
    assert found == []
