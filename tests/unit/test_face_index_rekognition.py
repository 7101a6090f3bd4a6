"""The Rekognition face index against stubbed IndexFaces / SearchFacesByImage / DeleteFaces responses."""

from __future__ import annotations

import io
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image

from chalicelib.adapters.faces.index_rekognition import RekognitionFaceIndex
from chalicelib.adapters.faces.templates import MemoryTemplateStore
from chalicelib.verification.ports import IndexedFace
from tests.unit.stories import refusal

COLLECTION = "cheka-test-faces"
PERSON = "aBc-123_hash"
OTHER = "xYz-789_hash"


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(out, "JPEG")
    return out.getvalue()


def face_record(face_id: str) -> dict[str, object]:
    return {"Face": {"FaceId": face_id, "ExternalImageId": PERSON, "Confidence": 99.9}}


@pytest.fixture
def stubbed() -> Iterator[tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore]]:
    client = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    store = MemoryTemplateStore()
    with Stubber(client) as stubber:
        yield RekognitionFaceIndex(client, COLLECTION, store), stubber, store
        stubber.assert_no_pending_responses()


def test_bind_indexes_the_face_under_the_identity_hash_and_remembers_its_face_id(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, store = stubbed
    image = photo()
    # Given Rekognition indexes one face
    stubber.add_response(
        "index_faces",
        {"FaceRecords": [face_record("face-1")], "UnindexedFaces": []},
        {
            "CollectionId": COLLECTION,
            "Image": {"Bytes": image},
            "ExternalImageId": PERSON,
            "MaxFaces": 1,
            "QualityFilter": "AUTO",
            "DetectionAttributes": [],
        },
    )
    # When binding the flow's face
    index.bind(PERSON, "flow-1", image)
    # Then the template holds the face id, no descriptor
    template = store.get("flow-1")
    assert template is not None
    assert (template.person_hash, template.face_ids, template.descriptor) == (PERSON, ("face-1",), None)


def test_search_answers_the_identities_of_matching_faces_at_the_threshold(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, _ = stubbed
    image = photo()
    # Given the collection holds two matching faces of two identities
    stubber.add_response(
        "search_faces_by_image",
        {
            "SearchedFaceConfidence": 99.0,
            "FaceMatches": [
                {"Similarity": 91.234, "Face": {"FaceId": "face-2", "ExternalImageId": OTHER}},
                {"Similarity": 99.5, "Face": {"FaceId": "face-1", "ExternalImageId": PERSON}},
            ],
        },
        {"CollectionId": COLLECTION, "Image": {"Bytes": image}, "MaxFaces": 10, "FaceMatchThreshold": 90.0},
    )
    # When searching at 90
    hits = index.search(image, 90.0, 10)
    # Then both come back, best first, with the identity hash from ExternalImageId
    assert hits == [
        IndexedFace(template_id="face-1", person_hash=PERSON, score=99.5),
        IndexedFace(template_id="face-2", person_hash=OTHER, score=91.23),
    ]


def test_a_search_photo_without_a_face_is_face_none(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, _ = stubbed
    stubber.add_client_error(
        "search_faces_by_image", "InvalidParameterException", "There are no faces in the image."
    )
    assert refusal(index.search, photo(), 90.0, 10).code == "face.none"


def test_forget_deletes_the_templates_faces_from_the_collection(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, store = stubbed
    image = photo()
    # Given a bound face
    stubber.add_response("index_faces", {"FaceRecords": [face_record("face-1")]})
    index.bind(PERSON, "flow-1", image)
    # When the flow's template is forgotten
    stubber.add_response(
        "delete_faces", {"DeletedFaces": ["face-1"]}, {"CollectionId": COLLECTION, "FaceIds": ["face-1"]}
    )
    forgotten = index.forget("flow-1")
    # Then the face is deleted from the collection and the template is gone (a second forget is a no-op)
    assert forgotten
    assert store.get("flow-1") is None
    assert not index.forget("flow-1")


def test_rebinding_a_flow_replaces_its_face(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, store = stubbed
    stubber.add_response("index_faces", {"FaceRecords": [face_record("face-1")]})
    index.bind(PERSON, "flow-1", photo())
    # When the same flow binds again, the old face is deleted before the new one is indexed
    stubber.add_response(
        "delete_faces", {"DeletedFaces": ["face-1"]}, {"CollectionId": COLLECTION, "FaceIds": ["face-1"]}
    )
    stubber.add_response("index_faces", {"FaceRecords": [face_record("face-2")]})
    index.bind(PERSON, "flow-1", photo())
    template = store.get("flow-1")
    assert template is not None
    assert template.face_ids == ("face-2",)


def test_a_photo_rekognition_indexes_no_face_from_is_face_none_and_keeps_nothing(
    stubbed: tuple[RekognitionFaceIndex, Stubber, MemoryTemplateStore],
) -> None:
    index, stubber, store = stubbed
    stubber.add_response(
        "index_faces", {"FaceRecords": [], "UnindexedFaces": [{"Reasons": ["LOW_SHARPNESS"]}]}
    )
    assert refusal(index.bind, PERSON, "flow-1", photo()).code == "face.none"
    assert store.get("flow-1") is None
