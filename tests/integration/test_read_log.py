"""The personal-data read log (查阅日志) through the API: every route that can show personal data in clear
shows it only when staff give a reason, and records who read which record's fields, when and why before
the answer leaves (503 and nothing shown when it cannot); without a reason the answer is masked and
nothing is recorded. An owner's own ID card reading is recorded with the reason ``self``. Auditors search
the log by actor, by record and by time, a page at a time; the CLI's ``--reveal`` records too."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.adapters.dynamo.models_audit import ReadLogModel
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration import test_registration_flow as registration_flow
from tests.integration.test_identity_documents import PASSPORT_NUMBER, up_to_identity
from tests.integration.test_inventory_api import _registered_vehicle
from tests.integration.test_review_notices import passport_in_review
from tests.integration.test_verification_api import CARD_PORTRAIT, call, upload
from tests.synthetic_documents import PERSON_ID_NUMBER, id_front, require_cjk_font

person = registration_flow.person
vins = registration_flow.vins

Headers = dict[str, str]
READS = "/v1/audit/reads"
ICCID = "89860112345678901237"
MSISDN = "1460012345678"
REASON = "核对登记人信息（投诉回访）"


def staff(token: Callable[..., str], role: str, subject: str | None = None) -> Headers:
    return {"Authorization": f"Bearer {token(role, subject=subject or role + '-1')}"}


def get(api: Any, path: str, headers: Headers, **query: str) -> tuple[int, Any, dict[str, str]]:
    response = api.http.get(f"{path}?{urlencode(query)}" if query else path, headers=headers)
    return response.status_code, json.loads(response.body), dict(response.headers)


def logged() -> list[ReadLogModel]:
    """Every item of the read log (the test looks at the table itself)."""
    return sorted(ReadLogModel.scan(), key=lambda item: item.at)


def search(api: Any, token: Callable[..., str], **query: str) -> dict[str, Any]:
    status, page, _ = get(api, READS, staff(token, "auditor", "auditor-9"), **query)
    assert status == 200, page
    return dict(page)


@pytest.fixture
def vehicle(api: Any) -> tuple[str, Any]:
    return _registered_vehicle()


def test_a_card_is_shown_in_clear_only_with_a_reason_and_each_such_read_is_recorded_for_the_auditors(
    api: Any, token: Callable[..., str], vehicle: tuple[str, Any]
) -> None:
    vin, person = vehicle
    reviewer = staff(token, "reviewer")
    # Without a reason a reviewer sees the card and its holder masked, and nothing is recorded
    status, masked, _ = get(api, f"/v1/vehicles/{vin}", reviewer)
    assert status == 200, masked
    [card] = masked["cards"]
    assert (card["msisdn"], card["holder"]["masked"], card["holder"]["name"]) == (
        "146******5678",
        True,
        "张**",
    )
    assert person.id_number not in json.dumps(masked, ensure_ascii=False)
    assert logged() == []
    # With a reason the reviewer sees them in clear, and the read is recorded before the answer
    status, clear, headers = get(api, f"/v1/vehicles/{vin}", reviewer, reason=REASON)
    assert status == 200, clear
    [card] = clear["cards"]
    assert (card["msisdn"], card["holder"]["id_number"], card["holder"]["masked"]) == (
        MSISDN,
        person.id_number,
        False,
    )
    [item] = logged()
    assert (item.actor, list(item.roles), item.record_kind, item.record_id) == (
        "reviewer-1",
        ["reviewer"],
        "card",
        ICCID,
    )
    assert list(item.fields) == [
        "holder.address",
        "holder.id_number",
        "holder.name",
        "holder.phone",
        "msisdn",
    ]
    assert (item.reason, item.route) == (REASON, "GET /v1/vehicles/{vin}")
    assert item.correlation_id == headers["X-Correlation-Id"]
    stored = json.dumps(item.attribute_values, default=str, ensure_ascii=False)
    assert person.id_number not in stored
    assert person.phone not in stored
    assert MSISDN not in stored  # names of fields, never their values
    # An admin with a reason sees the MSISDN in clear (not the holder): recorded as such
    status, by_iccid, _ = get(api, f"/v1/cards/{ICCID}", staff(token, "admin"), reason="卡号停机核查")
    assert (status, by_iccid["msisdn"], by_iccid["holder"]["masked"]) == (200, MSISDN, True)
    assert list(logged()[-1].fields) == ["msisdn"]
    # An auditor looks the card up by its number, with a reason
    status, by_msisdn, _ = get(
        api, "/v1/cards", staff(token, "auditor"), msisdn=MSISDN, reason="年度抽查核对"
    )
    assert (status, by_msisdn["holder"]["name"]) == (200, person.name)
    assert len(logged()) == 3
    # A reason carrying a phone number, or too short, is refused under its field: nothing shown or kept
    for bad, code in (("回电 13812341234 核实", "audit.reason_personal"), ("看", "audit.reason_invalid")):
        status, err, _ = get(api, f"/v1/vehicles/{vin}", reviewer, reason=bad)
        assert (status, err["code"], err["field"]) == (422, code, "reason"), err
        assert err["message_zh"]
        assert "holder" not in err
    assert len(logged()) == 3

    # The auditors find the reads by record, newest first, with who, when, which fields and why
    page = search(api, token, record_kind="card", record_id=ICCID)
    assert [r["actor"] for r in page["reads"]] == ["auditor-1", "admin-1", "reviewer-1"]
    assert page["reads"][2]["fields"] == list(item.fields)
    assert page["reads"][2]["reason"] == REASON
    assert page["next_cursor"] is None
    # by actor
    page = search(api, token, actor="reviewer-1")
    assert [(r["record_kind"], r["record_id"]) for r in page["reads"]] == [("card", ICCID)]
    assert (
        search(api, token, actor="reviewer-1", record_kind="card", record_id="89860112345678901245")["reads"]
        == []
    )
    # by time, a page at a time
    first = search(api, token, limit="2")
    assert [r["actor"] for r in first["reads"]] == ["auditor-1", "admin-1"]
    assert first["next_cursor"]
    rest = search(api, token, limit="2", cursor=first["next_cursor"])
    assert [r["actor"] for r in rest["reads"]] == ["reviewer-1"]
    assert rest["next_cursor"] is None
    before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert search(api, token, until=before)["reads"] == []
    # Reading the log is not itself recorded
    assert len(logged()) == 3
    # A cursor of another search, half a record, a range too long or a bad time are refused by field
    auditor = staff(token, "auditor", "auditor-9")
    for query, code, field in (
        ({"actor": "admin-1", "cursor": first["next_cursor"]}, "audit.cursor", "cursor"),
        ({"cursor": "not-a-cursor"}, "audit.cursor", "cursor"),
        ({"record_kind": "card"}, "audit.record_incomplete", "record_id"),
        ({"record_kind": "person", "record_id": "x"}, "audit.record_kind", "record_kind"),
        ({"since": "2026-01-01T00:00:00+00:00"}, "audit.range_too_long", "since"),
        ({"since": "yesterday"}, "audit.since", "since"),
    ):
        status, err, _ = get(api, READS, auditor, **query)
        assert (status, err["code"], err.get("field")) == (422, code, field), (query, err)
    # Only auditors read the log
    for role in ("reviewer", "admin", "owner"):
        status, err, _ = get(api, READS, staff(token, role))
        assert status == 403, err


def test_when_the_read_cannot_be_recorded_the_answer_is_503_and_nothing_personal_leaves(
    api: Any, token: Callable[..., str], vehicle: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamo.audit import DynamoReadLogStore

    vin, person = vehicle

    def unreachable(self: DynamoReadLogStore, *args: Any) -> None:
        raise ConnectionError("read-log table unreachable")

    monkeypatch.setattr(DynamoReadLogStore, "add", unreachable)
    reviewer = staff(token, "reviewer")
    status, err, headers = get(api, f"/v1/vehicles/{vin}", reviewer, reason=REASON)
    assert (status, err["code"]) == (503, "audit.unavailable"), err
    assert "未显示" in err["message_zh"]
    assert headers.get("Retry-After")
    body = json.dumps(err, ensure_ascii=False)
    assert person.id_number not in body
    assert MSISDN not in body
    status, err, _ = get(api, "/v1/cards", reviewer, msisdn=MSISDN, reason=REASON)
    assert status == 503, err
    # The masked answer needs no record, so it is still given
    status, masked, _ = get(api, f"/v1/vehicles/{vin}", reviewer)
    assert (status, masked["cards"][0]["holder"]["masked"]) == (200, True)
    assert logged() == []


def test_a_reviewer_reads_complaint_phones_in_clear_only_with_a_reason_one_record_per_complaint(
    api: Any, token: Callable[..., str]
) -> None:
    owner = {
        "Authorization": f"Bearer {token('owner', subject='owner-c')}",
        "Content-Type": "application/json",
    }
    numbers = []
    for phone in ("13912345678", "13712345678"):
        body = {"category": "service", "description": "客服电话一直占线。", "contact_phone": phone}
        status, filed = call(api, "post", "/v1/me/complaints", owner, body)
        assert status == 201, filed
        numbers.append(filed["complaint_id"])
    reviewer = staff(token, "reviewer")
    status, masked, _ = get(api, "/v1/admin/complaints", reviewer)
    assert status == 200, masked
    assert {c["contact_phone"] for c in masked["complaints"]} == {"139****5678", "137****5678"}
    assert logged() == []
    status, clear, _ = get(api, "/v1/admin/complaints", reviewer, reason="回访投诉人")
    assert {c["contact_phone"] for c in clear["complaints"]} == {"13912345678", "13712345678"}
    assert sorted((i.record_kind, i.record_id, tuple(i.fields)) for i in logged()) == sorted(
        ("complaint", n, ("contact_phone",)) for n in numbers
    )
    # An admin does not read phones in clear, reason or not
    status, admin, _ = get(api, "/v1/admin/complaints", staff(token, "admin"), reason="回访投诉人")
    assert {c["contact_phone"] for c in admin["complaints"]} == {"139****5678", "137****5678"}
    assert len(logged()) == 2
    page = search(api, token, record_kind="complaint", record_id=numbers[0])
    assert [(r["actor"], r["reason"]) for r in page["reads"]] == [("reviewer-1", "回访投诉人")]


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_a_review_case_its_evidence_a_spot_check_and_an_owners_reading_are_recorded_when_read_in_clear(
    api: Any, token: Callable[..., str], person: Callable[..., Headers], vins: list[str]
) -> None:
    from chalicelib.adapters.dynamo.spot_checks import DynamoSpotChecks
    from chalicelib.kernel.operators import Operator
    from chalicelib.operators.domain.spot_checks import SpotCheck

    me = person()
    _, case_id = passport_in_review(api, me, vins[0])
    reviewer = staff(token, "reviewer")
    # The review case without a reason: the identity masked, no document link, the evidence's names only
    status, masked, _ = get(api, f"/v1/review-cases/{case_id}", reviewer)
    assert status == 200, masked
    flow_id = masked["flow"]["flow_id"]
    assert masked["flow"]["identity"]["id_number"] != PASSPORT_NUMBER
    assert set(masked["documents"].values()) == {None}
    assert all(isinstance(e["personal"], list) for e in masked["evidence"]["entries"])
    assert logged() == []
    # With a reason: in clear, and one item for the flow naming what was shown
    status, case, _ = get(api, f"/v1/review-cases/{case_id}", reviewer, reason="审核护照登记")
    assert status == 200, case
    assert case["flow"]["identity"]["id_number"] == PASSPORT_NUMBER
    assert case["documents"]["id_front"]
    [item] = logged()
    assert (item.actor, item.record_kind, item.record_id, item.reason) == (
        "reviewer-1",
        "flow",
        flow_id,
        "审核护照登记",
    )
    assert {"identity.id_number", "identity.name", "documents.id_front"} <= set(item.fields)
    assert item.route == "GET /v1/review-cases/{case_id}"
    # An owner's own ID card reading, handed back to confirm, is recorded with the reason "self"
    owner = person("owner-reading")
    reg = up_to_identity(api, owner, vins[1])
    status, doc = upload(
        api, owner, reg["flow_id"], DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT)
    )
    assert status == 201, doc
    status, reading = call(api, "post", f"/v1/flows/{reg['flow_id']}/readings/id_front", owner)
    assert status == 200, reading
    assert reading["reading"]["id_number"] == PERSON_ID_NUMBER
    own = logged()[-1]
    assert (own.actor, own.reason, own.record_kind, own.record_id) == (
        "owner-reading",
        "self",
        "flow",
        reg["flow_id"],
    )
    assert {"reading.id_front.name", "reading.id_front.id_number"} <= set(own.fields)
    own_flow = reg["flow_id"]
    # The flow's evidence: an auditor reads it masked, then in clear with a reason
    auditor = staff(token, "auditor")
    status, evidence, _ = get(api, f"/v1/flows/{own_flow}/evidence", auditor)
    assert all(isinstance(e["personal"], list) for e in evidence["entries"])
    assert len(logged()) == 2
    status, evidence, _ = get(api, f"/v1/flows/{own_flow}/evidence", auditor, reason="年度合规检查")
    assert status == 200, evidence
    revealed = [e for e in evidence["entries"] if isinstance(e["personal"], dict) and e["personal"]]
    assert revealed
    assert (logged()[-1].actor, logged()[-1].record_id) == ("auditor-1", own_flow)
    assert all(f.startswith("evidence.") for f in logged()[-1].fields)
    # A spot check on that flow: masked without a reason, each flow recorded with one
    now = datetime.now(UTC)
    check = SpotCheck(
        check_id="sc-read-log",
        callback_id="cb-read-log",
        operator=Operator.CHINA_UNICOM,
        iccid=ICCID,
        message_id="msg-read-log",
        registration_id="reg-read-log",
        flow_ids=[own_flow],
        received_at=now,
        due_at=now + timedelta(days=3),
    )
    DynamoSpotChecks().open(check)
    status, detail, _ = get(api, f"/v1/spot-checks/{check.check_id}", reviewer)
    assert status == 200, detail
    assert all(isinstance(e["personal"], list) for ev in detail["evidence"] for e in ev["entries"])
    assert len(logged()) == 3
    status, detail, _ = get(api, f"/v1/spot-checks/{check.check_id}", reviewer, reason="答复运营商抽查")
    assert any(isinstance(e["personal"], dict) for ev in detail["evidence"] for e in ev["entries"])
    assert (logged()[-1].record_id, logged()[-1].route) == (own_flow, "GET /v1/spot-checks/{check_id}")
    page = search(api, token, actor="owner-reading")
    assert [r["reason"] for r in page["reads"]] == ["self"]
    page = search(api, token, record_kind="flow", record_id=own_flow)
    assert [r["actor"] for r in page["reads"]] == ["reviewer-1", "auditor-1", "owner-reading"]
    page = search(api, token, record_kind="flow", record_id=flow_id)
    assert [r["actor"] for r in page["reads"]] == ["reviewer-1"]


@pytest.mark.skipif(importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="rapidocr not installed")
def test_the_clis_reveal_needs_a_reason_and_is_recorded_under_the_operator_running_it(
    aws: None, tmp_path: Path
) -> None:
    import getpass
    import hashlib

    from click.testing import CliRunner

    from chalicelib.cli.ocr import ocr

    require_cjk_font()
    card = tmp_path / "front.png"
    card.write_bytes(id_front())
    refused = CliRunner().invoke(ocr, ["id-front", str(card), "--reveal"])
    assert refused.exit_code == 2
    assert "--reason" in refused.output
    personal = CliRunner().invoke(ocr, ["id-front", str(card), "--reveal", "--reason", "回电 13912345678"])
    assert personal.exit_code == 2
    assert json.loads(personal.output)["error"]["code"] == "audit.reason_personal"
    assert logged() == []
    shown = CliRunner().invoke(ocr, ["id-front", str(card), "--reveal", "--reason", "核对样张识别结果"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["document"]["id_number"] == PERSON_ID_NUMBER
    [item] = logged()
    assert (item.actor, item.record_kind, item.reason) == (
        f"cli:{getpass.getuser()}",
        "document_file",
        "核对样张识别结果",
    )
    assert item.record_id == hashlib.sha256(card.read_bytes()).hexdigest()
    assert set(item.fields) == {
        "document.name",
        "document.id_number",
        "document.address",
        "document.birth_date",
    }
    assert item.route == "cli: cheka ocr id-front"
    # Masked output records nothing
    assert CliRunner().invoke(ocr, ["id-front", str(card)]).exit_code == 0
    assert len(logged()) == 1
