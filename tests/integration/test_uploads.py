"""Uploads against the embedded S3 and KMS: presign, (simulated) client upload, complete."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from chalicelib.adapters.s3.documents import S3DocumentStore
from chalicelib.kernel.errors import DomainError, Forbidden, NotFound
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.uploads import PRESIGN_EXPIRES_SECONDS, UploadService
from tests.face_photos import FACES, local_face_engine_missing

FLOW = "flow-7f3a"


def photo(width: int = 800, height: int = 600) -> Image.Image:
    """Noise over gradients: a photo-sized file with no face in it."""
    noise = Image.effect_noise((width, height), 40)
    ramp = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", [noise, ramp, Image.blend(noise, ramp, 0.5)])


def encoded(im: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def s3() -> Any:
    from chalicelib.core.aws import client

    return client("s3")


def bucket() -> str:
    from chalicelib.core.settings import get_settings

    return get_settings().documents_bucket


def service(face_engine: Any = None) -> UploadService:
    from chalicelib.core.settings import get_settings

    return UploadService(S3DocumentStore(s3(), bucket(), get_settings().pii_key_alias), face_engine)


def keys(prefix: str) -> list[str]:
    listed = s3().list_objects_v2(Bucket=bucket(), Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def upload(uploads: UploadService, kind: DocumentKind, data: bytes, flow: str = FLOW) -> str:
    """What the client does with the presigned POST (moto in-process cannot receive a real HTTP POST)."""
    post = uploads.presign(flow, kind, "image/jpeg")
    s3().put_object(Bucket=bucket(), Key=post.key, Body=data, ContentType=post.fields["Content-Type"])
    return post.key


def refused(uploads: UploadService, kind: DocumentKind, key: str, flow: str = FLOW) -> DomainError:
    with pytest.raises(DomainError) as caught:
        uploads.complete(flow, kind, key)
    return caught.value


def test_presign_binds_key_size_type_and_expiry(aws: None) -> None:
    # When the client asks to upload the front of an ID card
    post = service().presign(FLOW, DocumentKind.ID_FRONT, "image/png")
    # Then the key sits under the flow and the kind, and the signed policy holds every condition
    assert post.key.startswith(f"raw/{FLOW}/id_front/")
    assert post.url
    assert post.fields["key"] == post.key
    assert post.fields["Content-Type"] == "image/png"
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 10 * 1024, 10 * 1024 * 1024] in conditions
    assert ["starts-with", "$Content-Type", "image/"] in conditions
    assert {"key": post.key} in conditions
    assert {"bucket": bucket()} in conditions
    assert post.expires_in == PRESIGN_EXPIRES_SECONDS == 300


def test_presign_refuses_a_type_that_is_not_a_photo(aws: None) -> None:
    with pytest.raises(DomainError) as caught:
        service().presign(FLOW, DocumentKind.ID_FRONT, "application/pdf")
    assert caught.value.code == "document.type"


def test_complete_stores_the_clean_photo_encrypted_and_deletes_the_raw_upload(aws: None) -> None:
    # Given an ID card photo uploaded with a presigned POST
    uploads = service()
    raw_key = upload(uploads, DocumentKind.ID_FRONT, encoded(photo()))
    # When the client reports the upload complete
    stored = uploads.complete(FLOW, DocumentKind.ID_FRONT, raw_key)
    # Then the clean JPEG is kept under the flow with SSE-KMS, and the raw upload is gone
    assert stored.key == f"documents/{FLOW}/id_front/{stored.sha256}.jpg"
    head = s3().head_object(Bucket=bucket(), Key=stored.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"]
    assert head["ContentLength"] == stored.size
    assert head["ContentType"] == "image/jpeg"
    assert keys("raw/") == []


def test_a_refused_upload_leaves_nothing_behind(aws: None) -> None:
    # Given a text file uploaded as if it were a photo
    uploads = service()
    raw_key = upload(uploads, DocumentKind.ID_BACK, b"not a photo\n" * 2000)
    # When it is completed / Then it is refused, nothing is stored and the raw upload is deleted
    assert refused(uploads, DocumentKind.ID_BACK, raw_key).code == "document.type"
    assert keys("documents/") == []
    assert keys("raw/") == []


def test_another_flows_key_is_not_yours_and_is_left_alone(aws: None) -> None:
    # Given a photo uploaded for another flow
    uploads = service()
    theirs = upload(uploads, DocumentKind.ID_FRONT, encoded(photo()), flow="flow-other")
    # When this flow tries to complete it, or completes it as another kind
    error = refused(uploads, DocumentKind.ID_FRONT, theirs)
    own = upload(uploads, DocumentKind.ID_FRONT, encoded(photo()))
    wrong_kind = refused(uploads, DocumentKind.ID_BACK, own)
    # Then both are refused as not yours, and the other flow's upload is untouched
    assert isinstance(error, Forbidden)
    assert (error.code, wrong_kind.code) == ("document.not_yours", "document.not_yours")
    assert theirs in keys("raw/")


def test_a_missing_upload_is_not_found(aws: None) -> None:
    uploads = service()
    key = uploads.presign(FLOW, DocumentKind.ID_FRONT, "image/jpeg").key  # never uploaded
    error = refused(uploads, DocumentKind.ID_FRONT, key)
    assert isinstance(error, NotFound)
    assert error.code == "document.missing"


# --- photos of the person, with the real local face engine -------------------------------------------

_faces_missing = local_face_engine_missing("group_two_people.jpg")
needs_faces = pytest.mark.skipif(_faces_missing is not None, reason=str(_faces_missing))


@pytest.fixture(scope="module")
def engine() -> Any:
    from chalicelib.adapters.faces.local import LocalFaceEngine

    engine = LocalFaceEngine()
    engine.warm_up()
    return engine


def at_least(data: bytes, side: int = 640) -> bytes:
    """The photo upscaled so its shorter side is at least ``side`` (the selfie minimum is 480)."""
    im = Image.open(io.BytesIO(data))
    scale = side / min(im.size)
    if scale <= 1:
        return data
    return encoded(im.convert("RGB").resize((round(im.width * scale), round(im.height * scale))))


@needs_faces
def test_a_live_capture_without_a_face_is_refused(aws: None, engine: Any) -> None:
    uploads = service(engine)
    raw_key = upload(uploads, DocumentKind.LIVE_CAPTURE, encoded(photo(640, 640)))
    error = refused(uploads, DocumentKind.LIVE_CAPTURE, raw_key)
    assert (error.code, error.field) == ("face.none", "file")
    assert keys("documents/") == []
    assert keys("raw/") == []


@needs_faces
def test_a_live_capture_with_two_faces_is_refused(aws: None, engine: Any) -> None:
    uploads = service(engine)
    raw_key = upload(
        uploads, DocumentKind.LIVE_CAPTURE, at_least((FACES / "group_two_people.jpg").read_bytes())
    )
    assert refused(uploads, DocumentKind.LIVE_CAPTURE, raw_key).code == "face.multiple"
    assert keys("documents/") == []
    assert keys("raw/") == []


@needs_faces
def test_a_live_capture_with_one_face_is_accepted(aws: None, engine: Any) -> None:
    uploads = service(engine)
    raw_key = upload(uploads, DocumentKind.LIVE_CAPTURE, at_least((FACES / "obama_1.jpg").read_bytes()))
    stored = uploads.complete(FLOW, DocumentKind.LIVE_CAPTURE, raw_key)
    assert stored.key.startswith(f"documents/{FLOW}/live_capture/")
    assert keys("documents/") == [stored.key]
    assert keys("raw/") == []
