"""The Rekognition face index: a face collection (IndexFaces / SearchFacesByImage / DeleteFaces).

For stages with ``face_engine="rekognition"``. Each bound face is indexed in the stage's collection
with ``ExternalImageId`` = the identity's keyed hash (``person_hash``: URL-safe base64, within the
characters Rekognition allows), so a search answers with the identity directly. The collection keeps
the face vector, not the photo. Which faces a template holds is kept in the template store (the
``face-templates`` table, without a descriptor), so ``forget`` knows the face ids to delete.

A search with no face in the photo (``InvalidParameterException``) is ``face.none``; throttling and
service errors propagate. A search's ``template_id`` is the collection's face id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import ClientError

from chalicelib.adapters.faces.rekognition import RekognitionFaceEngine, _prepared
from chalicelib.adapters.faces.templates import Template, TemplateStore
from chalicelib.verification.domain.faces import image_unreadable, no_face
from chalicelib.verification.ports import FaceIndex, IndexedFace

_BAD_IMAGE_ERRORS = {"InvalidImageFormatException", "ImageTooLargeException"}


def _refusal(err: ClientError) -> Exception | None:
    code = err.response.get("Error", {}).get("Code", "")
    if code == "InvalidParameterException":
        return no_face()
    if code in _BAD_IMAGE_ERRORS:
        return image_unreadable()
    return None


class RekognitionFaceIndex(FaceIndex):
    """A Rekognition collection through a boto3 ``rekognition`` client (passed in, never created here)."""

    name: ClassVar[str] = RekognitionFaceEngine.name

    def __init__(self, client: Any, collection_id: str, store: TemplateStore) -> None:
        self._client = client
        self._collection = collection_id
        self._store = store

    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        try:
            response = self._client.search_faces_by_image(
                CollectionId=self._collection,
                Image={"Bytes": _prepared(image)},
                MaxFaces=limit,
                FaceMatchThreshold=threshold,
            )
        except ClientError as err:
            if (refusal := _refusal(err)) is not None:
                raise refusal from err
            raise
        hits = [
            IndexedFace(
                template_id=str(match["Face"]["FaceId"]),
                person_hash=str(match["Face"].get("ExternalImageId", "")),
                score=round(float(match.get("Similarity", 0.0)), 2),
            )
            for match in response.get("FaceMatches", [])
            if float(match.get("Similarity", 0.0)) >= threshold
        ]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)[:limit]

    def bind(self, person_hash: str, template_id: str, image: bytes) -> None:
        self.forget(template_id)
        try:
            response = self._client.index_faces(
                CollectionId=self._collection,
                Image={"Bytes": _prepared(image)},
                ExternalImageId=person_hash,
                MaxFaces=1,
                QualityFilter="AUTO",
                DetectionAttributes=[],
            )
        except ClientError as err:
            if (refusal := _refusal(err)) is not None:
                raise refusal from err
            raise
        face_ids = tuple(str(record["Face"]["FaceId"]) for record in response.get("FaceRecords", []))
        if not face_ids:
            raise no_face()
        self._store.put(
            Template(template_id=template_id, person_hash=person_hash, engine=self.name, face_ids=face_ids)
        )

    def forget(self, template_id: str) -> bool:
        template = self._store.get(template_id)
        if template is None:
            return False
        if template.face_ids:
            self._client.delete_faces(CollectionId=self._collection, FaceIds=list(template.face_ids))
        return self._store.forget(template_id)
