"""Document photos: presign, complete an upload (validated, replaceable by rule), read and cross-check."""

from __future__ import annotations

from datetime import date

import pytest

from chalicelib.kernel.errors import Conflict, Forbidden, InvalidField, ValidationErrors
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, TypedIdentity
from chalicelib.verification.uploads import PRESIGN_EXPIRES_SECONDS
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import NAME, NUMBER, OTHER_NUMBER, OWNER, World, frame, photo

# --- presign ----------------------------------------------------------------------------------


def test_a_presigned_upload_binds_the_key_to_the_flow_and_kind_and_bounds_size_and_type() -> None:
    world = World()
    flow_id = world.open()
    world.consent(flow_id)  # an ID front comes after the biometric consent
    # when
    post = world.service.presign_upload(flow_id, OWNER, DocumentKind.ID_FRONT, "image/png")
    # then
    assert post.key.startswith(f"raw/{flow_id}/id_front/")
    assert post.url == world.store.URL
    assert post.fields["Content-Type"] == "image/png"
    assert world.store.forms[post.key] == {
        "content_type": "image/png",
        "min_bytes": 10 * 1024,
        "max_bytes": post.max_bytes,
        "expires_in": PRESIGN_EXPIRES_SECONDS,
    }


def test_a_type_that_is_not_a_photo_and_the_live_capture_cannot_be_presigned() -> None:
    world = World()
    flow_id = world.open()
    world.consent(flow_id)
    # when, then
    pdf = refused(
        lambda: world.service.presign_upload(flow_id, OWNER, DocumentKind.ID_FRONT, "application/pdf")
    )
    live = refused(
        lambda: world.service.presign_upload(flow_id, OWNER, DocumentKind.LIVE_CAPTURE, "image/jpeg")
    )
    assert pdf.code == "document.type"
    assert live.code == "document.server_only"
    assert world.store.forms == {}


# --- complete ---------------------------------------------------------------------------------


def test_a_completed_upload_is_stored_clean_recorded_and_the_raw_upload_deleted() -> None:
    # given a photo uploaded with a presigned form
    world = World()
    flow_id = world.open()
    raw = world.raw_upload(flow_id, DocumentKind.ID_BACK, photo())
    # when
    stored = world.service.complete_upload(flow_id, OWNER, DocumentKind.ID_BACK, raw)
    # then the re-encoded JPEG is kept under the flow, the raw upload is gone
    assert world.store.keys() == [stored.key]
    assert stored.key == f"documents/{flow_id}/id_back/{stored.sha256}.jpg"
    assert world.store.objects[stored.key][1] == "image/jpeg"
    assert (stored.width, stored.height) == (800, 600)
    assert world.service.flow(flow_id, OWNER).documents == {"id_back": stored.key}
    [entry] = world.evidence.entries(flow_id)
    assert entry.kind is EvidenceKind.UPLOAD_ACCEPTED
    assert entry.public == {
        "document": "id_back",
        "sha256": stored.sha256,
        "size": stored.size,
        "width": 800,
        "height": 600,
    }


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"%PDF-1.7" + bytes(20_000), "document.type"),
        (photo()[:30_000], "document.corrupt"),
        (photo(320, 240), "document.resolution"),
        (frame(), "document.too_small"),
    ],
)
def test_a_bad_image_is_refused_recorded_and_nothing_is_kept(data: bytes, code: str) -> None:
    # given a bad file uploaded
    world = World()
    flow_id = world.open()
    raw = world.raw_upload(flow_id, DocumentKind.ID_BACK, data)
    # when
    error = refused(lambda: world.service.complete_upload(flow_id, OWNER, DocumentKind.ID_BACK, raw))
    # then
    assert error.code == code
    assert world.store.keys() == []
    assert world.service.flow(flow_id, OWNER).documents == {}
    [entry] = world.evidence.entries(flow_id)
    assert entry.kind is EvidenceKind.UPLOAD_REFUSED
    assert entry.public == {"document": "id_back", "code": code, "status": error.status}


def test_an_id_front_without_a_portrait_is_refused_and_not_kept() -> None:
    # given an engine that sees no face
    world = World()
    world.faces.faces = []
    flow_id = world.open()
    raw = world.raw_upload(flow_id, DocumentKind.ID_FRONT, photo())
    # when
    error = refused(lambda: world.service.complete_upload(flow_id, OWNER, DocumentKind.ID_FRONT, raw))
    # then
    assert error.code == "id_card.no_portrait"
    assert world.store.keys() == []
    assert world.evidence_kinds(flow_id) == ["consent_given", "upload_refused"]


def test_another_flows_upload_is_not_yours_and_left_alone() -> None:
    # given a photo uploaded to another flow
    world = World()
    mine, theirs = world.open(), world.open("dealer-2")
    raw = world.raw_upload(theirs, DocumentKind.ID_BACK, photo(), owner="dealer-2")
    # when
    error = refused(lambda: world.service.complete_upload(mine, OWNER, DocumentKind.ID_BACK, raw))
    # then
    assert isinstance(error, Forbidden)
    assert error.code == "document.not_yours"
    assert world.store.keys() == [raw]


def test_a_replaced_photo_is_deleted_and_must_be_read_again() -> None:
    # given an ID front uploaded and read
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id)
    first = world.upload(flow_id, DocumentKind.ID_FRONT, photo(seed=0))
    world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    # when another photo replaces it
    second = world.upload(flow_id, DocumentKind.ID_FRONT, photo(seed=5))
    # then only the new one is kept and its reading is due
    flow = world.service.flow(flow_id, OWNER)
    assert second != first
    assert world.store.keys() == [second]
    assert flow.documents == {"id_front": second}
    assert CheckName.OCR_ID_FRONT not in flow.checks


def test_the_id_card_photo_cannot_be_replaced_once_a_face_check_started_but_the_back_can() -> None:
    # given a flow with a failed face attempt
    world = World()
    flow_id = world.ready()
    world.liveness.live = False
    world.attempt(flow_id)
    # when, then
    for kind in (DocumentKind.ID_FRONT, DocumentKind.AUTHORIZATION_LETTER, DocumentKind.OWNER_ID_FRONT):
        locked = refused(lambda kind=kind: world.service.presign_upload(flow_id, OWNER, kind, "image/jpeg"))
        assert isinstance(locked, Conflict)
        assert locked.code == "flow.documents_locked"
    assert world.upload(flow_id, DocumentKind.ID_BACK)


# --- OCR --------------------------------------------------------------------------------------


def test_a_reading_that_agrees_passes_the_check_and_is_recorded_with_personal_fields_sealed() -> None:
    # given an uploaded ID front whose reading agrees with the typed identity
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    # when
    outcome = world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    # then
    assert outcome.agreed
    assert outcome.reading["name"] == NAME
    assert outcome.reading["id_number"] == NUMBER
    assert {"name", "id_number", "birth_date", "address"} <= set(outcome.fields_read)
    assert world.service.flow(flow_id, OWNER).checks[CheckName.OCR_ID_FRONT] is CheckVerdict.PASSED
    read, checked = world.evidence.entries(flow_id)[-2:]
    assert read.kind is EvidenceKind.OCR_READ
    assert read.public["engine"] == world.ocr.name
    assert read.personal["id_number"] == NUMBER
    assert NUMBER not in str(read.public)
    [(stored, sealed)] = [s for s in world.evidence.stored[flow_id] if s[0].kind is EvidenceKind.OCR_READ]
    assert stored.personal == {}
    assert sealed is not None
    assert checked.kind is EvidenceKind.OCR_CROSS_CHECKED
    assert checked.public == {"document": "id_front", "agreed": True, "mismatches": []}


def test_a_mismatching_number_is_refused_with_the_positions_that_differ() -> None:
    # given a typed number that differs from the card's at positions 15, 16 and 18
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id, number=OTHER_NUMBER)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    # when
    error = refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT))
    # then
    assert isinstance(error, InvalidField)
    assert (error.code, error.field, error.details) == (
        "ocr.mismatch",
        "id_number",
        {"positions": [15, 16, 18]},
    )
    assert CheckName.OCR_ID_FRONT not in world.service.flow(flow_id, OWNER).checks
    checked = world.evidence.entries(flow_id)[-1]
    assert checked.public["agreed"] is False
    assert checked.public["mismatches"] == [
        {"field": "id_number", "code": "ocr.mismatch", "details": {"positions": [15, 16, 18]}}
    ]


def test_an_unreadable_photo_names_every_field_it_could_not_confirm() -> None:
    # given a photo the engine finds no text on
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    world.ocr.lines = []
    # when
    error = refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT))
    # then
    assert isinstance(error, ValidationErrors)
    assert [(e.field, e.code) for e in error.errors] == [
        ("name", "ocr.unreadable"),
        ("id_number", "ocr.unreadable"),
    ]
    assert world.evidence.entries(flow_id)[-2].public["lines"] == 0


def test_reading_needs_the_photo_and_the_identity_first() -> None:
    world = World()
    flow_id = world.open()
    # when there is no photo, then
    assert refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)).code == (
        "flow.document_missing"
    )
    # when there is a photo but no identity, then
    world.upload(flow_id, DocumentKind.ID_FRONT)
    out_of_order = refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT))
    assert out_of_order.code == "flow.step_out_of_order"
    # when the kind is not read at all, then
    assert (
        refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ONSITE_PHOTO)).code
        == "ocr.kind"
    )


def test_an_expired_id_card_back_is_refused() -> None:
    # given a back whose validity ended before today
    world = World()
    flow_id = world.open()
    world.upload(flow_id, DocumentKind.ID_BACK)
    world.ocr.say("签发机关北京市公安局东城分局", "有效期限2010.01.01-2020.01.01")
    # when
    error = refused(lambda: world.service.read_document(flow_id, OWNER, DocumentKind.ID_BACK))
    # then
    assert (error.code, error.details) == ("id_card.expired", {"valid_until": date(2020, 1, 1).isoformat()})


@pytest.mark.parametrize(
    ("printed", "validity"),
    [("2015.06.01-2035.06.01", "2035-06-01"), ("2015.06.01-长期", "permanent")],
    ids=["dated", "permanent"],
)
def test_the_validity_read_from_the_back_goes_with_the_identity_and_survives_a_retyped_identity(
    printed: str, validity: str
) -> None:
    # given a typed identity and its ID back uploaded
    world = World()
    flow_id = world.open()
    world.type_identity(flow_id)
    world.upload(flow_id, DocumentKind.ID_BACK)
    world.ocr.say("签发机关北京市公安局东城分局", f"有效期限{printed}")
    # when the back is read
    world.service.read_document(flow_id, OWNER, DocumentKind.ID_BACK)
    # then the identity carries the validity read
    identity = world.service.flow(flow_id, OWNER).identity
    assert identity is not None
    assert identity.id_validity == validity
    assert identity.id_permanent is (validity == "permanent")
    # and retyping the same document keeps it; another document type does not
    world.type_identity(flow_id, name="张三")
    assert (world.service.flow(flow_id, OWNER).identity or identity).id_validity == validity
    passport = TypedIdentity(id_type="passport", id_number="E12345678", name="SMITH JOHN")
    world.service.set_identity(flow_id, OWNER, passport)
    assert (world.service.flow(flow_id, OWNER).identity or identity).id_validity is None


def test_a_passport_is_not_read_by_ocr_but_sent_to_a_reviewer_at_once() -> None:
    # given a passport typed and its data page uploaded
    world = World()
    flow_id = world.open()
    passport = TypedIdentity(id_type="passport", id_number="E12345678", name="SMITH JOHN")
    world.service.set_identity(flow_id, OWNER, passport)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    # when it is read
    outcome = world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    # then no OCR ran, a case is open and the flow waits for the reviewer
    assert outcome.review_case_id is not None
    assert (outcome.agreed, outcome.reading) == (False, {})
    flow = world.service.flow(flow_id, OWNER)
    assert flow.status.value == "in_review"
    assert flow.checks[CheckName.OCR_ID_FRONT] is CheckVerdict.IN_REVIEW
    case, _ = world.service.review_case(outcome.review_case_id)
    assert case.reason.value == "document_not_machine_readable"
    assert case.summary["id_type"] == "passport"


def test_the_owners_id_card_is_checked_against_the_owners_typed_identity() -> None:
    # given the owner's ID card photo uploaded
    world = World()
    flow_id = world.open()
    world.upload(flow_id, DocumentKind.OWNER_ID_FRONT)
    # when the owner's identity agrees, then the check passes
    world.service.check_owner_id(
        flow_id, OWNER, TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME)
    )
    assert world.service.flow(flow_id, OWNER).checks[CheckName.OCR_OWNER_ID_FRONT] is CheckVerdict.PASSED
    # when it does not, then the mismatch names the owner's field
    other = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name=NAME)
    error = refused(lambda: world.service.check_owner_id(flow_id, OWNER, other))
    assert (error.code, error.field) == ("ocr.mismatch", "owner.id_number")
    assert world.evidence_kinds(flow_id)[-2:] == ["ocr_read", "ocr_cross_checked"]
