"""Document uploads (证件及人像照片上传): presigned S3 POST in, validated SSE-KMS object out.

The client uploads straight to the bucket with a short-lived presigned POST whose policy binds the key
to the flow and the document kind and bounds the size and content type: nothing passes through Lambda
and nothing is kept on the dealer's device. ``complete`` then validates the raw object
(``domain.documents.validate_image``, plus the selfie rule for photos of the person), stores the clean
JPEG under the flow encrypted with the personal-data KMS key, and deletes the raw upload whether the
photo was accepted or refused, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.kernel.errors import InvalidField
from chalicelib.verification.domain.documents import (
    ACCEPTED_CONTENT_TYPES,
    FIELD,
    CleanImage,
    DocumentKind,
    limits_for,
    missing,
    not_yours,
    too_large,
    validate_image,
    wrong_type,
)
from chalicelib.verification.domain.faces import (
    DEFAULT_MAX_PITCH,
    DEFAULT_MAX_YAW,
    DEFAULT_MIN_FACE_PX,
    check_selfie,
)
from chalicelib.verification.ports import FaceEngine

#: Upper bound when reading back a stored (already re-encoded) document.
MAX_STORED_BYTES = 20 * 1024 * 1024


#: Seconds a presigned upload stays valid.
PRESIGN_EXPIRES_SECONDS = 300


#: Flow ids become one segment of an S3 key: no slashes, nothing to escape.
_FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class PresignedUpload(BaseModel):
    """What the client needs to POST the photo to S3 (a multipart form: ``fields`` then ``file``)."""

    model_config = ConfigDict(frozen=True)

    url: str
    fields: dict[str, str]
    key: str
    expires_in: int
    max_bytes: int


class StoredDocument(BaseModel):
    """A validated photo kept under its flow."""

    model_config = ConfigDict(frozen=True)

    flow_id: str
    kind: DocumentKind
    key: str
    size: int
    sha256: str
    width: int
    height: int


def _flow(flow_id: str) -> str:
    if not _FLOW_ID.match(flow_id):
        raise InvalidField(
            "document.flow_id",
            "办理流程编号无效",
            "The flow id is invalid",
            field="flow_id",
        )
    return flow_id


def raw_prefix(flow_id: str, kind: DocumentKind) -> str:
    return f"raw/{flow_id}/{kind.value}/"


class UploadService:
    """Presigns uploads and turns a raw upload into a stored, validated document."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        kms_key_id: str,
        face_engine: FaceEngine | None,
        *,
        min_face_px: int = DEFAULT_MIN_FACE_PX,
        max_yaw: float = DEFAULT_MAX_YAW,
        max_pitch: float = DEFAULT_MAX_PITCH,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._kms_key_id = kms_key_id
        self._faces = face_engine
        self._min_face_px = min_face_px
        self._max_yaw = max_yaw
        self._max_pitch = max_pitch

    def presign(self, flow_id: str, kind: DocumentKind, content_type: str) -> PresignedUpload:
        """A presigned POST for one photo of ``kind`` in ``flow_id``, valid for 5 minutes."""
        if content_type not in ACCEPTED_CONTENT_TYPES:
            raise wrong_type()
        limits = limits_for(kind)
        key = f"{raw_prefix(_flow(flow_id), kind)}{uuid.uuid4().hex}"
        # botocore adds the exact {"bucket"} and {"key"} conditions itself.
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                ["content-length-range", limits.min_bytes, limits.max_bytes],
                ["starts-with", "$Content-Type", "image/"],
            ],
            ExpiresIn=PRESIGN_EXPIRES_SECONDS,
        )
        return PresignedUpload(
            url=post["url"],
            fields={str(k): str(v) for k, v in post["fields"].items()},
            key=key,
            expires_in=PRESIGN_EXPIRES_SECONDS,
            max_bytes=limits.max_bytes,
        )

    def complete(self, flow_id: str, kind: DocumentKind, key: str) -> StoredDocument:
        """Validate the raw upload at ``key``, store the clean JPEG, delete the raw upload.

        Refusals (``document.*``, ``face.*``) store nothing; the raw upload is deleted either way.
        """
        prefix = raw_prefix(_flow(flow_id), kind)
        if not (key.startswith(prefix) and _UPLOAD_ID.match(key[len(prefix) :])):
            raise not_yours()  # another flow's key is left alone
        try:
            clean = self._validate(kind, self._fetch(key, limits_for(kind).max_bytes))
            stored_key = f"documents/{flow_id}/{kind.value}/{clean.sha256}.jpg"
            self._s3.put_object(
                Bucket=self._bucket,
                Key=stored_key,
                Body=clean.jpeg,
                ContentType="image/jpeg",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self._kms_key_id,
            )
        finally:
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        return StoredDocument(
            flow_id=flow_id,
            kind=kind,
            key=stored_key,
            size=len(clean.jpeg),
            sha256=clean.sha256,
            width=clean.width,
            height=clean.height,
        )

    def store(self, flow_id: str, kind: DocumentKind, jpeg: bytes, width: int, height: int) -> StoredDocument:
        """Keep a photo the server itself produced (e.g. the live capture a liveness check chose)."""
        digest = hashlib.sha256(jpeg).hexdigest()
        key = f"documents/{_flow(flow_id)}/{kind.value}/{digest}.jpg"
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=jpeg,
            ContentType="image/jpeg",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._kms_key_id,
        )
        return StoredDocument(
            flow_id=flow_id, kind=kind, key=key, size=len(jpeg), sha256=digest, width=width, height=height
        )

    def read(self, key: str) -> bytes:
        """A stored document's bytes (``document.missing`` when it is gone)."""
        return self._fetch(key, MAX_STORED_BYTES)

    def presign_get(self, key: str, expires_in: int = 300) -> str:
        """A short-lived link to a stored document (for a reviewer's console)."""
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def purge(self, flow_id: str) -> int:
        """Delete every stored photo and raw upload of ``flow_id``; the number of objects deleted."""
        deleted = 0
        for prefix in (f"documents/{_flow(flow_id)}/", f"raw/{_flow(flow_id)}/"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        return deleted

    def _fetch(self, key: str, max_bytes: int) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.NoSuchKey as exc:
            raise missing() from exc
        size = int(response.get("ContentLength", 0))
        if size > max_bytes:  # the policy bounds it already; never read an oversized body
            response["Body"].close()
            raise too_large(size, max_bytes)
        return bytes(response["Body"].read())

    def _validate(self, kind: DocumentKind, raw: bytes) -> CleanImage:
        clean = validate_image(raw, limits_for(kind))
        if kind.needs_face and self._faces is not None:
            faces = self._faces.detect(clean.jpeg)
            check_selfie(
                faces,
                (clean.width, clean.height),
                field=FIELD,
                min_face_px=self._min_face_px,
                max_yaw=self._max_yaw,
                max_pitch=self._max_pitch,
            )
        return clean
