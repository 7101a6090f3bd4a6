"""Document uploads (证件及人像照片上传): presigned POST in, validated, encrypted object out.

The client uploads straight to the document store with a short-lived presigned POST whose policy
binds the key to the flow and the document kind and bounds the size and content type: nothing passes
through Lambda and nothing is kept on the dealer's device. ``complete`` then validates the raw object
(``domain.documents.validate_image``: magic bytes, size, pixels, re-encode; plus the selfie rule for
photos of the person), stores the clean JPEG under the flow (the store encrypts it with the
personal-data key), and deletes the raw upload whether the photo was accepted or refused, so a
refusal leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable

from chalicelib.kernel.errors import DomainError, InvalidField
from chalicelib.verification.domain.documents import (
    ACCEPTED_CONTENT_TYPES,
    FIELD,
    CleanImage,
    DocumentKind,
    limits_for,
    not_yours,
    validate_image,
    wrong_type,
)
from chalicelib.verification.domain.engines import EngineUnavailable
from chalicelib.verification.domain.faces import (
    DEFAULT_MAX_PITCH,
    DEFAULT_MAX_YAW,
    DEFAULT_MIN_FACE_PX,
    check_selfie,
)
from chalicelib.verification.ports import DocumentStore, FaceEngine
from chalicelib.verification.views import PresignedUpload, StoredDocument

#: Upper bound when reading back a stored (already re-encoded) document.
MAX_STORED_BYTES = 20 * 1024 * 1024


#: Seconds a presigned upload stays valid.
PRESIGN_EXPIRES_SECONDS = 300


#: Flow ids become one segment of an S3 key: no slashes, nothing to escape.
_FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


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
        store: DocumentStore,
        face_engine: FaceEngine | None,
        *,
        min_face_px: int = DEFAULT_MIN_FACE_PX,
        max_yaw: float = DEFAULT_MAX_YAW,
        max_pitch: float = DEFAULT_MAX_PITCH,
    ) -> None:
        self._store = store
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
        form = self._store.presign_post(
            key, content_type, limits.min_bytes, limits.max_bytes, PRESIGN_EXPIRES_SECONDS
        )
        return PresignedUpload(
            url=form.url,
            fields=form.fields,
            key=key,
            expires_in=PRESIGN_EXPIRES_SECONDS,
            max_bytes=limits.max_bytes,
        )

    def complete(
        self,
        flow_id: str,
        kind: DocumentKind,
        key: str,
        inspect: Callable[[bytes], object] | None = None,
        *,
        discard_raw: bool = True,
    ) -> StoredDocument:
        """Validate the raw upload at ``key`` (and ``inspect`` the clean JPEG, which raises to refuse it),
        store the clean JPEG, delete the raw upload (unless ``discard_raw`` is False: the caller deletes
        it once it has recorded the photo, so that a failure in between leaves it to complete again).

        Refusals (``document.*``, ``face.*``) store nothing and delete the raw upload. It stays, to be
        completed again, when a dependency failed: an engine that could not answer
        (``engine.unavailable``), the store or the bucket unavailable.
        """
        prefix = raw_prefix(_flow(flow_id), kind)
        if not (key.startswith(prefix) and _UPLOAD_ID.match(key[len(prefix) :])):
            raise not_yours()  # another flow's key is left alone
        keep_raw = False
        try:
            clean = self._validate(kind, self._store.get(key, limits_for(kind).max_bytes))
            if inspect is not None:
                inspect(clean.jpeg)
            stored_key = f"documents/{flow_id}/{kind.value}/{clean.sha256}.jpg"
            self._store.put(stored_key, clean.jpeg, "image/jpeg")
        except EngineUnavailable:
            keep_raw = True
            raise
        except DomainError as err:
            keep_raw = err.status >= 500  # a refusal deletes it; a service that could not answer keeps it
            raise
        except Exception:  # a dependency failed (or a bug): the person's upload is not thrown away
            keep_raw = True
            raise
        else:
            keep_raw = not discard_raw
        finally:
            if not keep_raw:
                self._store.delete(key)
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
        self._store.put(key, jpeg, "image/jpeg")
        return StoredDocument(
            flow_id=flow_id, kind=kind, key=key, size=len(jpeg), sha256=digest, width=width, height=height
        )

    def read(self, key: str) -> bytes:
        """A stored document's bytes (``document.missing`` when it is gone)."""
        return self._store.get(key, MAX_STORED_BYTES)

    def exists(self, key: str) -> bool:
        """Whether a stored document is still there (its body neither read nor decrypted)."""
        return self._store.exists(key)

    def presign_get(self, key: str, expires_in: int = 300) -> str:
        """A short-lived link to a stored document (for a reviewer's console)."""
        return self._store.presign_get(key, expires_in)

    def delete(self, key: str) -> None:
        self._store.delete(key)

    def purge(self, flow_id: str) -> int:
        """Delete every stored photo and raw upload of ``flow_id``; the number of objects deleted."""
        flow = _flow(flow_id)
        return self._store.delete_under(f"documents/{flow}/") + self._store.delete_under(f"raw/{flow}/")

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
