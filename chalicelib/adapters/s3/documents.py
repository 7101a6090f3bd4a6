"""The documents bucket (``DocumentStore``): presigned POSTs in, SSE-KMS objects at rest.

Every object written is encrypted with the personal-data KMS key. A presigned POST's policy bounds
the size and the content type; botocore adds the exact bucket and key conditions itself.

The bucket is versioned (``chalicelib.core.resources``): a delete removes every version of the object and
its delete markers, and an overwrite removes the versions it replaced, so a purged or replaced photo
leaves nothing behind (the lifecycle rules expire any noncurrent version missed within a day).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.verification.domain.documents import PostForm, missing, too_large
from chalicelib.verification.ports import DocumentStore

#: The error codes of a ``HeadObject`` on a missing key (a HEAD answer has no body: the status stands).
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})

#: Most versions one ``DeleteObjects`` call removes.
_DELETE_BATCH = 1000


class S3DocumentStore(DocumentStore):
    def __init__(self, s3: Any, bucket: str, kms_key_id: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._kms_key_id = kms_key_id

    def presign_post(
        self, key: str, content_type: str, min_bytes: int, max_bytes: int, expires_in: int
    ) -> PostForm:
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                ["content-length-range", min_bytes, max_bytes],
                ["starts-with", "$Content-Type", "image/"],
            ],
            ExpiresIn=expires_in,
        )
        return PostForm(url=post["url"], fields={str(k): str(v) for k, v in post["fields"].items()})

    def presign_get(self, key: str, expires_in: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def get(self, key: str, max_bytes: int) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.NoSuchKey as exc:
            raise missing() from exc
        size = int(response.get("ContentLength", 0))
        if size > max_bytes:  # never read an oversized body
            response["Body"].close()
            raise too_large(size, max_bytes)
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        """A ``HeadObject``: the object's metadata only, its body neither sent nor decrypted. A missing key
        answers 404 (the caller may list the bucket; without ``s3:ListBucket`` S3 would answer 403, which
        is raised as any other failure)."""
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def put(self, key: str, body: bytes, content_type: str) -> None:
        written = self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._kms_key_id,
        )
        version = written.get("VersionId")
        if version and version != "null":  # a versioned bucket: an overwritten photo leaves no version behind
            self._delete_versions(self._versions(key, exact=True), keep=version)

    def delete(self, key: str) -> None:
        """Delete every version of ``key`` (and its delete markers): on a versioned bucket a plain delete
        only hides the object behind a marker, and the photo would stay."""
        self._delete_versions(self._versions(key, exact=True))

    def delete_under(self, prefix: str) -> int:
        """Delete every version of every object under ``prefix``; the number of objects (keys) deleted."""
        return self._delete_versions(self._versions(prefix, exact=False))

    def _versions(self, prefix: str, *, exact: bool) -> Iterator[tuple[str, str | None, bool]]:
        """(key, version id, is a delete marker) of each version under ``prefix`` (of ``prefix`` itself
        when ``exact``). An unversioned bucket lists each object once, as version "null"."""
        pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self._bucket, Prefix=prefix)
        for page in pages:
            for entries, marker in ((page.get("Versions", []), False), (page.get("DeleteMarkers", []), True)):
                for item in entries:
                    if not exact or item["Key"] == prefix:
                        yield str(item["Key"]), item.get("VersionId"), marker

    def _delete_versions(
        self, versions: Iterable[tuple[str, str | None, bool]], keep: str | None = None
    ) -> int:
        """Delete the listed versions in batches of 1,000 (S3's limit); the number of objects (distinct keys,
        delete markers aside) that lost a version."""
        objects: set[str] = set()
        batch: list[dict[str, str]] = []
        for key, version, marker in versions:
            if version == keep and keep is not None:
                continue
            if not marker:
                objects.add(key)
            batch.append({"Key": key, "VersionId": version} if version else {"Key": key})
            if len(batch) == _DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)
        return len(objects)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        response = self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"{len(errors)} of {len(batch)} object versions were not deleted "
                f"(first: {first.get('Code')}: {first.get('Message')})"
            )
