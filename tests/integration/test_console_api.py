"""The console's document links through the API: a reviewer asks for a 60-second link to one document of
a case, the image behind it is the stored photo with the reviewer's watermark drawn into it (same size,
not the same pixels, never cached), every view is recorded in the read log before the image leaves (503
and no image when it cannot be), and a link expired, altered or signed with another key is refused."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image, ImageChops

from chalicelib.adapters.dynamo.models_audit import ReadLogModel
from chalicelib.audit import document_views
from chalicelib.core import deps
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import ReviewReason

OWNER = "owner-13900139000"
LINKS = "/v1/console/document-links"
JPEG = {"Accept": "image/jpeg"}


def call(api: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": {"Content-Type": "application/json", **headers}}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    response = getattr(api.http, method)(path, **kwargs)
    return response.status_code, json.loads(response.body) if response.body else None


def photo_bytes(width: int = 900, height: int = 600) -> bytes:
    """A photo with detail enough to pass the upload's checks (gradients and noise)."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.effect_noise((width, height), 48)
    blue = Image.linear_gradient("L").rotate(90).resize((width, height))
    out = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(out, "JPEG", quality=92)
    return out.getvalue()


def stored_photo(flow_id: str, kind: DocumentKind) -> bytes:
    service = deps.verification_service()
    flow = service.flows.find(flow_id)
    assert flow is not None
    return service.documents.photo(flow, kind)


def upload_photo(api: Any, me: dict[str, str], flow_id: str, kind: DocumentKind) -> None:
    """The owner's photo of ``kind`` in the flow: presigned, put where the form would, completed."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    body = {"kind": kind.value, "content_type": "image/jpeg"}
    status, post = call(api, "post", f"/v1/flows/{flow_id}/uploads", me, body)
    assert status == 201, post
    bucket = get_settings().documents_bucket
    client("s3").put_object(Bucket=bucket, Key=post["key"], Body=photo_bytes(), ContentType="image/jpeg")
    body = {"kind": kind.value, "key": post["key"]}
    status, stored = call(api, "post", f"/v1/flows/{flow_id}/documents", me, body)
    assert status in (200, 201), stored


@pytest.fixture
def review_case(api: Any, token: Callable[..., str]) -> tuple[str, str]:
    """A review case whose flow holds a vehicle licence photo: (case id, flow id)."""
    me = {"Authorization": f"Bearer {token('owner', subject=OWNER)}"}
    status, flow = call(api, "post", "/v1/flows", me, {"purpose": "registration"})
    assert status == 201, flow
    flow_id = flow["flow_id"]
    upload_photo(api, me, flow_id, DocumentKind.VEHICLE_LICENCE)
    case = deps.verification_service().open_case(flow_id, OWNER, ReviewReason.AUTHORITY_UNAVAILABLE)
    return case.case_id, flow_id


def staff(token: Callable[..., str], role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject=subject)}"}


def link_for(
    api: Any, headers: dict[str, str], case_id: str, document: str = "vehicle_licence"
) -> dict[str, Any]:
    body = {"record_kind": "review_case", "record_id": case_id, "document": document}
    status, link = call(api, "post", LINKS, headers, body)
    assert status == 201, link
    return dict(link)


def reads_of(flow_id: str) -> list[ReadLogModel]:
    return [item for item in ReadLogModel.scan() if item.record_id == flow_id]


def test_a_document_link_answers_the_photo_watermarked_with_the_reviewer_and_logs_the_view_first(
    api: Any, token: Callable[..., str], review_case: tuple[str, str]
) -> None:
    case_id, flow_id = review_case
    reviewer = staff(token, "reviewer", "reviewer-7")
    # Given a reviewer's link to the case's vehicle licence
    link = link_for(api, reviewer, case_id)
    assert link["url"].startswith("/v1/console/documents/")
    assert reads_of(flow_id) == []  # asking for a link shows nothing yet
    # When the link is followed (an <img>: no bearer header)
    response = api.http.get(link["url"], headers=JPEG)
    # Then the image comes, never cached, of the stored photo's size but not its pixels
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    stored = Image.open(io.BytesIO(stored_photo(flow_id, DocumentKind.VEHICLE_LICENCE))).convert("RGB")
    served = Image.open(io.BytesIO(response.body)).convert("RGB")
    assert served.size == stored.size
    difference = ImageChops.difference(served, stored).convert("L").point(lambda v: 255 if v > 20 else 0)
    width, height = stored.size
    quarters = [(0, 0), (width // 2, 0), (0, height // 2), (width // 2, height // 2)]
    for left, top in quarters:  # the tiles cover the whole photo, not one corner
        quarter = difference.crop((left, top, left + width // 2, top + height // 2))
        assert quarter.histogram()[255] > 500, (left, top)
    # And the view was recorded: who, which flow, which document, why, from which case
    [read] = reads_of(flow_id)
    assert (read.actor, read.record_kind, list(read.fields)) == (
        "reviewer-7",
        "flow",
        ["documents.vehicle_licence"],
    )
    assert read.reason == document_views.DEFAULT_REASON
    assert case_id in read.route
    # And each view is recorded again
    assert api.http.get(link["url"], headers=JPEG).status_code == 200
    assert len(reads_of(flow_id)) == 2


def test_the_watermark_names_the_viewer_and_the_time_in_each_tile() -> None:
    at = datetime(2026, 11, 30, 2, 5, 9, tzinfo=UTC)
    assert document_views.watermark_text("reviewer-7", at) == "仅供审核  reviewer-7  2026-11-30 10:05:09"


def test_a_link_is_refused_once_expired(
    api: Any, token: Callable[..., str], review_case: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, flow_id = review_case
    link = link_for(api, staff(token, "reviewer", "reviewer-7"), case_id)
    # When the link is followed 61 seconds later
    later = datetime.now(UTC) + timedelta(seconds=61)
    monkeypatch.setattr("chalicelib.kernel.clock.utc_now", lambda: later)
    response = api.http.get(link["url"], headers=JPEG)
    # Then it is refused, and nothing was shown or recorded
    assert response.status_code == 403
    assert json.loads(response.body)["code"] == "console.document_link_expired"
    assert reads_of(flow_id) == []


def test_a_link_altered_to_another_record_or_viewer_or_signed_with_another_key_is_refused(
    api: Any, token: Callable[..., str], review_case: tuple[str, str]
) -> None:
    import base64

    case_id, flow_id = review_case
    link = link_for(api, staff(token, "reviewer", "reviewer-8"), case_id)
    token_text = link["url"].rsplit("/", 1)[1]
    payload, signature = token_text.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    def with_payload(**changes: str) -> str:
        changed = json.dumps({**doc, **changes}, ensure_ascii=False, separators=(",", ":")).encode()
        return str(base64.urlsafe_b64encode(changed).decode().rstrip("=") + "." + signature)

    forged = [
        with_payload(record_id="rc_someone_elses_case"),  # another record, the first link's signature
        with_payload(subject="reviewer-7"),  # another reviewer
        with_payload(document="id_front"),  # another document
        document_views.sign_link(
            document_views.link_key("not the stage's key"),
            document_views.DocumentLink(**{**doc, "roles": tuple(doc["roles"])}),
        ),
        "garbage",
    ]
    for bad in forged:
        response = api.http.get(f"/v1/console/documents/{bad}", headers=JPEG)
        assert response.status_code == 403, bad
        assert json.loads(response.body)["code"] == "console.document_link_invalid"
    assert reads_of(flow_id) == []


def test_a_view_that_cannot_be_logged_answers_503_and_no_image(
    api: Any, token: Callable[..., str], review_case: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamo.audit import DynamoReadLogStore

    case_id, _ = review_case
    link = link_for(api, staff(token, "reviewer", "reviewer-7"), case_id)

    def unreachable(self: Any, entries: Any, expires_at: Any) -> None:
        raise ConnectionError("read log unreachable")

    monkeypatch.setattr(DynamoReadLogStore, "add", unreachable)
    response = api.http.get(link["url"], headers=JPEG)
    assert response.status_code == 503
    assert json.loads(response.body)["code"] == "audit.unavailable"
    assert response.headers["Content-Type"].startswith("application/json")


def test_links_only_for_staff_who_review_and_documents_the_case_has(
    api: Any, token: Callable[..., str], review_case: tuple[str, str]
) -> None:
    case_id, _ = review_case
    body = {"record_kind": "review_case", "record_id": case_id, "document": "vehicle_licence"}
    status, err = call(api, "post", LINKS, staff(token, "owner", OWNER), body)
    assert status == 403, err
    status, err = call(api, "post", LINKS, staff(token, "reviewer", "r"), {**body, "document": "id_front"})
    assert (status, err["code"]) == (404, "console.document_not_found"), err
    status, err = call(api, "post", LINKS, staff(token, "reviewer", "r"), {**body, "record_id": "rc_none"})
    assert (status, err["code"]) == (404, "console.document_not_found"), err
    status, err = call(api, "post", LINKS, staff(token, "reviewer", "r"), {**body, "record_kind": "flow"})
    assert (status, err["code"]) == (422, "field.enum"), err


def test_a_fleet_case_shows_the_documents_of_its_batch_flow_by_their_slots(
    api: Any, token: Callable[..., str]
) -> None:
    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore
    from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch
    from chalicelib.kernel.clock import utc_now

    # Given a batch in review whose flow holds its business licence
    me = {"Authorization": f"Bearer {token('enterprise_agent', subject='agent-console')}"}
    status, flow = call(api, "post", "/v1/flows", me, {"purpose": "registration"})
    assert status == 201, flow
    upload_photo(api, me, flow["flow_id"], DocumentKind.BUSINESS_LICENCE)
    now = utc_now()
    batch = FleetBatch(
        batch_id="fb_" + "c0" * 12,
        uscc="91110000802100433B",
        company_name="北京星河车联科技有限公司",
        kind=BatchKind.REGISTRATION,
        status=BatchStatus.IN_REVIEW,
        created_by="agent-console",
        created_at=now,
        updated_at=now,
        flow_id=flow["flow_id"],
    )
    DynamoBatchStore(deps.field_cipher()).create(batch)
    reviewer = staff(token, "review_lead", "lead-1")
    body = {"record_kind": "fleet_case", "record_id": batch.batch_id, "document": "business_licence"}
    # When a lead follows the link to the licence
    status, link = call(api, "post", LINKS, reviewer, body)
    assert status == 201, link
    response = api.http.get(link["url"], headers=JPEG)
    # Then the watermarked licence comes, and the view names the batch in the read log
    assert response.status_code == 200, response.body
    [read] = reads_of(flow["flow_id"])
    assert (read.actor, list(read.fields)) == ("lead-1", ["documents.business_licence"])
    assert batch.batch_id in read.route
    # And a slot the batch has no photo for is not found
    status, err = call(api, "post", LINKS, reviewer, {**body, "document": "responsible_id_front"})
    assert (status, err["code"]) == (404, "console.document_not_found"), err


# -- 投诉举报 (第二十一条): answered to the person before the deadline -------------------------------------


def test_a_complaint_is_due_at_the_end_of_its_fifteenth_working_day_weekends_skipped() -> None:
    from chalicelib.complaints.domain import answer_due
    from chalicelib.kernel.clock import CHINA

    # Filed on Friday 2026-11-27 at 23:30 China time: the 15 working days start on Monday.
    filed = datetime(2026, 11, 27, 23, 30, tzinfo=CHINA)
    assert answer_due(filed) == datetime(2026, 12, 18, 23, 59, 59, tzinfo=CHINA)
    # Filed on a Saturday: the same deadline.
    assert answer_due(datetime(2026, 11, 28, 9, 0, tzinfo=CHINA)) == datetime(
        2026, 12, 18, 23, 59, 59, tzinfo=CHINA
    )


def test_a_reviewer_answers_a_complaint_the_person_reads_it_and_gets_it_by_sms_once(
    api: Any, token: Callable[..., str]
) -> None:
    me = {"Authorization": f"Bearer {token('owner', subject='owner-complains')}"}
    body = {
        "category": "service",
        "description": "登记后一直收不到审核结果短信。",
        "contact_phone": "13912340001",
    }
    status, filed = call(api, "post", "/v1/me/complaints", me, body)
    assert status == 201, filed
    number = filed["complaint_id"]
    assert filed["answer"] is None
    assert filed["overdue"] is False
    # The OEM's listing shows the deadline
    reviewer = staff(token, "reviewer", "reviewer-3")
    status, listed = call(api, "get", "/v1/admin/complaints?status=received", reviewer)
    [item] = [c for c in listed["complaints"] if c["complaint_id"] == number]
    assert item["due_at"] > item["created_at"]
    # A blank answer is refused and changes nothing
    path = f"/v1/admin/complaints/{number}/answer"
    status, err = call(api, "post", path, reviewer, {"answer": "  "})
    assert (status, err["code"], err["field"]) == (422, "complaint.answer_invalid", "answer"), err
    # When the reviewer answers
    text = "已核实：审核结果短信因号码填写错误未送达，已为您重新发送。"
    status, answered = call(api, "post", path, reviewer, {"answer": text})
    assert status == 200, answered
    assert (answered["status"], answered["answer"], answered["answered_by"]) == ("closed", text, "reviewer-3")
    assert answered["contact_phone"] == "139****0001"
    # Then the person reads the answer in their complaints, and got it by SMS
    status, mine = call(api, "get", "/v1/me/complaints", me)
    [own] = [c for c in mine["complaints"] if c["complaint_id"] == number]
    assert (own["status"], own["answer"]) == ("closed", text)
    sent = [m.text for m in deps.sms_drop().recent(50) if m.phone == "139****0001"]
    assert any(number in m and text in m for m in sent), sent
    # And a closed complaint is not answered again
    status, err = call(api, "post", path, reviewer, {"answer": "再次答复"})
    assert (status, err["code"]) == (409, "complaint.closed"), err
    status, err = call(
        api, "post", "/v1/admin/complaints/TS20260101ABCDEF/answer", reviewer, {"answer": "答复"}
    )
    assert (status, err["code"]) == (404, "complaint.not_found"), err
    status, err = call(api, "post", path, me, {"answer": "答复"})
    assert status == 403, err
