"""The documents bucket (``DocumentStore``): presigned POSTs in, SSE-KMS objects at rest.

Every object written is encrypted with the personal-data KMS key. A presigned POST's policy bounds
the size and the content type; botocore adds the exact bucket and key conditions itself.
"""

from __future__ import annotations

from typing import Any

from chalicelib.verification.domain.documents import PostForm, missing, too_large
from chalicelib.verification.ports import DocumentStore


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

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._kms_key_id,
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def delete_under(self, prefix: str) -> int:
        deleted = 0
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted
