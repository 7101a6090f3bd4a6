"""Possession of the car through the API, on the embedded AWS with the real local engines: the sales
record's phone (imported with the inventory), the head-unit code of the sandbox telematics, a synthetic
行驶证 read by OCR; the contest of a car held by someone else; and the same answer for any VIN to a
caller who has not shown possession."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.local.synthetic import inventory_rows, make_vin
from chalicelib.verification.domain.documents import DocumentKind
from tests.fakes.cards import put_card_state
from tests.integration.test_registration_flow import (
    OTHER,
    OWNER,
    PHONE,
    REG,
    head_unit_code,
    sms_code,
)
from tests.integration.test_verification_api import call, upload
from tests.synthetic_documents import require_cjk_font, vehicle_licence

#: A phone that is no vehicle's sales record phone.
OTHER_PHONE = "13700001111"
CSV = {"Content-Type": "text/csv"}

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def person(token: Callable[..., str]) -> Headers:
    def headers(subject: str = OWNER) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token('owner', subject=subject)}",
            "Content-Type": "application/json",
        }

    return headers


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Four vehicles; the first two with ``PHONE`` as their sales record's contact phone."""
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    monkeypatch.setenv("CHEKA_HEAD_UNIT_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(4, seed=31))
    for row in rows[:2]:
        row["owner_phone"] = PHONE
    report = import_inventory(
        list(enumerate(rows, start=2)),
        deps.inventory_repo(),
        actor="test",
        phone_hash=deps.sms_code_service().phone_hash,
    )
    assert report.errors == []
    return [row["vin"] for row in rows]


def claimed(vin: str, state: CardState) -> None:
    """``vin``'s card pending (or registered) under someone else."""
    repo = deps.inventory_repo()
    iccid = repo.cards_of_vehicle(vin)[0].iccid
    put_card_state(repo, iccid, CardState.PENDING, actor="test", holder_id="p-someone")
    if state is CardState.REGISTERED:
        put_card_state(repo, iccid, CardState.REGISTERED, actor="test")


def at_possession(api: Any, me: dict[str, str], vin: str, phone: str = OTHER_PHONE) -> dict[str, Any]:
    status, reg = call(api, "post", REG, me, {"vin": vin})
    assert status in (200, 201), reg
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, phone, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": phone, "code": code})
    assert status == 200, reg
    return dict(reg)


# --------------------------------------------------------------------------- the same answer


def test_an_unproved_caller_gets_the_same_answer_for_unknown_free_claimed_and_in_progress_vins(
    api: Any, person: Headers, vins: list[str]
) -> None:
    # given a registered vehicle, a pending one, one in progress under someone else, a free one and an
    # unknown VIN
    claimed(vins[0], CardState.REGISTERED)
    claimed(vins[1], CardState.PENDING)
    at_possession(api, person(OWNER), vins[2])
    unknown = make_vin(random.Random(99))
    me = person(OTHER)
    answers = []
    for vin in (vins[0], vins[1], vins[2], vins[3], unknown):
        # when I (who showed no possession) start it, verify my phone and ask its head unit for a code
        status, reg = call(api, "post", REG, me, {"vin": vin})
        at_possession(api, me, vin)
        sent_status, sent = call(api, "post", f"{REG}/{reg['registration_id']}/possession/head-unit-code", me)
        for volatile in ("registration_id", "created_at", "expires_at"):
            reg.pop(volatile)
        reg["vehicle"].pop("vin_masked")
        sent.pop("expires_at")
        answers.append((status, json.dumps(reg, sort_keys=True), sent_status, sent))
    # then every answer is the same: nothing tells whether the vehicle exists or whose it is
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][0] == 201
    assert answers[0][2] == 202


def test_deregistration_refuses_an_unknown_and_someone_elses_vin_alike(
    api: Any, person: Headers, vins: list[str]
) -> None:
    claimed(vins[0], CardState.REGISTERED)
    unknown = make_vin(random.Random(99))
    answers = [
        call(api, "post", "/v1/me/deregistrations", person(), {"vin": vin}) for vin in (vins[0], unknown)
    ]
    assert answers[0] == answers[1]
    assert (answers[0][0], answers[0][1]["code"]) == (403, "vehicle.not_yours")


def test_the_inventory_lookup_keeps_its_answers_for_oem_staff(api: Any, auth: Any, vins: list[str]) -> None:
    unknown = make_vin(random.Random(99))
    found = api.http.get(f"/v1/vehicles/{vins[0]}", headers=auth("admin"))
    missing = api.http.get(f"/v1/vehicles/{unknown}", headers=auth("admin"))
    assert (found.status_code, missing.status_code) == (200, 404)
    assert "owner_phone_hash" not in found.body.decode()
    assert api.http.get(f"/v1/vehicles/{vins[0]}", headers=auth("owner")).status_code == 403


# --------------------------------------------------------------------------- refused without the car


def test_a_second_person_who_does_not_hold_the_car_is_refused_by_every_method(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person(OTHER)
    reg = at_possession(api, me, vins[0])
    reg_id, flow_id = reg["registration_id"], reg["flow_id"]
    assert reg["step"] == "possession"
    path = f"{REG}/{reg_id}/possession"
    # the phone I verified is not the sales record's
    status, err = call(api, "post", path, me, {"method": "sales_phone"})
    assert (status, err["code"], err["field"]) == (422, "possession.phone_mismatch", "phone")
    # the head unit shows its code in the car, which I cannot read
    status, _ = call(api, "post", f"{path}/head-unit-code", me)
    assert status == 202
    wrong = "000000" if head_unit_code(vins[0]) != "000000" else "111111"
    status, err = call(api, "post", path, me, {"method": "head_unit", "code": wrong})
    assert (status, err["code"], err["field"]) == (422, "possession.code_wrong", "code")
    # a 行驶证 of another car
    status, _ = upload(api, me, flow_id, DocumentKind.VEHICLE_LICENCE, vehicle_licence(vin=vins[1]))
    assert status == 201
    body = {"method": "vehicle_document", "document": "vehicle_licence"}
    status, err = call(api, "post", path, me, body)
    assert (status, err["code"], err["field"]) == (422, "possession.vin_mismatch", "vehicle_licence")
    # and the registration cannot go on
    status, reg = call(api, "get", f"{REG}/{reg_id}", me)
    assert (reg["step"], reg["cards"], reg["vehicle"]["brand"]) == ("possession", [], "")
    status, err = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, err["details"]["step"]) == (409, "possession")


# --------------------------------------------------------------------------- the holder passes


def test_the_sales_record_phone_passes_by_itself(api: Any, person: Headers, vins: list[str]) -> None:
    reg = at_possession(api, person(), vins[0], phone=PHONE)
    assert reg["step"] == "identity"
    assert reg["possession"]["method"] == "sales_phone"
    assert [c["state"] for c in reg["cards"]] == ["unregistered"]
    assert reg["vehicle"]["brand"] != ""


def test_the_head_unit_code_passes_and_the_cli_prints_it(api: Any, person: Headers, vins: list[str]) -> None:
    from chalicelib.cli.main import main

    me = person()
    reg = at_possession(api, me, vins[2])
    status, _ = call(api, "post", f"{REG}/{reg['registration_id']}/possession/head-unit-code", me)
    assert status == 202
    printed = CliRunner().invoke(main, ["vehicle", "head-unit", vins[2]], catch_exceptions=False)
    assert printed.exit_code == 0
    shown = json.loads(printed.output.splitlines()[0])
    assert shown["code"] == head_unit_code(vins[2])
    body = {"method": "head_unit", "code": shown["code"]}
    status, reg = call(api, "post", f"{REG}/{reg['registration_id']}/possession", me, body)
    assert (status, reg["step"], reg["possession"]["method"]) == (200, "identity", "head_unit")


def test_a_vehicle_licence_photo_whose_vin_ocr_reads_passes(
    api: Any, person: Headers, vins: list[str]
) -> None:
    require_cjk_font()
    me = person()
    reg = at_possession(api, me, vins[3])
    status, doc = upload(api, me, reg["flow_id"], DocumentKind.VEHICLE_LICENCE, vehicle_licence(vin=vins[3]))
    assert status == 201, doc
    body = {"method": "vehicle_document", "document": "vehicle_licence"}
    status, reg = call(api, "post", f"{REG}/{reg['registration_id']}/possession", me, body)
    assert (status, reg["step"]) == (200, "identity"), reg
    entries = deps.evidence_log().entries(reg["flow_id"])
    assert any(e.kind == "ocr_read" and e.public.get("document") == "vehicle_licence" for e in entries)


# --------------------------------------------------------------------------- contest


def test_the_holder_of_a_car_pending_under_someone_else_contests_it(
    api: Any, person: Headers, vins: list[str], auth: Any
) -> None:
    claimed(vins[2], CardState.PENDING)
    me = person()
    reg = at_possession(api, me, vins[2])
    reg_id = reg["registration_id"]
    status, err = call(api, "post", f"{REG}/{reg_id}/contest", me)
    assert (status, err["code"]) == (409, "possession.not_proved")
    # when I show I hold it, I learn it is claimed and may contest
    status, _ = call(api, "post", f"{REG}/{reg_id}/possession/head-unit-code", me)
    assert status == 202
    body = {"method": "head_unit", "code": head_unit_code(vins[2])}
    status, err = call(api, "post", f"{REG}/{reg_id}/possession", me, body)
    assert (status, err["code"], err["details"]["contestable"]) == (409, "possession.vehicle_claimed", True)
    status, reg = call(api, "post", f"{REG}/{reg_id}/contest", me)
    assert status == 200, reg
    case_id = reg["possession"]["contest_case_id"]
    assert case_id
    # then a reviewer finds the case, with the registration it is about
    status_resp = api.http.get(f"/v1/review-cases/{case_id}", headers=auth("reviewer"))
    assert status_resp.status_code == 200, status_resp.body
    case = json.loads(status_resp.body)["case"]
    assert case["reason"] == "possession_contested"
    # and contesting again opens nothing new; the other person's card is untouched
    status, again = call(api, "post", f"{REG}/{reg_id}/contest", me)
    assert again["possession"]["contest_case_id"] == case_id
    assert deps.inventory_repo().cards_of_vehicle(vins[2])[0].state is CardState.PENDING


# --------------------------------------------------------------------------- inventory


def test_the_sales_phone_column_is_kept_only_as_a_keyed_hash_and_checked_per_row(
    api: Any, auth: Any, vins: list[str]
) -> None:
    rows = list(inventory_rows(2, seed=77))
    header = "vin,engine_no,brand,model,colour,iccid,msisdn,owner_phone\n"

    def line(row: dict[str, str], phone: str) -> str:
        cols = ("vin", "engine_no", "brand", "model", "colour", "iccid", "msisdn")
        return ",".join(row[c] for c in cols) + f",{phone}\n"

    text = header + line(rows[0], "13912345678") + line(rows[1], "12345")
    headers = auth("admin", **CSV)
    report = json.loads(api.http.post("/v1/admin/inventory/imports", headers=headers, body=text).body)
    assert report["vehicles_created"] == 1
    assert [(e["row"], e["field"], e["code"]) for e in report["errors"]] == [
        (3, "owner_phone", "mobile.format")
    ]
    vehicle = deps.inventory_repo().get_vehicle(rows[0]["vin"])
    assert vehicle is not None
    assert vehicle.owner_phone_hash == deps.sms_code_service().phone_hash("13912345678")
    from chalicelib.adapters.dynamo.models import VehicleModel

    assert "13912345678" not in json.dumps(VehicleModel.get(rows[0]["vin"]).attribute_values, default=str)
    # re-imported as it was, or without the column: nothing changes
    again = json.loads(
        api.http.post(
            "/v1/admin/inventory/imports", headers=headers, body=header + line(rows[0], "13912345678")
        ).body
    )
    assert (again["vehicles_unchanged"], again["vehicles_updated"]) == (1, 0)
    plain = "vin,engine_no,brand,model,colour,iccid,msisdn\n" + line(rows[0], "").rstrip(",\n") + "\n"
    third = json.loads(api.http.post("/v1/admin/inventory/imports", headers=headers, body=plain).body)
    assert (third["vehicles_unchanged"], third["vehicles_updated"]) == (1, 0)
    kept = deps.inventory_repo().get_vehicle(rows[0]["vin"])
    assert kept is not None
    assert kept.owner_phone_hash == vehicle.owner_phone_hash
