"""Names and addresses through the API are real text: a name of spaces, of zero-width characters, with
a bidi override or markup is refused with a field error and nothing is stored; a name typed with extra
spaces or full-width letters is stored normalised (and then checked against the ID card as such)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.local.synthetic import inventory_rows, make_resident_id
from tests.integration.test_verification_api import call
from tests.synthetic_documents import PERSON_ID_NUMBER

OWNER = "owner-text"


@pytest.fixture
def me(aws: None, token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('owner', subject=OWNER)}", "Content-Type": "application/json"}


def open_flow(api: Any, me: dict[str, str]) -> str:
    status, flow = call(api, "post", "/v1/flows", me, {"purpose": "registration"})
    assert status == 201, flow
    return str(flow["flow_id"])


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", "    ", "name.empty"),
        ("name", "\u3000\u3000", "name.empty"),
        ("name", "\u200b\u200c\u200d", "name.invisible"),
        ("name", "王\u2060小明", "name.invisible"),
        ("name", "\u202e明小王", "name.bidi"),
        ("name", "王小明\u2067", "name.bidi"),
        ("name", "<img src=x>", "name.markup"),
        ("name", "王小明&", "name.markup"),
        ("name", "王\x07小明", "name.control"),
        ("address", "北京市\u200b东城区", "address.invisible"),
        ("address", "北京市\u202d东城区", "address.bidi"),
        ("address", "<b>北京市</b>", "address.markup"),
    ],
)
def test_an_identity_whose_name_or_address_is_not_real_text_is_refused_and_nothing_stored(
    api: Any, me: dict[str, str], field: str, value: str, code: str
) -> None:
    flow_id = open_flow(api, me)
    identity = {"id_type": "resident_id", "id_number": PERSON_ID_NUMBER, "name": "王小明", field: value}
    status, error = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity)
    assert (status, error["code"], error["field"]) == (422, code, field), error
    assert error["message_zh"]
    assert error["message_en"]
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["identity"] is None


def test_a_name_typed_with_spaces_and_full_width_letters_is_stored_normalised(
    api: Any, me: dict[str, str]
) -> None:
    flow_id = open_flow(api, me)
    identity = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": "  王 小明 ",
        "address": " 北京市\u3000东城区  景山前街 ",
    }
    status, flow = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity)
    assert status == 200, flow
    stored = deps.verification_service().flow(flow_id, OWNER).identity
    assert stored is not None
    assert (stored.name, stored.address) == ("王小明", "北京市 东城区 景山前街")
    # A foreign name in full-width letters is folded (NFKC) and keeps its single spaces
    identity = {"id_type": "passport", "id_number": "E12345678", "name": "ＪＯＨＮ　　ＳＭＩＴＨ"}
    status, flow = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity)
    assert status == 200, flow
    stored = deps.verification_service().flow(flow_id, OWNER).identity
    assert stored is not None
    assert stored.name == "JOHN SMITH"


def test_a_delegations_owner_named_with_spaces_is_refused_on_the_owners_field(
    api: Any, me: dict[str, str]
) -> None:
    from chalicelib.cards.inventory import import_inventory

    rows = list(inventory_rows(1, seed=41))
    assert import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test").errors == []
    status, reg = call(api, "post", "/v1/me/registrations", me, {"vin": rows[0]["vin"], "delegated": True})
    assert status == 201, reg
    owner = {"id_type": "resident_id", "id_number": make_resident_id(random.Random(8)), "name": " \u200b "}
    body = {"owner": owner, "owner_phone": "13700001111"}
    path = f"/v1/me/registrations/{reg['registration_id']}/delegation"
    status, error = call(api, "post", path, me, body)
    assert (status, error["code"], error["field"]) == (422, "name.invisible", "owner.name"), error
    status, error = call(api, "post", path, me, {**body, "owner": {**owner, "name": "   "}})
    assert (status, error["code"], error["field"]) == (422, "name.empty", "owner.name"), error
    assert call(api, "get", f"/v1/me/registrations/{reg['registration_id']}", me)[1]["delegation"] is None
