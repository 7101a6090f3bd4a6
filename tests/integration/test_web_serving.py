"""The web clients' files served by the API: each client under its mount point, the shared files under
/web/common, with the same headers; a file a client does not list is 404 (a request names a file, never
a path)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.api import h5

WEB_CLIENTS = ("h5", "portal", "console")


def test_every_listed_file_of_every_client_exists_and_only_those_are_served(api: Any) -> None:
    for name, web in h5.APPS.items():
        for file in web.files:
            answer = api.http.get(f"/{name}/{file}")
            assert answer.status_code == 200, (name, file)
            assert answer.headers["Content-Type"] == web.files[file]
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["X-Frame-Options"] == "DENY"
            assert answer.headers["Cache-Control"] == "no-cache"
    for file, kind in h5.COMMON_ASSETS.items():
        answer = api.http.get(f"/web/common/{file}")
        assert answer.status_code == 200, file
        assert answer.headers["Content-Type"] == kind
        assert answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("prefix", ["/portal", "/console", "/web/common"])
def test_a_file_not_listed_is_not_found_whatever_the_path_names(api: Any, prefix: str) -> None:
    for name in ("..%2Fapi%2Fh5.py", "..%2F..%2Fapp.py", "missing.js", "index.htm", "..%2Fh5%2Fapp.js"):
        missing = api.http.get(f"{prefix}/{name}")
        assert missing.status_code == 404, name
        assert missing.json_body["code"] == "web.not_found"
        assert missing.json_body["message_zh"] == "页面不存在"


def test_the_portal_page_finds_its_files_wherever_it_is_mounted(api: Any) -> None:
    page = api.http.get("/portal")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "企业门户" in page.body.decode()
    # the portal runs the face check in the browser: its own page may use the camera, nothing else
    assert page.headers["Permissions-Policy"].startswith("camera=(self)")
    assert '<base href="/portal/">' in api.http.get("/portal/").body.decode()
    assert '<base href="/api/portal/">' in str(h5.page("/api/portal", "portal").body)
    assert '<base href="/portal/">' in str(h5.page('/portal"><script>x</script>', "portal").body)
    assert '<base href="/portal/">' in str(h5.page("/api/h5", "portal").body)


def test_the_shared_files_may_not_use_the_camera(api: Any) -> None:
    answer = api.http.get("/web/common/api.js")
    assert answer.headers["Permissions-Policy"].startswith("camera=()")


def test_no_client_fetches_anything_from_elsewhere() -> None:
    for directory in [h5.COMMON_DIR, *(h5.WEB_DIR / name for name in WEB_CLIENTS)]:
        if not directory.exists():
            continue
        for path in sorted(directory.iterdir()):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path


def test_every_script_and_style_sheet_a_page_names_is_served(api: Any) -> None:
    from urllib.parse import urljoin

    for name in h5.APPS:
        page = api.http.get(f"/{name}").body.decode()
        named = re.findall(r'<(?:script[^>]*\bsrc|link[^>]*\bhref)="([^"]+)"', page)
        files = [ref for ref in named if not ref.startswith("data:")]
        assert files, name
        for ref in files:
            path = urljoin(f"/{name}/", ref)
            assert api.http.get(path).status_code == 200, (name, ref, path)
    # the H5 client and the portal share the field-error rendering and the style tokens
    for name in ("h5", "portal"):
        page = api.http.get(f"/{name}").body.decode()
        assert '"../web/common/ui.js"' in page, name
        assert '"../web/common/common.css"' in page, name
