"""A fleet registration batch built through the API (seed 000 §3) by an approved agent of the enterprise,
on the embedded AWS with the real local engines: vehicles by CSV (a bad row told by its line, the good
rows kept), the selling dealer, the responsible person's phone by SMS code, the responsible person's ID
photos and face through the batch's verification flow, the business licence (read and the enterprise's),
the authorization letter and the custody agreement, the consents, then the submit: a company name one
character off is refused with nothing changed, the right one starts the review workflow (the fake
workflow here: the state machine has its own tests). An agent of another enterprise can neither see nor
change the batch, and a batch of more than 500 vehicles is refused.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.fakes.workflow import FakeWorkflow
from tests.integration.test_agents_api import last_code, make_legal, make_natural, post, sign_in, sign_up
from tests.integration.test_real_name_api import face_passed, licence_read, photos_read
from tests.integration.test_verification_api import call, upload
from tests.synthetic_documents import COMPANY, custody_agreement, fleet_authorization_letter

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

USCC_A = COMPANY["uscc"]
NAME_A = COMPANY["name"]
USCC_B = "91110108MA0000000A"
NAME_B = "北京乙物流有限公司"
PREFIX = "/v1/enterprise/fleet/batches"
RESPONSIBLE_PHONE = "13900139001"

Api = Any


@pytest.fixture(autouse=True)
def quick_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")


@pytest.fixture
def workflow(api: Api) -> Iterator[FakeWorkflow]:
    """The fake workflow in place of the state machine, put back before the embedded AWS goes."""
    fake = FakeWorkflow()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deps, "workflow", lambda: fake)
        yield fake


def headers(signed: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {signed['token']}", "Content-Type": "application/json"}


def agent_of(api: Api, login: str, phone: str, legal: dict[str, Any], name: str, uscc: str) -> dict[str, str]:
    """A natural-person account approved as an agent of the enterprise ``uscc``: its headers."""
    account_id = sign_up(api, login, phone)
    make_natural(account_id)
    me = sign_in(api, login)
    status, applied = post(
        api, "/v1/enterprise/agent-applications", {"company_name": name, "uscc": uscc}, me["token"]
    )
    assert status == 201, applied
    status, approved = post(api, f"/v1/enterprise/agents/{account_id}/approve", {}, legal["token"])
    assert status == 200, approved
    return headers(me)


def stock(api: Api, token: Callable[..., str], count: int, dealer: str) -> list[str]:
    """``count`` vehicles with one unregistered card each imported into the inventory, sold by ``dealer``."""
    from chalicelib.local.synthetic import inventory_rows

    rows = list(inventory_rows(count, seed=1616))
    for row in rows:
        row["dealer_code"] = dealer
    resp = api.http.post(
        "/v1/admin/inventory/imports",
        headers={
            "Authorization": f"Bearer {token('admin', subject='admin-1')}",
            "Content-Type": "application/json",
        },
        body=json.dumps(rows, ensure_ascii=False),
    )
    assert resp.status_code == 200, resp.body
    return [r["vin"] for r in rows]


def fresh_vins(count: int) -> list[str]:
    from chalicelib.local.synthetic import make_vin

    rng = random.Random(16)
    return list(dict.fromkeys(make_vin(rng) for _ in range(count * 2)))[:count]


def test_an_agent_builds_and_submits_a_registration_batch_and_another_enterprise_cannot_touch_it(
    api: Api, token: Callable[..., str], workflow: FakeWorkflow
) -> None:
    legal_a_id = sign_up(api, "legalA", "13800000001")
    make_legal(legal_a_id, USCC_A, NAME_A)
    legal_b_id = sign_up(api, "legalB", "13800000002")
    make_legal(legal_b_id, USCC_B, NAME_B)
    agent = agent_of(api, "agentLi", "13800000003", sign_in(api, "legalA"), NAME_A, USCC_A)
    stranger = agent_of(api, "agentZhao", "13800000004", sign_in(api, "legalB"), NAME_B, USCC_B)
    vins = stock(api, token, 3, "D316")

    status, batch = call(api, "post", PREFIX, agent, {"kind": "registration"})
    assert status == 201, batch
    assert (batch["status"], batch["step"], batch["company_name"]) == ("draft", "vehicles", NAME_A)
    batch_id, flow_id = batch["batch_id"], batch["flow_id"]
    path = f"{PREFIX}/{batch_id}"

    # Vehicles by CSV: a header, the three vehicles and one VIN with a wrong check digit on line 3
    bad = vins[0][:8] + ("1" if vins[0][8] != "1" else "2") + vins[0][9:]
    text = f"vin,备注\n{vins[0]},一号车\n{bad},错号\n{vins[1]},\n{vins[2]},\n"
    status, added = call(api, "post", f"{path}/vehicles/csv", agent, {"csv": text})
    assert status == 200, added
    assert added["added"] == vins
    assert [(r["line"], r["ok"], r["code"]) for r in added["rows"]] == [
        (2, True, None),
        (3, False, "vin.check_digit"),
        (4, True, None),
        (5, True, None),
    ]
    assert added["rows"][1]["message_zh"]

    # Another enterprise's agent: as if the batch did not exist
    for method, where, body in (
        ("get", path, None),
        ("post", f"{path}/vehicles", {"vins": [vins[0]]}),
        ("post", f"{path}/submit", {"company_name": NAME_B}),
    ):
        status, refused = call(api, method, where, stranger, body)
        assert (status, refused["code"]) == (404, "fleet.batch_not_found"), refused
    status, theirs = call(api, "get", PREFIX, stranger)
    assert (status, theirs["items"]) == (200, [])

    # The dealer that sold them
    status, dealers = call(api, "get", f"{path}/dealers", agent)
    assert (status, [(d["dealer_code"], d["vehicles"]) for d in dealers["items"]]) == (200, [("D316", 3)])
    status, refused = call(api, "put", f"{path}/dealer", agent, {"dealer_code": "D999"})
    assert (status, refused["field"]) == (422, "dealer_code")
    assert call(api, "put", f"{path}/dealer", agent, {"dealer_code": "D316"})[0] == 200

    # The responsible person's phone
    assert call(api, "post", f"{path}/responsible-phone/code", agent, {"phone": RESPONSIBLE_PHONE})[0] == 202
    status, phoned = call(
        api, "put", f"{path}/responsible-phone", agent, {"phone": RESPONSIBLE_PHONE, "code": last_code()}
    )
    assert (status, phoned["responsible_phone_verified"], phoned["responsible_phone"]) == (
        200,
        True,
        "139****9001",
    )

    # The responsible person's ID, face and the documents through the batch's flow
    status, front = photos_read(api, agent, flow_id, legal=True)
    assert status == 200, front
    status, read = licence_read(api, agent, flow_id)
    assert (status, read["agreed"]) == (200, True), read
    face_passed(api, agent, flow_id)
    letter = fleet_authorization_letter(vins=vins)
    assert upload(api, agent, flow_id, DocumentKind.AUTHORIZATION_LETTER, letter)[0] == 201
    assert upload(api, agent, flow_id, DocumentKind.CUSTODY_AGREEMENT, custody_agreement(vins=vins))[0] == 201

    status, shown = call(api, "get", path, agent)
    assert status == 200, shown
    assert (shown["step"], shown["missing"]) == ("consents", ["consents"])
    assert all(shown["documents"].values())
    status, consented = call(api, "post", f"{path}/consents", agent, {"texts": shown["consent_texts"]})
    assert (status, consented["missing"]) == (200, []), consented

    # One character off: refused, nothing changed
    status, refused = call(api, "post", f"{path}/submit", agent, {"company_name": NAME_A[:-1] + "囗"})
    assert (status, refused["code"], refused["field"]) == (422, "fleet.company_name_mismatch", "company_name")
    assert call(api, "get", path, agent)[1]["status"] == "draft"
    assert workflow.starts == 0

    status, submitted = call(api, "post", f"{path}/submit", agent, {"company_name": f" {NAME_A} "})
    assert status == 200, submitted
    assert submitted["status"] == "submitted"
    assert submitted["execution_arn"] == workflow.executions[batch_id].arn
    assert workflow.executions[batch_id].payload == {"batch_id": batch_id, "kind": "registration"}
    assert (submitted["cards_total"], submitted["responsible_name"]) == (3, "王**")
    status, again = call(api, "post", f"{path}/vehicles", agent, {"vins": [vins[0]]})
    assert (status, again["code"]) == (409, "fleet.wrong_status")
    kinds = [e.kind.value for e in deps.evidence_log().entries(flow_id)]
    assert "fleet_batch_submitted" in kinds
    actions = [a.action for a in deps.enterprise_actions().listing(USCC_A, None)[0]]
    assert {"fleet.batch_created", "fleet.vehicles_added", "fleet.batch_submitted"} <= set(actions)


def test_a_batch_of_more_than_500_vehicles_is_refused_and_the_templates_download(api: Api) -> None:
    legal_id = sign_up(api, "legalA", "13800000001")
    make_legal(legal_id, USCC_A, NAME_A)
    legal = headers(sign_in(api, "legalA"))
    status, batch = call(api, "post", PREFIX, legal, {"kind": "registration"})
    assert status == 201, batch
    status, refused = call(
        api, "post", f"{PREFIX}/{batch['batch_id']}/vehicles", legal, {"vins": fresh_vins(501)}
    )
    assert (status, refused["code"], refused["details"]["count"]) == (422, "fleet.batch_too_large", 501)
    template = api.http.get("/v1/enterprise/fleet/templates/custody_agreement", headers=legal)
    assert template.status_code == 200
    assert "attachment" in template.headers["Content-Disposition"]
    page = template.body.decode() if isinstance(template.body, bytes) else template.body
    assert "车联网卡分管协议" in page
    assert json.loads(api.http.get("/v1/enterprise/fleet/templates/x", headers=legal).body)["code"] == (
        "fleet.template_not_found"
    )


def test_the_batch_store_keeps_pushes_across_saves_refuses_stale_writes_and_seals_the_phone(
    aws: None,
) -> None:
    from datetime import UTC, datetime

    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore
    from chalicelib.adapters.dynamo.models_fleet import FleetBatchModel
    from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch
    from chalicelib.kernel.errors import Conflict

    deps.fleet_batches()  # binds the tables
    store = DynamoBatchStore(deps.field_cipher())
    now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    vins = tuple(fresh_vins(2))
    batch = FleetBatch(
        "fb_" + "a" * 24, USCC_A, NAME_A, BatchKind.REGISTRATION, BatchStatus.DRAFT, "acct", now, now
    )
    store.create(batch)
    assert store.claim(batch.batch_id, list(vins)) == {}
    assert store.claim("fb_" + "b" * 24, [vins[0]]) == {vins[0]: batch.batch_id}
    phoned = store.save(
        FleetBatch(**{**batch.__dict__, "vins": vins, "responsible_phone": RESPONSIBLE_PHONE, "version": 2}),
        1,
    )
    assert (phoned.vins, phoned.responsible_phone) == (vins, RESPONSIBLE_PHONE)
    raw = FleetBatchModel.get(batch.batch_id)
    assert RESPONSIBLE_PHONE not in json.dumps(raw.attribute_values, default=str)
    assert raw.responsible_phone_masked == "139****9001"
    assert store.add_pushed(batch.batch_id, 2).cards_pushed == 2
    with pytest.raises(Conflict) as stale:
        store.save(FleetBatch(**{**phoned.__dict__, "status": BatchStatus.SUBMITTED, "version": 3}), 1)
    assert stale.value.code == "fleet.batch_changed"
    saved = store.save(
        FleetBatch(**{**phoned.__dict__, "dealer_code": None, "status": BatchStatus.SUBMITTED, "version": 3}),
        2,
    )
    assert (saved.status, saved.cards_pushed, saved.version) == (BatchStatus.SUBMITTED, 2, 3)
    found, _ = store.listing(USCC_A, BatchKind.REGISTRATION, BatchStatus.SUBMITTED, 10, None)
    assert [b.batch_id for b in found] == [batch.batch_id]
    assert store.listing(USCC_A, None, BatchStatus.DRAFT, 10, None)[0] == []
    store.release(batch.batch_id, vins)
    assert store.claims(vins) == {}
