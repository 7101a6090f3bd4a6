"""The in-service feed's upload through the HTTP API (``POST /v1/inventory/in-service``), against the
embedded AWS (moto): who may upload, the report, and a bad file refused with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.kernel.operators import Operator
from tests.integration.test_lifecycle import import_cards

Auth = Callable[..., dict[str, str]]
CSV = {"Content-Type": "text/csv"}
URL = "/v1/inventory/in-service"


def body(resp: Any) -> Any:
    return json.loads(resp.body)


@pytest.fixture
def iccid(aws: None) -> str:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=51)
    return card.iccid


def marked(iccid: str) -> bool:
    card = deps.inventory_repo().get_card(iccid)
    return card is not None and card.in_service_since is not None


@pytest.mark.parametrize("role", ["admin", "operations"])
def test_admins_and_operations_upload_the_feed_as_csv_or_json(
    api: Any, auth: Auth, iccid: str, role: str
) -> None:
    text = f"iccid,in_service_since,contact_phone\n{iccid},2025-05-01,13800138000\n"
    resp = api.http.post(URL, headers=auth(role, **CSV), body=text)
    assert resp.status_code == 200, resp.body
    assert body(resp) == {
        "rows": 1,
        "cards_marked": 1,
        "cards_updated": 0,
        "cards_unchanged": 0,
        "rejected_rows": 0,
        "errors": [],
    }
    assert "13800138000" not in resp.body.decode()
    doc = json.dumps([{"iccid": iccid, "in_service_since": "2025-05-01"}])
    again = api.http.post(f"{URL}?format=json", headers=auth(role, **CSV), body=doc)
    assert (again.status_code, body(again)["cards_unchanged"]) == (200, 1)
    assert deps.backfill_targets().current([iccid])[iccid] is not None
    assert marked(iccid)


@pytest.mark.parametrize(
    ("roles", "status", "code"),
    [
        ((), 401, "auth.missing"),
        (("reviewer",), 403, "auth.forbidden"),
        (("auditor",), 403, "auth.forbidden"),
        (("dealer",), 403, "auth.forbidden"),
    ],
)
def test_other_roles_cannot_upload(
    api: Any, auth: Auth, iccid: str, roles: tuple[str, ...], status: int, code: str
) -> None:
    headers = auth(*roles, **CSV) if roles else CSV
    resp = api.http.post(URL, headers=headers, body=f"iccid,in_service_since\n{iccid},2025-05-01\n")
    assert (resp.status_code, body(resp)["code"]) == (status, code)
    assert not marked(iccid)


@pytest.mark.parametrize(
    ("text", "query", "status", "code"),
    [
        ("iccid,in_service_since,hue\n{iccid},2025-05-01,白\n", "", 400, "import.unknown_column"),
        ("iccid\n{iccid}\n", "", 400, "import.missing_column"),
        ("in_service_since\n2025-05-01\n", "", 400, "in_service.card_column"),
        ('{{"iccid": "{iccid}"}}', "?format=json", 400, "import.json_shape"),
        ("iccid,in_service_since\n{iccid},2025-05-01\n", "?format=xml", 400, "import.format"),
        ("", "", 400, "request.empty"),
    ],
)
def test_a_bad_file_is_refused_whole_and_writes_nothing(
    api: Any, auth: Auth, iccid: str, text: str, query: str, status: int, code: str
) -> None:
    resp = api.http.post(URL + query, headers=auth("admin", **CSV), body=text.format(iccid=iccid))
    assert (resp.status_code, body(resp)["code"]) == (status, code)
    assert not marked(iccid)


def test_more_rows_than_the_import_limit_is_413(
    api: Any, auth: Auth, iccid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "__dict__", {**get_settings().__dict__, "max_import_rows": 1})
    text = f"iccid,in_service_since\n{iccid},2025-05-01\n{iccid},2025-05-02\n"
    resp = api.http.post(URL, headers=auth("operations", **CSV), body=text)
    assert (resp.status_code, body(resp)["code"]) == (413, "import.too_many_rows")
    assert not marked(iccid)


def test_a_bad_row_is_reported_with_its_field_and_nothing_of_it_is_written(
    api: Any, auth: Auth, iccid: str
) -> None:
    text = f"iccid,in_service_since,contact_phone\n{iccid},2025-05-01,12345\n"
    resp = api.http.post(URL, headers=auth("admin", **CSV), body=text)
    report = body(resp)
    assert resp.status_code == 200
    assert report["rejected_rows"] == 1
    assert report["errors"][0]["row"] == 2
    assert report["errors"][0]["field"] == "contact_phone"
    assert report["errors"][0]["code"] == "mobile.format"
    assert report["errors"][0]["message_zh"]
    assert not marked(iccid)
