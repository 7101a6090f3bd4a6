"""Deletes that delete, on the versioned documents bucket the bootstrap creates (as infra does): a purged
flow, a replaced photo and a refused upload leave no version and no delete marker of the photo behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.s3 import documents as s3_documents
from chalicelib.adapters.s3.documents import S3DocumentStore
from chalicelib.core import deps
from chalicelib.core.settings import get_settings
from chalicelib.verification.domain.documents import DocumentKind
from tests.integration.test_registration_flow import PHONE, REG, sms_code, vins
from tests.integration.test_verification_api import bucket, call, open_flow, s3, upload
from tests.synthetic_documents import id_back

__all__ = ["vins"]  # the fixture, shared with the registration tests

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def person(token: Callable[..., str]) -> Headers:
    def headers(subject: str = "owner-versions") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token('owner', subject=subject)}",
            "Content-Type": "application/json",
        }

    return headers


def versions(prefix: str) -> list[tuple[str, str]]:
    """(key, version id) of every version and every delete marker under ``prefix``."""
    listed = s3().list_object_versions(Bucket=bucket(), Prefix=prefix)
    return sorted(
        (item["Key"], item["VersionId"])
        for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    )


def other_photo() -> bytes:
    """An ID back that differs from ``id_back()`` in its bytes (and so in its stored key)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(id_back())).convert("RGB")
    image.putpixel((0, 0), (255, 0, 0))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def stored_key(flow_id: str, kind: DocumentKind, doc: dict[str, Any]) -> str:
    """Where a completed upload is kept (``UploadService``: by the clean JPEG's hash)."""
    return f"documents/{flow_id}/{kind.value}/{doc['sha256']}.jpg"


def expire_flow(flow_id: str, owner: str) -> None:
    verification = deps.verification_service()
    flow = verification.flow(flow_id, owner)
    past = datetime.now(UTC) - timedelta(minutes=1)
    verification.flows._flows.save(flow.model_copy(update={"expires_at": past, "version": flow.version + 1}))


def test_the_local_documents_bucket_is_versioned(aws: None) -> None:
    assert s3().get_bucket_versioning(Bucket=bucket())["Status"] == "Enabled"


def test_purging_an_abandoned_flow_leaves_no_version_of_its_photos(api: Any, person: Headers) -> None:
    me = person()
    flow_id = open_flow(api, me)
    status, doc = upload(api, me, flow_id, DocumentKind.ID_BACK, id_back())
    assert status == 201, doc
    # Given older versions and a delete marker beside the photo (e.g. written before deletes removed them)
    client = s3()
    client.put_object(Bucket=bucket(), Key=stored_key(flow_id, DocumentKind.ID_BACK, doc), Body=b"older")
    client.put_object(Bucket=bucket(), Key=f"documents/{flow_id}/selfie/gone.jpg", Body=b"x")
    client.delete_object(Bucket=bucket(), Key=f"documents/{flow_id}/selfie/gone.jpg")
    client.put_object(Bucket=bucket(), Key=f"raw/{flow_id}/id_back/leftover", Body=b"y")
    assert len(versions(f"documents/{flow_id}/")) >= 4
    # When the flow expires and the purge schedule runs
    expire_flow(flow_id, "owner-versions")
    assert deps.verification_service().purge_expired() == 1
    # Then no version and no delete marker of anything of the flow is left
    assert versions(f"documents/{flow_id}/") == []
    assert versions(f"raw/{flow_id}/") == []


def test_purging_an_abandoned_registration_leaves_no_version_of_its_photos(
    api: Any, person: Headers, vins: list[str]
) -> None:
    me = person()
    status, reg = call(api, "post", REG, me, {"vin": vins[3]})
    assert status == 201, reg
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    assert status == 200, reg
    flow_id = reg["flow_id"]
    for photo in (id_back(), other_photo()):  # a replaced photo on the way
        status, doc = upload(api, me, flow_id, DocumentKind.ID_BACK, photo)
        assert status == 201, doc
    assert versions(f"documents/{flow_id}/")
    service = deps.registration_service()
    stored = service.store.get(reg_id)
    assert stored is not None
    past = datetime.now(UTC) - timedelta(minutes=1)
    service.store.save(stored.model_copy(update={"expires_at": past, "version": stored.version + 1}))
    expire_flow(flow_id, "owner-versions")
    assert service.purge_abandoned()["flows"] == 1
    assert versions(f"documents/{flow_id}/") == []
    assert versions(f"raw/{flow_id}/") == []


def test_replacing_an_upload_leaves_only_the_new_photo_in_a_single_version(api: Any, person: Headers) -> None:
    me = person()
    flow_id = open_flow(api, me)
    status, first = upload(api, me, flow_id, DocumentKind.ID_BACK, id_back())
    assert status == 201, first
    status, again = upload(api, me, flow_id, DocumentKind.ID_BACK, id_back())  # the same photo again
    assert (status, again["sha256"]) == (201, first["sha256"])
    first_key = stored_key(flow_id, DocumentKind.ID_BACK, first)
    assert [key for key, _ in versions(f"documents/{flow_id}/")] == [first_key]
    status, second = upload(api, me, flow_id, DocumentKind.ID_BACK, other_photo())
    assert status == 201, second
    second_key = stored_key(flow_id, DocumentKind.ID_BACK, second)
    assert second_key != first_key
    left = versions(f"documents/{flow_id}/")
    assert [key for key, _ in left] == [second_key], left
    assert versions(f"raw/{flow_id}/") == []  # the raw uploads are gone with every version


def test_a_refused_upload_leaves_no_version_of_the_raw_upload(api: Any, person: Headers) -> None:
    me = person()
    flow_id = open_flow(api, me)
    status, refused = upload(api, me, flow_id, DocumentKind.ID_BACK, b"not an image at all" * 100)
    assert 400 <= status < 500, refused
    assert versions(f"raw/{flow_id}/") == []
    assert versions(f"documents/{flow_id}/") == []


def test_delete_under_removes_every_version_in_batches(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_documents, "_DELETE_BATCH", 3)  # several DeleteObjects calls
    settings = get_settings()
    store = S3DocumentStore(s3(), settings.documents_bucket, settings.pii_key_alias)
    client = s3()
    for n in range(3):
        for body in (b"a", b"b"):
            client.put_object(Bucket=bucket(), Key=f"documents/f1/kind/{n}.jpg", Body=body)
    client.delete_object(Bucket=bucket(), Key="documents/f1/kind/0.jpg")  # a delete marker on top
    client.put_object(Bucket=bucket(), Key="documents/f10/kind/kept.jpg", Body=b"c")  # another flow
    assert len(versions("documents/f1/")) == 7
    assert store.delete_under("documents/f1/") == 3
    assert versions("documents/f1/") == []
    assert [key for key, _ in versions("documents/f10/")] == ["documents/f10/kind/kept.jpg"]


def test_delete_removes_every_version_of_that_key_only(aws: None) -> None:
    settings = get_settings()
    store = S3DocumentStore(s3(), settings.documents_bucket, settings.pii_key_alias)
    client = s3()
    for body in (b"1", b"2", b"3"):
        client.put_object(Bucket=bucket(), Key="raw/f2/id_back/abc", Body=body)
    client.put_object(Bucket=bucket(), Key="raw/f2/id_back/abcd", Body=b"neighbour")
    store.delete("raw/f2/id_back/abc")
    assert [key for key, _ in versions("raw/f2/")] == ["raw/f2/id_back/abcd"]


def test_an_overwrite_keeps_only_the_written_version(aws: None) -> None:
    settings = get_settings()
    store = S3DocumentStore(s3(), settings.documents_bucket, settings.pii_key_alias)
    store.put("documents/f3/selfie/x.jpg", b"old", "image/jpeg")
    store.put("documents/f3/selfie/x.jpg", b"new", "image/jpeg")
    [(key, version)] = versions("documents/f3/")
    body = s3().get_object(Bucket=bucket(), Key=key, VersionId=version)["Body"].read()
    assert body == b"new"
