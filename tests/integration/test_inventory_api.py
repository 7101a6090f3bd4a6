"""Inventory through the HTTP API, against the embedded AWS (moto) and the real pynamodb repositories."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.core import deps
from chalicelib.kernel.personal import IdType, Party
from chalicelib.local.synthetic import inventory_csv
from tests.fakes.cards import put_card_state

CSV = {"Content-Type": "text/csv"}
HEADER = "vin,engine_no,brand,model,colour,production_date,dealer_code,iccid,msisdn\n"
GOOD = "LSVAU218XN2183294,E12345678,启航,QH-5,白,2025-03-01,D100,89860112345678901237,1460012345678\n"
BAD_VIN = "LSVAU2181N2183294,E12345678,启航,QH-5,白,2025-03-01,D100,89860112345678901245,1460012345679\n"

Auth = Callable[..., dict[str, str]]


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def test_admin_imports_csv_and_reimport_changes_nothing(api: Any, auth: Auth) -> None:
    # Given a CSV of 30 vehicles
    text = inventory_csv(30, seed=11)
    # When an admin imports it twice
    first = api.http.post("/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=text)
    second = api.http.post("/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=text)
    # Then the first creates everything and the second changes nothing
    assert first.status_code == 200, first.body
    assert body(first)["cards_created"] == 30
    assert body(second)["cards_created"] == 0
    assert body(second)["cards_unchanged"] == 30


def test_row_errors_are_reported_and_valid_rows_imported(api: Any, auth: Auth) -> None:
    resp = api.http.post(
        "/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=HEADER + GOOD + BAD_VIN
    )
    report = body(resp)
    assert resp.status_code == 200
    assert report["cards_created"] == 1
    assert report["errors"] == [
        {
            "row": 3,
            "field": "vin",
            "code": "vin.check_digit",
            "message_zh": report["errors"][0]["message_zh"],
            "message_en": report["errors"][0]["message_en"],
        }
    ]
    assert deps.inventory_repo().get_card("89860112345678901245") is None


def test_json_import(api: Any, auth: Auth) -> None:
    rows = [dict(zip(HEADER.strip().split(","), GOOD.strip().split(","), strict=True))]
    resp = api.http.post(
        "/v1/admin/inventory/imports",
        headers=auth("admin", **{"Content-Type": "application/json"}),
        body=json.dumps(rows, ensure_ascii=False),
    )
    assert body(resp)["cards_created"] == 1


@pytest.mark.parametrize(
    ("roles", "status", "code"),
    [((), 401, "auth.missing"), (("dealer",), 403, "auth.forbidden"), (("owner",), 403, "auth.forbidden")],
)
def test_only_admins_import(api: Any, auth: Auth, roles: tuple[str, ...], status: int, code: str) -> None:
    headers = auth(*roles, **CSV) if roles else CSV
    resp = api.http.post("/v1/admin/inventory/imports", headers=headers, body=HEADER + GOOD)
    assert (resp.status_code, body(resp)["code"]) == (status, code)
    assert deps.inventory_repo().get_vehicle("LSVAU218XN2183294") is None


def test_a_bad_file_writes_nothing(api: Any, auth: Auth) -> None:
    resp = api.http.post(
        "/v1/admin/inventory/imports",
        headers=auth("admin", **CSV),
        body=HEADER.replace("colour", "hue") + GOOD,
    )
    assert resp.status_code == 400
    assert body(resp)["code"] == "import.unknown_column"
    assert body(resp)["field"] == "hue"
    assert deps.inventory_repo().get_vehicle("LSVAU218XN2183294") is None


def test_too_large_body_is_413(api: Any, auth: Auth, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "__dict__", {**get_settings().__dict__, "max_body_bytes": 100})
    resp = api.http.post("/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=HEADER + GOOD)
    assert (resp.status_code, body(resp)["code"]) == (413, "request.too_large")


def _registered_vehicle() -> tuple[str, Party]:
    repo, parties = deps.inventory_repo(), deps.party_repo()
    from chalicelib.cards.inventory import import_inventory, parse_inventory

    import_inventory(parse_inventory(HEADER + GOOD, "csv", max_rows=10), repo, actor="t")
    person = Party(
        id_type=IdType.RESIDENT_ID,
        id_number="11010519491231002X",
        name="张三丰",
        address="北京市朝阳区建国路 88 号",
        phone="13812341234",
    )
    parties.put(person)
    put_card_state(repo, "89860112345678901237", CardState.PENDING, actor="t", holder_id=person.party_id)
    put_card_state(repo, "89860112345678901237", CardState.REGISTERED, actor="t")
    return "LSVAU218XN2183294", person


def test_vehicle_by_vin_masks_the_holder(api: Any, auth: Auth) -> None:
    vin, _ = _registered_vehicle()
    resp = api.http.get(f"/v1/vehicles/{vin}", headers=auth("admin"))
    assert resp.status_code == 200
    view = body(resp)
    assert (view["brand"], view["colour"]) == ("启航", "白")
    [card] = view["cards"]
    assert card["state"] == "registered"
    assert card["holder"]["id_number"] == "1101**********002X"
    assert card["holder"]["phone"] == "138****1234"
    assert card["holder"]["name"] == "张**"
    assert card["holder"]["masked"] is True
    assert "11010519491231002X" not in resp.body.decode()


def test_reviewer_sees_personal_data_in_clear_dealer_sees_masked_msisdn(api: Any, auth: Auth) -> None:
    vin, person = _registered_vehicle()
    # (with a reason: every read in clear is recorded, tests/integration/test_read_log.py)
    reviewer = body(api.http.get(f"/v1/vehicles/{vin}?reason=check-holder", headers=auth("reviewer")))
    assert reviewer["cards"][0]["holder"]["id_number"] == person.id_number
    from tests.integration.test_dealers_api import dealer_headers

    dealer = body(api.http.get(f"/v1/vehicles/{vin}", headers=dealer_headers("D100")))
    assert dealer["cards"][0]["msisdn"] == "146******5678"


def test_card_lookups_by_iccid_msisdn_and_history(api: Any, auth: Auth) -> None:
    _registered_vehicle()
    by_iccid = body(api.http.get("/v1/cards/89860112345678901237", headers=auth("auditor")))
    by_msisdn = body(api.http.get("/v1/cards?msisdn=1460012345678", headers=auth("auditor")))
    assert by_iccid == by_msisdn
    assert by_iccid["operator"] == "china_unicom"
    history = body(api.http.get("/v1/cards/89860112345678901237/history", headers=auth("auditor")))
    assert [e["event"] for e in history["events"]] == ["imported", "transition", "transition"]
    assert [e["to_state"] for e in history["events"]] == ["unregistered", "pending", "registered"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/vehicles/LFV2A21KXF3043455", 404, "vehicle.not_found"),
        ("/v1/vehicles/LSVAU2181N2183294", 422, "vin.check_digit"),
        ("/v1/cards/89860112345678901245", 404, "card.not_found"),
        ("/v1/cards/12345", 422, None),
        ("/v1/cards", 400, "msisdn.required"),
        ("/v1/cards?msisdn=1460099999999", 404, "card.not_found"),
    ],
)
def test_lookup_errors(api: Any, auth: Auth, path: str, status: int, code: str | None) -> None:
    resp = api.http.get(path, headers=auth("admin"))
    err = body(resp)
    assert resp.status_code == status
    assert err["message_zh"]
    assert err["message_en"]
    if code:
        assert err["code"] == code


def test_owner_cannot_look_up_inventory(api: Any, auth: Auth) -> None:
    vin, _ = _registered_vehicle()
    resp = api.http.get(f"/v1/vehicles/{vin}", headers=auth("owner"))
    assert resp.status_code == 403
    assert "张" not in resp.body.decode()
