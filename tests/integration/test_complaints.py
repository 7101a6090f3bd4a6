"""投诉举报 (第二十一条) through the API: a complaint filed by an owner is numbered, kept sealed, listed
to its author with its status and to the OEM's reviewers and admins; bad input is refused by field and
keeps nothing; the log names the number, never the text."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from chalicelib.local.synthetic import make_vin
from tests.integration.test_verification_api import call

Headers = dict[str, str]
MINE = "/v1/me/complaints"
ADMIN = "/v1/admin/complaints"
DESCRIPTION = "有人用我的身份证给一辆我没买过的车办了车联网卡实名登记，我没有办理过，请核查。"


def person(token: Callable[..., str], subject: str) -> Headers:
    return {"Authorization": f"Bearer {token('owner', subject=subject)}", "Content-Type": "application/json"}


def staff(token: Callable[..., str], role: str) -> Headers:
    return {"Authorization": f"Bearer {token(role, subject=role + '-1')}"}


def test_a_complaint_is_numbered_listed_to_its_author_and_to_the_oem_with_the_phone_masked_for_admins(
    api: Any, token: Callable[..., str], log_output: Any
) -> None:
    from chalicelib.adapters.dynamo.models_complaints import ComplaintModel

    vin = make_vin(random.Random(2114))
    me = person(token, "owner-a")
    body = {
        "category": "identity_misuse",
        "description": DESCRIPTION,
        "contact_phone": "13912345678",
        "vin": vin.lower(),
    }
    status, filed = call(api, "post", MINE, me, body)
    assert status == 201, filed
    number = filed["complaint_id"]
    assert number.startswith("TS")
    assert len(number) == 16
    assert (filed["status"], filed["status_zh"], filed["category_zh"]) == (
        "received",
        "已受理，等待处理",
        "冒用身份",
    )
    assert filed["contact_phone"] == "139****5678"
    assert filed["vin"] == "*" * 11 + vin[-6:]
    assert number in filed["message_zh"]
    assert "139****5678" in filed["message_zh"]
    assert "15 个工作日" in filed["message_zh"]

    # the author sees it; another owner does not
    status, mine = call(api, "get", MINE, me)
    assert status == 200
    assert [c["complaint_id"] for c in mine["complaints"]] == [number]
    assert mine["complaints"][0]["description"] == DESCRIPTION
    status, theirs = call(api, "get", MINE, person(token, "owner-b"))
    assert (status, theirs["complaints"]) == (200, [])

    # the OEM: a reviewer calls back (phone in clear, given a reason), an admin sees it masked; an owner
    # may not list
    status, listed = call(api, "get", ADMIN + "?reason=call-back", staff(token, "reviewer"))
    assert status == 200, listed
    (seen,) = listed["complaints"]
    assert (seen["complaint_id"], seen["subject"], seen["contact_phone"], seen["vin"]) == (
        number,
        "owner-a",
        "13912345678",
        vin,
    )
    assert seen["description"] == DESCRIPTION
    status, listed = call(api, "get", ADMIN, staff(token, "admin"))
    assert (status, listed["complaints"][0]["contact_phone"]) == (200, "139****5678")
    status, closed = call(api, "get", ADMIN + "?status=closed", staff(token, "admin"))
    assert (status, closed["complaints"]) == (200, [])
    status, err = call(api, "get", ADMIN + "?status=lost", staff(token, "admin"))
    assert (status, err["code"]) == (422, "complaint.status")
    status, err = call(api, "get", ADMIN, me)
    assert (status, err["code"]) == (403, "auth.forbidden")

    # at rest: the description and the phone are sealed, the log names the number only
    item = ComplaintModel.get(number)
    raw = json.dumps({k: str(v) for k, v in item.attribute_values.items()}, ensure_ascii=False)
    assert "13912345678" not in raw
    assert "身份证" not in raw
    logged = log_output.getvalue()
    assert number in logged
    assert "13912345678" not in logged
    assert "身份证给一辆" not in logged


def test_a_bad_complaint_is_refused_field_by_field_and_keeps_nothing(
    api: Any, token: Callable[..., str]
) -> None:
    from chalicelib.adapters.dynamo.models_complaints import ComplaintModel

    me = person(token, "owner-c")
    body = {"category": "service", "description": "   ", "contact_phone": "1234", "vin": "LSVAU2180N21832"}
    status, err = call(api, "post", MINE, me, body)
    assert status == 422, err
    fields = {e["field"]: e for e in err["details"]["errors"]}
    assert set(fields) == {"description", "contact_phone", "vin"}
    assert fields["description"]["message_zh"] == "请写下您要投诉或举报的情况"
    # too long: says how long it is
    body = {"category": "other", "description": "车" * 501, "contact_phone": "13912345678"}
    status, err = call(api, "post", MINE, me, body)
    assert (status, err["code"], err["field"]) == (422, "complaint.description_too_long", "description")
    assert "500" in err["message_zh"]
    assert "501" in err["message_zh"]
    # an unknown category
    body = {"category": "weather", "description": "天气", "contact_phone": "13912345678"}
    status, err = call(api, "post", MINE, me, body)
    assert (status, err.get("field")) == (422, "category")
    # without signing in
    status, err = call(api, "post", MINE, {"Content-Type": "application/json"}, body)
    assert (status, err["code"]) == (401, "auth.missing")
    assert list(ComplaintModel.scan()) == []


def test_a_person_files_at_most_the_daily_number_of_complaints(api: Any, token: Callable[..., str]) -> None:
    from chalicelib.core.settings import get_settings

    me = person(token, "owner-d")
    body = {"category": "service", "description": "客服电话一直占线。", "contact_phone": "13912345678"}
    for _ in range(get_settings().complaints_per_day):
        status, filed = call(api, "post", MINE, me, body)
        assert status == 201, filed
    status, err = call(api, "post", MINE, me, body)
    assert (status, err["code"]) == (429, "complaint.too_many")
    assert err["details"]["retry_after"] > 0
    status, mine = call(api, "get", MINE, me)
    assert len(mine["complaints"]) == get_settings().complaints_per_day
